//! [`Settings`]: an [`OtlpExporterConfig`] checked and resolved once, shared by every
//! transport: endpoint, headers, compression, timeout and TLS.

use std::time::Duration;

use crate::config::ConfigError;
use crate::otlp::{OtlpExporterConfig, OtlpProtocol};

/// Bound on the total size of the request headers set in code or in the environment.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// One exporter's resolved transport settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) endpoint: http::Uri,
    pub(crate) headers: http::HeaderMap,
    pub(crate) gzip: bool,
    pub(crate) timeout: Duration,
    /// The rustls client config: roots and identity for `https://`, empty for `http://`.
    #[cfg(feature = "tls")]
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Settings {
    /// Checks `config` against the compiled-in features and reads its TLS files.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting: a protocol or `https://` whose feature is off,
    /// an endpoint or header that does not parse, an unreadable or invalid PEM file.
    pub(crate) fn resolve(config: &OtlpExporterConfig) -> Result<Self, ConfigError> {
        check_protocol(config.protocol)?;
        let endpoint: http::Uri = config.endpoint.trim().parse().map_err(|_| {
            ConfigError::new(
                "OtlpExporterConfig::endpoint",
                &config.endpoint,
                "an http:// or https:// URL with a host",
            )
        })?;
        let https = match endpoint.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(ConfigError::new(
                    "OtlpExporterConfig::endpoint",
                    &config.endpoint,
                    "an http:// or https:// URL with a host",
                ));
            }
        };
        if endpoint.host().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                "OtlpExporterConfig::endpoint",
                &config.endpoint,
                "an http:// or https:// URL with a host",
            ));
        }
        #[cfg(not(feature = "tls"))]
        if https || config.tls.is_set() {
            return Err(ConfigError::new(
                "OtlpExporterConfig::endpoint",
                &config.endpoint,
                "an http:// URL: https:// and TLS files need the `tls` feature of \
                 streamhouse-observability",
            ));
        }
        Ok(Settings {
            endpoint,
            headers: headers(config)?,
            gzip: config.gzip,
            timeout: config.timeout,
            // TLS files apply to https:// only; an http:// endpoint never reads them.
            #[cfg(feature = "tls")]
            tls: std::sync::Arc::new(match https {
                true => super::tls::client_config(&config.tls)?,
                false => super::tls::plain_config()?,
            }),
        })
    }

    /// A connector for these settings: TCP with the export timeout as connect timeout and,
    /// with the `tls` feature, rustls for `https://` (ALPN `h2` only when `http2_only`).
    #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
    pub(crate) fn connector(&self, http2_only: bool) -> Connector {
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.timeout));
        #[cfg(feature = "tls")]
        {
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*self.tls).clone())
                .https_or_http();
            match http2_only {
                true => builder.enable_http2().wrap_connector(tcp),
                false => builder.enable_all_versions().wrap_connector(tcp),
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = http2_only;
            tcp
        }
    }
}

/// The connector every transport uses.
#[cfg(all(any(feature = "otlp-grpc", feature = "otlp-http"), feature = "tls"))]
pub(crate) type Connector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
/// The connector every transport uses.
#[cfg(all(
    any(feature = "otlp-grpc", feature = "otlp-http"),
    not(feature = "tls")
))]
pub(crate) type Connector = hyper_util::client::legacy::connect::HttpConnector;

fn check_protocol(protocol: OtlpProtocol) -> Result<(), ConfigError> {
    let (compiled, feature) = match protocol {
        OtlpProtocol::Grpc => (cfg!(feature = "otlp-grpc"), "otlp-grpc"),
        OtlpProtocol::HttpProtobuf => (cfg!(feature = "otlp-http"), "otlp-http"),
    };
    match compiled {
        true => Ok(()),
        false => Err(ConfigError::new(
            "OtlpExporterConfig::protocol",
            protocol.as_str(),
            format!(
                "a protocol compiled in: OTLP {} needs the `{feature}` feature of \
                 streamhouse-observability",
                protocol.as_str()
            ),
        )),
    }
}

fn headers(config: &OtlpExporterConfig) -> Result<http::HeaderMap, ConfigError> {
    let mut map = http::HeaderMap::new();
    let mut total = 0;
    for (name, value) in &config.headers {
        // The message names the header, never its value: values often hold credentials.
        let invalid = |expected: &str| {
            ConfigError::new(
                "OtlpExporterConfig::headers",
                &format!("{name}=<redacted>"),
                expected,
            )
        };
        total += name.len() + value.len();
        if total > MAX_HEADER_BYTES {
            return Err(invalid("headers of at most 16 KiB in total"));
        }
        let key = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("an HTTP header name"))?;
        let value =
            http::HeaderValue::from_str(value).map_err(|_| invalid("a visible ASCII value"))?;
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "otlp-http")]
    #[test]
    fn headers_are_checked_and_never_echoed() {
        let config = OtlpExporterConfig::new("http://c:4318/v1/traces", OtlpProtocol::HttpProtobuf)
            .with_header("authorization", "Bearer s3cret\n");
        let err = Settings::resolve(&config).err().unwrap();
        assert_eq!(err.variable, "OtlpExporterConfig::headers");
        assert!(!err.to_string().contains("s3cret"));
        let big = OtlpExporterConfig::new("http://c:4318/v1/traces", OtlpProtocol::HttpProtobuf)
            .with_header("x-big", "a".repeat(MAX_HEADER_BYTES));
        assert!(Settings::resolve(&big).is_err());
    }

    #[cfg(feature = "otlp-http")]
    #[test]
    fn endpoints_need_a_scheme_and_host() {
        for endpoint in ["collector:4317", "ftp://c", "http://", "not a url"] {
            let config = OtlpExporterConfig::new(endpoint, OtlpProtocol::HttpProtobuf);
            let err = Settings::resolve(&config).err().unwrap();
            assert_eq!(err.variable, "OtlpExporterConfig::endpoint", "{endpoint}");
        }
    }

    #[cfg(not(feature = "otlp-grpc"))]
    #[test]
    fn grpc_without_its_feature_names_the_feature() {
        let config = OtlpExporterConfig::new("http://c:4317", OtlpProtocol::Grpc);
        let err = Settings::resolve(&config).err().unwrap();
        assert!(err.to_string().contains("otlp-grpc"), "{err}");
        assert!(err.to_string().contains("grpc"), "{err}");
    }

    #[cfg(not(feature = "otlp-http"))]
    #[test]
    fn http_without_its_feature_names_the_feature() {
        let config = OtlpExporterConfig::new("http://c:4318", OtlpProtocol::HttpProtobuf);
        let err = Settings::resolve(&config).err().unwrap();
        assert!(err.to_string().contains("otlp-http"), "{err}");
    }

    #[cfg(all(not(feature = "tls"), feature = "otlp-http"))]
    #[test]
    fn https_without_tls_names_the_feature() {
        let config = OtlpExporterConfig::new("https://c:4318", OtlpProtocol::HttpProtobuf);
        let err = Settings::resolve(&config).err().unwrap();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }
}
