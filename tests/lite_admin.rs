//! The admin listener: `/metrics` and `/health*` off the public port, behind an optional
//! bearer token and optional TLS, a readiness probe that is cached and never echoes a
//! check's error text, and a shutdown order in which the admin listener outlives the API
//! until the final flush.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use reqwest::StatusCode;
use streamhouse_lite::LiteConfig;
use streamhouse_lite::server::LiteServer;
use streamhouse_observability::catalog;
use streamhouse_observability::config::admin::{TLS_CERT_VAR, TLS_KEY_VAR};
use streamhouse_observability::config::{AdminConfig, BearerToken, TlsFiles};
use streamhouse_observability::serve::tls;
use streamhouse_observability::{Telemetry, TelemetryConfig};
use support::flaky_store::FlakyStore;
use support::lite::test_config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server serving the API and the admin endpoints on two loopback ports
/// ([`LiteServer::serve_split`]); stopped when dropped or by [`Split::stop`].
struct Split {
    server: LiteServer,
    api: SocketAddr,
    admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Split {
    /// Starts the shutdown; [`Self::serving`] ends when both listeners are closed.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn split(admin: AdminConfig) -> Split {
    split_with(admin, test_config(), Arc::new(InMemory::new())).await
}

async fn split_with(admin: AdminConfig, config: LiteConfig, store: Arc<dyn ObjectStore>) -> Split {
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_instance_id("test-instance")
            .with_admin(admin),
    )
    .expect("telemetry");
    let server = LiteServer::start_with_store(config, &telemetry, store);
    let tls = server.admin_tls().expect("TLS files load");
    let api_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api, admin) = (
        api_listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let running = server.clone();
    let serving = tokio::spawn(async move {
        running
            .serve_split(api_listener, admin_listener, tls, stopped)
            .await
    });
    Split {
        server,
        api,
        admin,
        stop: Some(stop),
        serving,
    }
}

async fn status(client: &reqwest::Client, url: String) -> StatusCode {
    client.get(url).send().await.expect("request").status()
}

#[tokio::test]
async fn admin_endpoints_live_on_their_own_listener_only() {
    let split = split(AdminConfig::default()).await;
    let client = reqwest::Client::new();
    let admin = |path: &str| format!("http://{}{path}", split.admin);
    let api = |path: &str| format!("http://{}{path}", split.api);

    let scrape = client.get(admin("/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().await.unwrap().contains("streamhouse_"));
    assert_eq!(status(&client, admin("/health/ready")).await, 200);
    assert_eq!(status(&client, admin("/health/live")).await, 200);
    assert_eq!(status(&client, api("/api/v1/topics")).await, 200);

    assert_eq!(status(&client, api("/metrics")).await, 404);
    assert_eq!(status(&client, api("/health/ready")).await, 404);
    assert_eq!(status(&client, admin("/api/v1/topics")).await, 404);
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let token = BearerToken::new("s3cr3t-scrape-token").unwrap();
    let split = split(AdminConfig::default().with_bearer_token(token)).await;
    let client = reqwest::Client::new();
    for path in ["/metrics", "/health/ready"] {
        let url = format!("http://{}{path}", split.admin);
        let missing = client.get(&url).send().await.unwrap();
        assert_eq!(missing.status(), 401);
        let challenge = missing.headers().get("www-authenticate").unwrap();
        assert!(challenge.to_str().unwrap().starts_with("Bearer"));
        let wrong = client
            .get(&url)
            .bearer_auth("s3cr3t-scrape-tokem")
            .send()
            .await;
        assert_eq!(wrong.unwrap().status(), 401);
        let basic = client
            .get(&url)
            .basic_auth("s3cr3t-scrape-token", None::<&str>)
            .send();
        assert_eq!(basic.await.unwrap().status(), 401);
        let right = client
            .get(&url)
            .bearer_auth("s3cr3t-scrape-token")
            .send()
            .await;
        assert_eq!(right.unwrap().status(), 200);
    }
    // The API needs no token.
    let api = format!("http://{}/api/v1/topics", split.api);
    assert_eq!(status(&client, api).await, 200);
}

/// A self-signed certificate for `localhost`, written as PEM files in a fresh directory.
fn self_signed(dir: &tempfile::TempDir) -> (TlsFiles, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (TlsFiles::new(cert, key), cert_pem)
}

#[tokio::test]
async fn the_admin_listener_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (files, cert_pem) = self_signed(&dir);
    let split = split(AdminConfig::default().with_tls(files)).await;
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", split.admin)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/metrics", split.admin.port());
    let scrape = trusting.get(&url).send().await.expect("https scrape");
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().await.unwrap().contains("streamhouse_"));

    // Plain HTTP to the TLS port gets no answer; a client not trusting the cert refuses.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/metrics", split.admin))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", split.admin)
        .build()
        .unwrap();
    assert!(untrusting.get(&url).send().await.is_err());
}

