//! HTTPS for [`Server`](super::Server): a rustls acceptor (no OpenSSL) whose certificate and
//! key come from PEM files and are reloaded when the files change.
//!
//! Reloading: [`CertReloader`] reads both files at most once per check period (default
//! [`DEFAULT_RELOAD_CHECK`]), on a handshake, and takes them when their bytes changed.
//! Contents, not modification times: file times are only as fine as the kernel's clock tick,
//! so a quick rotation could keep its old time; two small reads every few seconds cost
//! nothing. A new pair that cannot be used (unreadable, not PEM, larger than
//! [`MAX_PEM_BYTES`], a key of another certificate, or a pair caught half-replaced) is logged
//! once (`warn`) and the previous certificate stays in service; the next change is tried
//! again. Replace the files by renaming complete files into place to avoid that warning.
//!
//! Hand-written: no maintained crate in the dependency set reloads a rustls certificate from
//! files, and this is a small, synchronous resolver with no watcher thread.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use tokio_rustls::TlsAcceptor;

use crate::config::admin::{TLS_CERT_VAR, TLS_KEY_VAR};
use crate::config::{ConfigError, TlsFiles};

/// How often, at most, [`acceptor`] looks at the PEM files for a change.
pub const DEFAULT_RELOAD_CHECK: Duration = Duration::from_secs(2);
/// Largest PEM file read: a certificate chain is a few kilobytes; past this a path names
/// the wrong file.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// An acceptor serving the certificate chain and key in `files`, HTTP/1.1 only, reloading
/// them when they change (checked at most every [`DEFAULT_RELOAD_CHECK`]).
///
/// ```no_run
/// use streamhouse_observability::config::TlsFiles;
/// use streamhouse_observability::serve::tls;
///
/// let files = TlsFiles::new("cert.pem", "key.pem");
/// let acceptor = tls::acceptor(&files)?;
/// # Ok::<(), streamhouse_observability::config::ConfigError>(())
/// ```
///
/// # Errors
/// A [`ConfigError`] naming `STREAMHOUSE_METRICS_TLS_CERT` or `STREAMHOUSE_METRICS_TLS_KEY`
/// when that file cannot be read, holds no PEM certificate or key, or the key does not fit
/// the certificate.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ConfigError> {
    Ok(acceptor_with(Arc::new(CertReloader::new(
        files.clone(),
        DEFAULT_RELOAD_CHECK,
    )?)))
}

/// An acceptor, HTTP/1.1 only, serving whatever `reloader` holds.
pub fn acceptor_with(reloader: Arc<CertReloader>) -> TlsAcceptor {
    let provider = Arc::clone(&reloader.provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(reloader);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// A [`ResolvesServerCert`] serving a certificate and key read from PEM files, re-read when
/// their modification time or size changes (see the [module docs](self)).
pub struct CertReloader {
    files: TlsFiles,
    check_every: Duration,
    // An explicit provider: the process default is ambiguous when several are compiled in.
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

struct State {
    current: Arc<CertifiedKey>,
    /// The bytes `current` was made from.
    loaded: Contents,
    checked_at: Instant,
    /// The last failure, so that each is logged once.
    rejected: Option<Rejected>,
}

/// Both files' bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Self, ConfigError> {
        Ok(Contents {
            cert: read_bounded(&files.cert, TLS_CERT_VAR)?,
            key: read_bounded(&files.key, TLS_KEY_VAR)?,
        })
    }
}

/// What failed last: files that could not be read (by the error), or bytes that could not
/// be used.
#[derive(Debug, PartialEq, Eq)]
enum Rejected {
    Unreadable(String),
    Unusable(Contents),
}

impl fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertReloader")
            .field("files", &self.files)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

impl CertReloader {
    /// Reads `files` now, and again when they change, at most every `check_every`.
    ///
    /// # Errors
    /// As [`acceptor`]: the first read must succeed.
    pub fn new(files: TlsFiles, check_every: Duration) -> Result<Self, ConfigError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let loaded = Contents::read(&files)?;
        let current = Arc::new(parse(&files, &loaded, &provider)?);
        Ok(CertReloader {
            files,
            check_every,
            provider,
            state: Mutex::new(State {
                current,
                loaded,
                checked_at: Instant::now(),
                rejected: None,
            }),
        })
    }

    /// The certificate served now, after a check for changed files if one is due.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked_at.elapsed() >= self.check_every {
            state.checked_at = Instant::now();
            self.reload_if_changed(&mut state);
        }
        Arc::clone(&state.current)
    }

    /// Blocking file reads on a handshake: two small reads per check period, so no thread
    /// is worth spawning for them.
    fn reload_if_changed(&self, state: &mut State) {
        let (error, rejected) = match Contents::read(&self.files) {
            Ok(contents) if contents == state.loaded => return,
            Ok(contents) => match parse(&self.files, &contents, &self.provider) {
                Ok(key) => {
                    state.current = Arc::new(key);
                    state.loaded = contents;
                    state.rejected = None;
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                    return;
                }
                Err(error) => (error, Rejected::Unusable(contents)),
            },
            Err(error) => {
                let text = error.to_string();
                (error, Rejected::Unreadable(text))
            }
        };
        if state.rejected.as_ref() != Some(&rejected) {
            tracing::warn!(
                %error,
                "the changed TLS files cannot be used; keeping the previous certificate"
            );
            state.rejected = Some(rejected);
        }
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// At most [`MAX_PEM_BYTES`] of `path`; an error names `variable`.
fn read_bounded(path: &Path, variable: &str) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| ConfigError::new(variable, &shown, "a readable PEM file").with_source(e))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(ConfigError::new(
            variable,
            &shown,
            format!("a PEM file of at most {MAX_PEM_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

fn parse(
    files: &TlsFiles,
    contents: &Contents,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ConfigError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&contents.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::new(TLS_CERT_VAR, &cert_path, "a readable PEM certificate chain")
                .with_source(e)
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            TLS_CERT_VAR,
            &cert_path,
            "a PEM file with at least one CERTIFICATE",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| {
        ConfigError::new(TLS_KEY_VAR, &key_path, "a readable PEM private key").with_source(e)
    })?;
    // Parses the key and checks that it belongs to the leaf certificate.
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        ConfigError::new(TLS_KEY_VAR, &key_path, "the certificate's private key").with_source(e)
    })
}
