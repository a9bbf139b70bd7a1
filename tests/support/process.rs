//! The main job (`examples/unified_server.rs`) as a child process on a free loopback port,
//! with its resident memory read from `/proc/<pid>/status`; killed when dropped, panics
//! included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary of example `name`: `cargo test` builds the examples into
/// `target/<profile>/examples`, beside the `deps` directory holding the test executable.
pub fn example_binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("test executable path");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable under target/<profile>/deps");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds it, or run `cargo build --example {name}`",
        binary.display()
    );
    binary
}

/// The main job's binary.
pub fn main_job_binary() -> PathBuf {
    example_binary("unified_server")
}

/// A running main job; killed (and reaped) when dropped.
pub struct MainJob {
    child: Child,
    /// Where its API, `/metrics` and `/health*` are served.
    pub addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl MainJob {
    /// Starts the main job on a free loopback port with only `env` set (no inherited
    /// `OTEL_*` or `STREAMHOUSE_*` variable changes what is measured); its output goes to a
    /// log file that [`MainJob::log_tail`] reads.
    pub fn spawn(env: &[(&str, &str)]) -> Self {
        let addr = super::free_addr();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(main_job_binary())
            .env_clear()
            .env("STREAMHOUSE_HTTP_ADDR", addr.to_string())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("start the main job");
        MainJob { child, addr, log }
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `/health/live` answers 200, failing with the job's log after `timeout`.
    pub async fn wait_live(&mut self, client: &reqwest::Client, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the main job exited ({status}):\n{}", self.log_tail());
            }
            let live = client.get(self.url("/health/live")).send().await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the main job is not live after {timeout:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the job to exit, at most `timeout`; its exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with a pid this job owns and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill -TERM");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the main job") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the main job still runs {timeout:?} after SIGTERM:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the job with SIGKILL (`kill -9`: no handler runs, nothing is flushed) and reaps
    /// it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap the main job");
    }

    /// Resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}:\n{}", self.log_tail()));
        vm_rss_bytes(&status).unwrap_or_else(|| panic!("no VmRSS line in {path}:\n{status}"))
    }

    /// The scrape of `/metrics`, as text.
    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        let response = client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape /metrics");
        assert_eq!(response.status(), 200, "/metrics");
        response.text().await.expect("/metrics body")
    }

    /// The last 4 KiB of the job's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read(self.log.path()).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(4_096)..];
        String::from_utf8_lossy(tail).into_owned()
    }
}

impl Drop for MainJob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1_024)
}

/// The sum of the samples of `name` (a Prometheus text scrape) whose labels include every
/// `label="value"` pair of `labels`; `None` when no sample matches.
pub fn sample_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let values: Vec<f64> = metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| wanted.iter().all(|pair| line.contains(pair.as_str())))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
