//! OTLP push through TLS to a real collector: nginx terminates TLS (and checks client
//! certificates) in front of rotel-agent; `examples/otlp_push.rs` is the program, configured
//! by the environment only. Run `cargo build --example otlp_push` first.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use streamhouse_observability::catalog;
use support::nginx::{Nginx, Pki, Upstream};
use support::rotel::Rotel;

fn example() -> PathBuf {
    support::process::example_binary("otlp_push")
}

struct Run {
    stdout: String,
    stderr: String,
    took: Duration,
    success: bool,
}

impl Run {
    /// The counts of the example's last line, `export failures: metrics=M traces=T logs=L`.
    fn failures(&self) -> (u64, u64) {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("export failures:"))
            .unwrap_or_else(|| panic!("no failure counts in {}", self.stdout));
        let count = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line}"))
        };
        (count("metrics="), count("traces="))
    }
}

/// Runs the example for one second with `vars` (and nothing else from this environment).
fn run(vars: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let output = Command::new(example())
        .env_clear()
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("STREAMHOUSE_SHUTDOWN_TIMEOUT_MS", "2000")
        .env("STREAMHOUSE_DEMO_SECONDS", "1")
        .envs(vars.iter().copied())
        .output()
        .expect("run the example");
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
        success: output.status.success(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// What rotel prints for our pushed metrics and spans.
fn arrived_needles() -> Vec<String> {
    vec![
        format!("-> Name: {}\n", catalog::ALL[0].prometheus_name),
        "Name           : send orders".to_owned(),
    ]
}

/// Asserts that nothing of ours reached rotel, after giving it time to print.
async fn assert_nothing_arrived(rotel: &Rotel) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = rotel.output();
    for needle in arrived_needles() {
        assert!(!output.contains(&needle), "{needle} arrived:\n{output}");
    }
}

/// The program succeeded, our metrics and spans reached the collector through nginx, and
/// no export failed.
async fn everything_arrived(run: &Run, rotel: &Rotel, nginx: &Nginx) {
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let needles = arrived_needles();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    rotel.wait_for(&needles, Duration::from_secs(10)).await;
    assert_eq!(run.failures(), (0, 0), "{}", nginx.error_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_with_a_custom_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let rotel = Rotel::start("tls-grpc");
    let nginx = Nginx::start(&pki, Upstream::Grpc(rotel.grpc_addr), None);
    // No scheme: https, as OTEL_EXPORTER_OTLP_INSECURE is not set.
    let endpoint = nginx.addr.to_string();
    let run = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
    ]);
    everything_arrived(&run, &rotel, &nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_with_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let rotel = Rotel::start("tls-http");
    let nginx = Nginx::start(&pki, Upstream::Http(rotel.http_addr), Some(&pki.ca));
    let endpoint = format!("https://{}", nginx.addr);
    let run = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            path(&pki.client_cert),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pki.client_key)),
    ]);
    everything_arrived(&run, &rotel, &nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_without_the_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let rotel = Rotel::start("tls-http-refused");
    let nginx = Nginx::start(&pki, Upstream::Http(rotel.http_addr), Some(&pki.ca));
    let endpoint = format!("https://{}", nginx.addr);
    let run = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
    ]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let (metrics, traces) = run.failures();
    assert!(metrics > 0 && traces > 0, "{}", run.stdout);
    // nginx answered 400 "No required SSL certificate was sent" to every request.
    assert!(
        nginx.access_log().contains(" 400 "),
        "{}",
        nginx.access_log()
    );
    assert_nothing_arrived(&rotel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_sends_nothing_and_counts_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let rotel = Rotel::start("tls-wrong-ca");
    let nginx = Nginx::start(&pki, Upstream::Grpc(rotel.grpc_addr), None);
    let endpoint = format!("https://{}", nginx.addr);
    let run = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.other_ca)),
    ]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    // One second of demo, then a shutdown bounded by 2 s.
    assert!(run.took < Duration::from_secs(6), "took {:?}", run.took);
    let (metrics, traces) = run.failures();
    assert!(metrics > 0 && traces > 0, "{}", run.stdout);
    // The failure is logged once per outage, with the TLS cause.
    assert!(run.stdout.contains("OTLP export failed"), "{}", run.stdout);
    assert!(
        run.stdout.to_ascii_lowercase().contains("certificate"),
        "{}",
        run.stdout
    );
    assert_nothing_arrived(&rotel).await;
}

#[test]
fn an_unreadable_certificate_is_an_error_naming_the_variable() {
    let run = run(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "/nonexistent/ca.pem",
        ),
    ]);
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr.contains("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"),
        "{}",
        run.stderr
    );
}
