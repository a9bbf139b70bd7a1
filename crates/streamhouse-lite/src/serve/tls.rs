//! HTTPS for a listener: a rustls acceptor (no OpenSSL) from PEM files. Anything wrong with
//! a file is a [`ConfigError`] naming the variable that named the file.

use std::sync::Arc;

use streamhouse_observability::config::ConfigError;
use streamhouse_observability::config::TlsFiles;
use streamhouse_observability::config::admin::{TLS_CERT_VAR, TLS_KEY_VAR};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An acceptor serving the certificate chain and key in `files`, HTTP/1.1 only.
///
/// # Errors
/// A [`ConfigError`] naming `STREAMHOUSE_METRICS_TLS_CERT` or `STREAMHOUSE_METRICS_TLS_KEY`
/// when that file cannot be read, holds no PEM certificate or key, or the key does not fit
/// the certificate.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ConfigError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            error(
                TLS_CERT_VAR,
                &cert_path,
                format!("a readable PEM certificate chain ({e})"),
            )
        })?;
    if certs.is_empty() {
        return Err(error(
            TLS_CERT_VAR,
            &cert_path,
            "a PEM file with at least one CERTIFICATE",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        error(
            TLS_KEY_VAR,
            &key_path,
            format!("a readable PEM private key ({e})"),
        )
    })?;
    // An explicit provider: the process default is ambiguous when several are compiled in.
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            error(
                TLS_CERT_VAR,
                &cert_path,
                format!("usable TLS settings ({e})"),
            )
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            error(
                TLS_KEY_VAR,
                &key_path,
                format!("the certificate's private key ({e})"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn error(variable: &str, path: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        value: path.to_owned(),
        expected: expected.into(),
    }
}
