//! rustls client configs for OTLP: system roots or a CA bundle, optional client identity.
//! aws-lc-rs is passed explicitly: it is the workspace's only crypto provider, and relying
//! on a process-wide default would panic if another crate installed none or two.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::ConfigError;
use crate::otlp::{OtlpTlsConfig, PemFile};

/// Largest accepted PEM file: CA bundles are a few hundred KiB at most.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// A client config verifying the server with `tls.ca_certificate` (or the system roots when
/// unset) and presenting the client identity when set.
pub(crate) fn client_config(tls: &OtlpTlsConfig) -> Result<ClientConfig, ConfigError> {
    let roots = match &tls.ca_certificate {
        Some(file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(file)? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(file, "a PEM bundle of CA certificates").with_source(e))?;
            }
            roots
        }
        None => system_roots(),
    };
    let builder = builder()?.with_root_certificates(roots);
    match (&tls.client_certificate, &tls.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key_der = private_key(key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                invalid(key, "the private key of the client certificate").with_source(e)
            })
        }
        (Some(file), None) => Err(invalid(file, "a client key set with it")),
        (None, Some(file)) => Err(invalid(file, "a client certificate set with it")),
    }
}

/// A config for the connector of plain `http://` endpoints, which never handshakes.
pub(crate) fn plain_config() -> Result<ClientConfig, ConfigError> {
    Ok(builder()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, ConfigError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("tls", "aws-lc-rs", "a usable provider").with_source(e))
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        // Not an error: exports will fail and be counted; the log says why.
        tracing::warn!(
            errors = found.errors.len(),
            "no system root certificates found; https OTLP exports will fail unless \
             OTEL_EXPORTER_OTLP_CERTIFICATE is set"
        );
    }
    roots
}

fn read(file: &PemFile) -> Result<Vec<u8>, ConfigError> {
    let too_big = std::fs::metadata(&file.path)
        .map(|m| m.len() > MAX_PEM_BYTES)
        .map_err(|e| invalid(file, "a readable PEM file").with_source(e))?;
    if too_big {
        return Err(invalid(file, "a PEM file of at most 4 MiB"));
    }
    std::fs::read(&file.path).map_err(|e| invalid(file, "a readable PEM file").with_source(e))
}

fn certificates(file: &PemFile) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(file, "PEM certificates").with_source(e))?;
    if certs.is_empty() {
        return Err(invalid(
            file,
            "a PEM file with at least one CERTIFICATE block",
        ));
    }
    Ok(certs)
}

fn private_key(file: &PemFile) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read(file)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid(file, "a PEM private key").with_source(e))
}

/// Names the setting and shows the path (never the file's content).
fn invalid(file: &PemFile, expected: &str) -> ConfigError {
    ConfigError::new(&file.setting, &file.path.display().to_string(), expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(setting: &str, path: &std::path::Path) -> Option<PemFile> {
        Some(PemFile::new(path, setting))
    }

    #[test]
    fn unreadable_and_invalid_files_name_the_setting() {
        let dir = tempfile_dir();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not pem at all").unwrap();
        let missing = dir.join("missing.pem");
        for path in [&garbage, &missing] {
            let tls = OtlpTlsConfig {
                ca_certificate: pem("OTEL_EXPORTER_OTLP_CERTIFICATE", path),
                ..OtlpTlsConfig::default()
            };
            let err = client_config(&tls).err().unwrap();
            assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_CERTIFICATE");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
        let tls = OtlpTlsConfig {
            client_certificate: pem("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &garbage),
            ..OtlpTlsConfig::default()
        };
        let err = client_config(&tls).err().unwrap();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
        assert!(err.expected.contains("client key"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile_dir();
        let big = dir.join("big.pem");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_PEM_BYTES + 1).unwrap();
        let tls = OtlpTlsConfig {
            ca_certificate: pem("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", &big),
            ..OtlpTlsConfig::default()
        };
        let err = client_config(&tls).err().unwrap();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE");
        assert!(err.expected.contains("4 MiB"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sh-otlp-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn system_roots_by_default() {
        assert!(client_config(&OtlpTlsConfig::default()).is_ok());
    }
}
