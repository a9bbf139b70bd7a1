//! nginx (Debian package, installed by `scripts/test`) terminating TLS in front of a local
//! upstream, on a free port, with its config, logs, pid and temp files in a temp dir; and a
//! small PKI made with rcgen for it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nginx` from `PATH` or `/usr/sbin`; `scripts/test` installs it.
pub fn nginx_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"));
    for path in candidates {
        if path.is_file() {
            return path;
        }
    }
    panic!("nginx is missing: run ./scripts/test, which installs the Debian package");
}

/// A CA, a server certificate for 127.0.0.1 and localhost and a client certificate both
/// signed by it, and a second, unrelated CA; all as PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let ca_params = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params
        };
        let ca = CertifiedIssuer::self_signed(
            ca_params("StreamHouse test CA"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let other = CertifiedIssuer::self_signed(
            ca_params("Unrelated test CA"),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, "test");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
        }
    }
}

/// What nginx passes requests to.
pub enum Upstream {
    /// `grpc_pass grpc://<addr>` behind an HTTP/2 TLS listener.
    Grpc(SocketAddr),
    /// `proxy_pass http://<addr>` behind an HTTP/1.1 TLS listener.
    Http(SocketAddr),
}

/// A running nginx, killed on drop.
pub struct Nginx {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Starts nginx with the server certificate of `pki`, passing to `upstream`; with
    /// `client_ca`, clients must present a certificate signed by it.
    pub fn start(pki: &Pki, upstream: Upstream, client_ca: Option<&Path>) -> Nginx {
        let addr = super::free_addr();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (listen, location) = match upstream {
            Upstream::Grpc(to) => (
                format!("listen {addr} ssl http2;"),
                format!("grpc_pass grpc://{to};"),
            ),
            Upstream::Http(to) => (
                format!("listen {addr} ssl;"),
                format!("proxy_pass http://{to}; proxy_http_version 1.1;"),
            ),
        };
        let verify = match client_ca {
            Some(ca) => format!(
                "ssl_verify_client on; ssl_client_certificate {};",
                ca.display()
            ),
            None => String::new(),
        };
        // One process (no workers switching user), every path in the temp dir.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    {listen}\n    ssl_certificate {cert};\n    \
             ssl_certificate_key {key};\n    {verify}\n    \
             location / {{ {location} }}\n  }}\n}}\n",
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { addr, dir, child };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {}:\n{}",
                self.addr,
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx's error log so far (handshake failures show here).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
