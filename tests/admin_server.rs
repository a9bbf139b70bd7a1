//! The SDK's own admin listener (`serve::AdminServer`), started in one call: scraped by an
//! HTTP client and checked by `promtool`, scraped by a real Prometheus over HTTPS with a
//! bearer token, its TLS certificate reloaded when the files change, its handshake bounded,
//! and the quickstart example configured entirely from the environment.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamhouse_observability::catalog;
use streamhouse_observability::config::admin::{
    HEALTH_CACHE_VAR, MAX_CONNECTIONS_VAR, TransportLimits,
};
use streamhouse_observability::config::{AdminConfig, BearerToken, TlsFiles};
use streamhouse_observability::health::HealthRegistry;
use streamhouse_observability::serve::AdminServer;
use streamhouse_observability::serve::tls::CertReloader;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::closed_within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack for a loaded machine on top of a bound that should have acted.
const MARGIN: Duration = Duration::from_secs(3);

const TOKEN: &str = "admin-s3cr3t-token";

/// A configuration listening on `addr` (no builder sets the address: it is read as the
/// environment would give it).
fn config_on(addr: &str) -> TelemetryConfig {
    TelemetryConfig::from_lookup(|name| (name == "STREAMHOUSE_METRICS_ADDR").then(|| addr.into()))
        .expect("config")
        .with_service_instance_id("test-instance")
}

fn telemetry_with(admin: AdminConfig) -> Telemetry {
    Telemetry::new(config_on("127.0.0.1:0").with_admin(admin)).expect("telemetry")
}