#[test]
fn unusable_tls_files_are_config_errors_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = self_signed(&dir);
    let missing = TlsFiles::new(PathBuf::from("/nonexistent/cert.pem"), files.key.clone());
    let err = tls::acceptor(&missing).err().expect("missing cert file");
    assert_eq!(err.variable, TLS_CERT_VAR);
    assert_eq!(err.value, "/nonexistent/cert.pem");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all").unwrap();
    let bad_key = TlsFiles::new(files.cert.clone(), garbage.clone());
    assert_eq!(tls::acceptor(&bad_key).err().unwrap().variable, TLS_KEY_VAR);
    let bad_cert = TlsFiles::new(garbage, files.key.clone());
    assert_eq!(
        tls::acceptor(&bad_cert).err().unwrap().variable,
        TLS_CERT_VAR
    );

    // A key of another certificate.
    let other = tempfile::tempdir().unwrap();
    let (other_files, _) = self_signed(&other);
    let mismatched = TlsFiles::new(files.cert, other_files.key);
    assert_eq!(
        tls::acceptor(&mismatched).err().unwrap().variable,
        TLS_KEY_VAR
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_cached_and_never_echoes_a_check_error() {
    let split = split(AdminConfig::default()).await;
    let runs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    let secret = "s3://customer-bucket/key: AccessDenied for AKIAEXAMPLE";
    let _check = split.server.health().register("store_probe", move || {
        counted.fetch_add(1, Ordering::Relaxed);
        async move { Err(secret.to_owned()) }
    });
    let client = reqwest::Client::new();
    let url = format!("http://{}/health/ready", split.admin);
    let started = Instant::now();
    let probes = join_all((0..100).map(|_| {
        let request = client.get(&url).send();
        async move {
            let response = request.await.expect("probe");
            (response.status(), response.text().await.expect("body"))
        }
    }))
    .await;
    let elapsed = started.elapsed();

    for (status, body) in &probes {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["failing"], serde_json::json!(["store_probe"]));
        assert!(!body.to_string().contains("AKIA"), "{body}");
        assert!(!body.to_string().contains("customer-bucket"), "{body}");
    }
    // One run per cache period (1 s), however many probes came in it.
    let allowed = 1 + elapsed.as_secs() + 1;
    let ran = runs.load(Ordering::Relaxed);
    assert!(ran <= allowed, "{ran} runs for 100 probes in {elapsed:?}");
}

/// The main job with `env`; killed when dropped.
struct MainJob(std::process::Child);

impl Drop for MainJob {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_main_job(env: &[(&str, String)]) -> MainJob {
    let binary = support::process::main_job_binary();
    let child = std::process::Command::new(binary)
        .env_clear()
        .env("STREAMHOUSE_OBJECT_STORE", "memory")
        .env("STREAMHOUSE_LOADGEN", "off")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the main job");
    MainJob(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_job_moves_admin_endpoints_when_an_admin_port_is_set() {
    let public = support::free_addr();
    let admin = support::free_addr();
    let _job = spawn_main_job(&[
        ("STREAMHOUSE_HTTP_ADDR", public.to_string()),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".to_owned()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", admin.port().to_string()),
    ]);
    let client = reqwest::Client::new();
    let admin_url = |path: &str| format!("http://{admin}{path}");
    let public_url = |path: &str| format!("http://{public}{path}");
    support::eventually(
        std::time::Duration::from_secs(30),
        "the admin listener",
        || {
            let request = client.get(admin_url("/health/live")).send();
            async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        },
    )
    .await;
    assert_eq!(status(&client, admin_url("/metrics")).await, 200);
    assert_eq!(status(&client, public_url("/api/v1/topics")).await, 200);
    assert_eq!(status(&client, public_url("/metrics")).await, 404);
    assert_eq!(status(&client, public_url("/health/ready")).await, 404);
}

/// The `streamhouse_storage_unflushed_bytes` gauge of one scrape of `admin`; `None` when the
/// admin listener does not answer.
async fn unflushed_bytes(client: &reqwest::Client, admin: SocketAddr) -> Option<f64> {
    let url = format!("http://{admin}/metrics");
    let body = client.get(url).send().await.ok()?.text().await.ok()?;
    let name = catalog::UNFLUSHED_BYTES.prometheus_name;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_split_mode_the_admin_listener_stops_after_the_final_flush() {
    let (store, failing) = FlakyStore::new(false);
    let mut config = test_config();
    config.admin_linger = Duration::from_secs(2);
    let mut split = split_with(AdminConfig::default(), config, Arc::new(store)).await;
    let client = support::http_client(Duration::from_secs(5));
    let api = |path: &str| format!("http://{}{path}", split.api);
    let created = client
        .post(api("/api/v1/topics"))
        .json(&serde_json::json!({"name": "orders", "partitions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Small records stay in the open segment (it seals at 1000 bytes or after an hour).
    let produced = client
        .post(api("/api/v1/produce"))
        .json(&serde_json::json!({"topic": "orders", "value": "unflushed", "partition": 0}))
        .send()
        .await
        .unwrap();
    assert!(produced.status().is_success(), "{produced:?}");
    let before = unflushed_bytes(&client, split.admin).await.expect("scrape");
    assert!(before > 0.0, "nothing buffered: {before}");

    // The store fails: the shutdown flush retries until it comes back.
    failing.store(true, Ordering::SeqCst);
    split.stop();
    support::eventually(Duration::from_secs(5), "the API port to close", || async {
        tokio::net::TcpStream::connect(split.api)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    // The API is gone, the flush is pending, and the admin listener still answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(unflushed_bytes(&client, split.admin).await, Some(before));
    assert!(!split.serving.is_finished());

    failing.store(false, Ordering::SeqCst);
    // The last scrapes see the flush: nothing left unflushed.
    support::eventually(
        Duration::from_secs(5),
        "a scrape after the flush",
        || async { (unflushed_bytes(&client, split.admin).await? == 0.0).then_some(()) },
    )
    .await;
    tokio::time::timeout(
        Duration::from_secs(2) + Duration::from_secs(3),
        &mut split.serving,
    )
    .await
    .expect("the admin listener stops after the linger")
    .expect("task")
    .expect("serve");
    assert!(tokio::net::TcpStream::connect(split.admin).await.is_err());
}
