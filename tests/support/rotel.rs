//! The real OTLP collector `rotel` (PyPI package, installed into `.venv` by `scripts/test`),
//! started on free loopback ports with its debug exporter printing what it receives.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `<repo>/.venv/bin/rotel-agent`; `scripts/test` installs it.
pub fn rotel_agent() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/rotel-agent");
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which installs the rotel collector into .venv",
        path.display()
    );
    path
}

/// A running `rotel-agent`, killed on drop.
pub struct Rotel {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    output: PathBuf,
    child: Child,
}

impl Rotel {
    /// Starts rotel with OTLP receivers on free ports, the blackhole exporter and the
    /// detailed debug log of metrics, traces and logs on its standard output (kept in a file).
    pub fn start(name: &str) -> Rotel {
        let grpc_addr = super::free_addr();
        let http_addr = super::free_addr();
        let dir =
            std::env::temp_dir().join(format!("streamhouse-rotel-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let output = dir.join("stdout.log");
        let stdout = std::fs::File::create(&output).unwrap();
        let child = Command::new(rotel_agent())
            .arg("start")
            .args(["--otlp-grpc-endpoint", &grpc_addr.to_string()])
            .args(["--otlp-http-endpoint", &http_addr.to_string()])
            .args(["--exporter", "blackhole"])
            .args([
                "--debug-log",
                "metrics",
                "--debug-log",
                "traces",
                "--debug-log",
                "logs",
            ])
            .args(["--debug-log-verbosity", "detailed"])
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel.log"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(stdout.try_clone().unwrap()))
            .stderr(Stdio::from(stdout))
            .spawn()
            .expect("start rotel-agent");
        let rotel = Rotel {
            grpc_addr,
            http_addr,
            output,
            child,
        };
        rotel.wait_listening();
        rotel
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in [self.grpc_addr, self.http_addr] {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rotel did not listen on {addr}:\n{}",
                    self.output()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `http://<gRPC address>`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://<HTTP address>`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// What rotel printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Polls rotel's output until it contains every needle; panics with the output if not.
    pub async fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.output();
            let missing: Vec<&&str> = needles.iter().filter(|n| !output.contains(**n)).collect();
            if missing.is_empty() {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "rotel never printed {missing:?}; its output:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Failures already printed the output; the files are no longer needed.
        if let Some(dir) = self.output.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