/// A self-signed certificate for `localhost` as PEM: (certificate, key).
fn self_signed() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// Writes `contents` to `path` the way an operator rotating certificates should: a complete
/// file renamed into place.
fn replace(path: &Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

fn tls_files(dir: &tempfile::TempDir, (cert, key): &(String, String)) -> TlsFiles {
    let files = TlsFiles::new(dir.path().join("cert.pem"), dir.path().join("key.pem"));
    replace(&files.key, key);
    replace(&files.cert, cert);
    files
}

/// A client that trusts only `cert_pem` and reaches `localhost` at `addr`; a fresh client
/// per call, so no pooled connection hides which certificate a new connection gets.
fn trusting(cert_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_serves_metrics_promtool_accepts_and_health_until_shutdown() {
    let telemetry = telemetry_with(AdminConfig::default());
    let _recorded = support::record_every_metric(&telemetry);
    let health = HealthRegistry::new();
    let admin = AdminServer::start(&telemetry, &health)
        .await
        .expect("start");
    let addr = admin.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");
    assert_eq!(admin.url(), format!("http://{addr}"));
    let client = support::http_client(Duration::from_secs(10));

    let scrape = client
        .get(format!("{}/metrics", admin.url()))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), 200);
    let body = scrape.text().await.unwrap();
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    assert!(
        body.contains(&format!("{records}{{topic=\"orders\"}} 1")),
        "{body}"
    );
    // promtool's only advice is about the two gauges the seed named `_total`.
    let (_, complaints) = support::promtool_check_metrics(&body);
    let allowed = [
        catalog::PARTITIONS.prometheus_name,
        catalog::TOPICS.prometheus_name,
    ];
    assert!(!complaints.is_empty(), "promtool ran");
    for complaint in &complaints {
        assert!(
            allowed.iter().any(|name| complaint.starts_with(name)),
            "unexpected promtool complaint: {complaint}"
        );
    }

    let _failing = health.register("store", || async { Err("down".to_owned()) });
    let ready = client
        .get(format!("{}/health/ready", admin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = client
        .get(format!("{}/health/live", admin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    tokio::time::timeout(MARGIN, admin.shutdown())
        .await
        .expect("shutdown within the grace");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_failure_names_the_address_and_a_bad_tls_file_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config_on(&taken.local_addr().unwrap().to_string());
    let telemetry = Telemetry::new(config).unwrap();
    let err = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect_err("the port is taken");
    let text = err.to_string();
    assert!(
        text.contains(&taken.local_addr().unwrap().to_string()),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_some());

    let missing = TlsFiles::new("/nonexistent/cert.pem", "/nonexistent/key.pem");
    let telemetry = telemetry_with(AdminConfig::default().with_tls(missing));
    let err = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect_err("no such file");
    assert!(
        err.to_string().contains("STREAMHOUSE_METRICS_TLS_CERT"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_one_call_listener_over_https_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let files = tls_files(&dir, &pair);
    let admin_config = AdminConfig::default()
        .with_tls(files)
        .with_bearer_token(BearerToken::new(TOKEN).unwrap());
    let telemetry = telemetry_with(admin_config);
    let _recorded = support::record_every_metric(&telemetry);
    let admin = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect("start");
    assert!(admin.url().starts_with("https://"));
    let target = admin.local_addr();

    let job = |name: &str, auth: &str| {
        format!(
            "- job_name: {name}\n  scheme: https\n{auth}  tls_config:\n    ca_file: ca.pem\n    \
             server_name: localhost\n  static_configs:\n  - targets: ['{target}']\n"
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}",
        job(
            "admin",
            &format!("  authorization:\n    credentials: {TOKEN}\n")
        ),
        job("no_token", ""),
    );
    let prometheus = support::Prometheus::start_with_files(&config, &[("ca.pem", &pair.0)]);
    let client = reqwest::Client::new();
    let records = catalog::PRODUCER_RECORDS.prometheus_name;
    let query = format!("{records}{{job=\"admin\",topic=\"orders\"}}");
    let result = support::eventually(
        Duration::from_secs(60),
        "Prometheus to scrape the admin listener",
        || async {
            let result = prometheus.query(&client, &query).await?;
            (!result.is_empty()).then_some(result)
        },
    )
    .await;
    assert_eq!(result[0]["value"][1], "1", "{result:?}");
    // The job without the token is refused: its `up` is 0.
    let up = support::eventually(Duration::from_secs(30), "the no-token job's up", || async {
        let result = prometheus.query(&client, "up{job=\"no_token\"}").await?;
        result.first().map(|s| s["value"][1].clone())
    })
    .await;
    assert_eq!(up, "0");
    admin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_closed_at_the_handshake_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let bound = Duration::from_millis(500);
    let limits = TransportLimits::default().with_header_read_timeout(bound);
    let admin_config = AdminConfig::default()
        .with_tls(tls_files(&dir, &pair))
        .with_limits(limits);
    let telemetry = telemetry_with(admin_config);
    let admin = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect("start");
    let addr = admin.local_addr();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    // Five bytes of a TLS record header, then nothing: a handshake that never completes.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let (silent_closed, trickle_closed) = tokio::join!(
        closed_within(&mut silent, bound + MARGIN),
        closed_within(&mut trickle, bound + MARGIN),
    );
    for closed in [silent_closed, trickle_closed] {
        let closed = closed.expect("closed within the bound");
        let after = closed.duration_since(opened);
        // Not closed at once for some other reason: the bound is what acted.
        assert!(after >= bound - Duration::from_millis(100), "{after:?}");
    }
    // A real client is served meanwhile and after.
    let scrape = trusting(&pair.0, addr)
        .get(format!("https://localhost:{}/metrics", addr.port()))
        .send()
        .await
        .expect("https scrape");
    assert_eq!(scrape.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_connection_limit_holds_a_client_until_one_closes() {
    let limits = TransportLimits::default()
        .with_max_connections(2)
        .with_header_read_timeout(Duration::from_secs(60));
    let telemetry = telemetry_with(AdminConfig::default().with_limits(limits));
    let admin = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect("start");
    let addr = admin.local_addr();
    let mut idle = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // Let the loop accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).to_string()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "served past the connection limit");
    drop(idle.pop());
    let answer = tokio::time::timeout(MARGIN, third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed();
    let files = tls_files(&dir, &old);
    let telemetry = telemetry_with(AdminConfig::default().with_tls(files.clone()));
    let admin = AdminServer::start(&telemetry, &HealthRegistry::new())
        .await
        .expect("start");
    let addr = admin.local_addr();
    let url = format!("https://localhost:{}/health/live", addr.port());
    let works = |cert: String| {
        let url = url.clone();
        async move { trusting(&cert, addr).get(url).send().await.is_ok() }
    };
    assert!(works(old.0.clone()).await);

    let new = self_signed();
    tls_files(&dir, &new);
    // Checked at most every 2 s (`tls::DEFAULT_RELOAD_CHECK`).
    support::eventually(
        Duration::from_secs(2) + MARGIN,
        "the new certificate",
        || {
            let attempt = works(new.0.clone());
            async move { attempt.await.then_some(()) }
        },
    )
    .await;
    assert!(
        !works(old.0.clone()).await,
        "the old certificate is still served"
    );
}

/// `tracing` output captured in memory, one line per event.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn unusable_new_files_keep_the_old_certificate_and_are_logged_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let old = self_signed();
    let files = tls_files(&dir, &old);
    let period = Duration::from_millis(20);
    let reloader = CertReloader::new(files.clone(), period).expect("valid files");
    let served = |reloader: &CertReloader| reloader.current().cert[0].as_ref().to_vec();
    let old_der = served(&reloader);

    // A key of another certificate, then garbage: each is one change, logged once.
    let other = self_signed();
    replace(&files.key, &other.1);
    for _ in 0..5 {
        std::thread::sleep(period * 2);
        assert_eq!(served(&reloader), old_der);
    }
    replace(&files.cert, "not PEM at all\n");
    for _ in 0..5 {
        std::thread::sleep(period * 2);
        assert_eq!(served(&reloader), old_der);
    }
    let rejected = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("WARN") && l.contains("keeping the previous certificate"))
            .count()
    };
    let lines = captured.lines();
    assert_eq!(rejected(&lines), 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("STREAMHOUSE_METRICS_TLS_CERT")),
        "{lines:#?}"
    );

    // A usable pair is taken, and said so once.
    replace(&files.cert, &other.0);
    std::thread::sleep(period * 2);
    let new_der = served(&reloader);
    assert_ne!(new_der, old_der);
    for _ in 0..3 {
        std::thread::sleep(period * 2);
        assert_eq!(served(&reloader), new_der);
    }
    let lines = captured.lines();
    let reloaded = lines.iter().filter(|l| l.contains("reloaded")).count();
    assert_eq!(reloaded, 1, "{lines:#?}");
    assert_eq!(rejected(&lines), 2, "{lines:#?}");
}

/// An example binary; killed when dropped.
struct Example(std::process::Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str, env: &[(&str, String)]) -> std::process::Command {
    let binary = support::process::example_binary(name);
    let mut command = std::process::Command::new(binary);
    command
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_takes_token_tls_and_limits_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let files = tls_files(&dir, &pair);
    let addr = support::free_addr();
    let child = example(
        "quickstart",
        &[
            ("STREAMHOUSE_METRICS_ADDR", addr.to_string()),
            ("STREAMHOUSE_METRICS_BEARER_TOKEN", TOKEN.to_owned()),
            (
                "STREAMHOUSE_METRICS_TLS_CERT",
                files.cert.display().to_string(),
            ),
            (
                "STREAMHOUSE_METRICS_TLS_KEY",
                files.key.display().to_string(),
            ),
            (
                "STREAMHOUSE_METRICS_HEADER_READ_TIMEOUT_MS",
                "400".to_owned(),
            ),
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start quickstart");
    let mut quickstart = Example(child);
    let url = format!("https://localhost:{}/metrics", addr.port());
    let scrape = support::eventually(Duration::from_secs(30), "quickstart's listener", || {
        let request = trusting(&pair.0, addr).get(&url).bearer_auth(TOKEN).send();
        async move { request.await.ok() }
    })
    .await;
    assert_eq!(scrape.status(), 200);
    let body = scrape.text().await.unwrap();
    assert!(
        body.contains(catalog::PRODUCER_RECORDS.prometheus_name),
        "{body}"
    );

    let anonymous = trusting(&pair.0, addr).get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_millis(400) + MARGIN)
            .await
            .is_some(),
        "STREAMHOUSE_METRICS_HEADER_READ_TIMEOUT_MS was not applied"
    );

    // Ctrl-C: the listener shuts down and the program exits 0.
    // SAFETY: signalling our own child, whose pid we hold and have not reaped.
    let signalled = unsafe { libc::kill(quickstart.0.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(signalled, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = quickstart.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "quickstart did not stop on Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn quickstart_refuses_a_bad_admin_variable_and_names_it() {
    for (variable, value) in [
        (HEALTH_CACHE_VAR, "0"),
        (MAX_CONNECTIONS_VAR, "lots"),
        ("STREAMHOUSE_METRICS_TLS_CERT", "/nonexistent/cert.pem"),
    ] {
        let mut env = vec![
            ("STREAMHOUSE_METRICS_ADDR", support::free_addr().to_string()),
            (variable, value.to_owned()),
        ];
        if variable == "STREAMHOUSE_METRICS_TLS_CERT" {
            env.push((
                "STREAMHOUSE_METRICS_TLS_KEY",
                "/nonexistent/key.pem".to_owned(),
            ));
        }
        let output = example("quickstart", &env)
            .output()
            .expect("run quickstart");
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn an_oversized_pem_file_is_refused_naming_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let files = tls_files(&dir, &pair);
    assert!(streamhouse_observability::serve::tls::acceptor(&files).is_ok());
    // A valid key followed by padding past the bound.
    let limit = streamhouse_observability::serve::tls::MAX_PEM_BYTES as usize;
    replace(&files.key, &format!("{}{}", pair.1, "\n".repeat(limit)));
    let err = streamhouse_observability::serve::tls::acceptor(&files)
        .err()
        .expect("oversized key file");
    assert_eq!(err.variable, "STREAMHOUSE_METRICS_TLS_KEY");
    assert!(err.expected.contains("at most"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_request_past_the_request_timeout_gets_503() {
    let limit = Duration::from_millis(300);
    let admin_config = AdminConfig::default()
        .with_request_timeout(limit)
        .with_health_limits(Duration::from_secs(30), Duration::from_secs(1));
    let telemetry = telemetry_with(admin_config);
    let health = HealthRegistry::from_config(&telemetry.config().admin);
    let _slow = health.register("slow", || async {
        tokio::time::sleep(Duration::from_secs(20)).await;
        Ok(())
    });
    let admin = AdminServer::start(&telemetry, &health)
        .await
        .expect("start");
    let started = Instant::now();
    let response = support::http_client(Duration::from_secs(10))
        .get(format!("{}/health/ready", admin.url()))
        .send()
        .await
        .expect("an answer");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(elapsed >= limit && elapsed < limit + MARGIN, "{elapsed:?}");
    let body = response.text().await.unwrap();
    assert!(body.contains("took longer than 300 ms"), "{body}");
}
