//! The admin listener: where `/metrics` and `/health*` are served off an application's own
//! port, and how they are protected.
//!
//! The address follows the OpenTelemetry variables `OTEL_EXPORTER_PROMETHEUS_HOST` (an IP
//! address or `localhost`, which means `127.0.0.1`; names are not resolved) and
//! `OTEL_EXPORTER_PROMETHEUS_PORT`, defaults `localhost` and `9464`;
//! `STREAMHOUSE_METRICS_ADDR` (`host:port`) is an alias. When both forms are set, each OTel
//! variable wins for the part it names: `STREAMHOUSE_METRICS_ADDR=0.0.0.0:9000` with
//! `OTEL_EXPORTER_PROMETHEUS_PORT=9500` listens on `0.0.0.0:9500`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use subtle::ConstantTimeEq;

use super::ConfigError;

/// The OpenTelemetry variable for the admin host.
pub const PROMETHEUS_HOST_VAR: &str = "OTEL_EXPORTER_PROMETHEUS_HOST";
/// The OpenTelemetry variable for the admin port.
pub const PROMETHEUS_PORT_VAR: &str = "OTEL_EXPORTER_PROMETHEUS_PORT";
/// StreamHouse's alias for both, as `host:port`.
pub const METRICS_ADDR_VAR: &str = "STREAMHOUSE_METRICS_ADDR";
/// The bearer token scrapers and probes must send.
pub const BEARER_TOKEN_VAR: &str = "STREAMHOUSE_METRICS_BEARER_TOKEN";
/// PEM certificate chain for HTTPS on the admin listener.
pub const TLS_CERT_VAR: &str = "STREAMHOUSE_METRICS_TLS_CERT";
/// PEM private key for HTTPS on the admin listener.
pub const TLS_KEY_VAR: &str = "STREAMHOUSE_METRICS_TLS_KEY";

/// A secret that `Authorization: Bearer` must carry. Never shown: `Debug` prints
/// `BearerToken(<redacted>)`, and errors about it omit the value.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// A token; `None` unless it is a non-empty RFC 6750 `b64token`
    /// (`A-Z a-z 0-9 - . _ ~ + /`, then optional `=`), which fits in a header.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        let body = token.trim_end_matches('=');
        let valid = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        valid.then_some(BearerToken(token))
    }

    /// True when `offered` is this token; takes the same time wherever the two differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(offered).into()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// PEM files for HTTPS; read when the listener starts, so an unreadable file is reported then
/// under the variable that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the admin listener is set up; the address is
/// [`TelemetryConfig::metrics_addr`](super::TelemetryConfig::metrics_addr).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Whether a variable named the admin address.
    pub addr_configured: bool,
    /// Required on every admin request when set.
    pub bearer_token: Option<BearerToken>,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
}

impl AdminConfig {
    /// True when any admin setting was given: an application with a public port of its own
    /// then serves `/metrics` and `/health*` on the admin address only.
    pub fn is_separate(&self) -> bool {
        self.addr_configured || self.bearer_token.is_some() || self.tls.is_some()
    }

    /// Requires `token` on every admin request.
    pub fn with_bearer_token(mut self, token: BearerToken) -> Self {
        self.bearer_token = Some(token);
        self
    }

    /// Serves HTTPS with these files.
    pub fn with_tls(mut self, tls: TlsFiles) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Reads the admin variables through `get` (which already drops empty values) and
    /// returns the admin address, starting from `addr`.
    pub(crate) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        addr: SocketAddr,
    ) -> Result<(Self, SocketAddr), ConfigError> {
        let mut config = AdminConfig::default();
        let mut addr = addr;
        if let Some(raw) = get(METRICS_ADDR_VAR) {
            addr = parse_addr(METRICS_ADDR_VAR, &raw)?;
            config.addr_configured = true;
        }
        if let Some(raw) = get(PROMETHEUS_HOST_VAR) {
            addr.set_ip(parse_host(PROMETHEUS_HOST_VAR, &raw)?);
            config.addr_configured = true;
        }
        if let Some(raw) = get(PROMETHEUS_PORT_VAR) {
            let port = raw.trim().parse::<u16>().map_err(|_| {
                ConfigError::new(PROMETHEUS_PORT_VAR, &raw, "a port from 0 to 65535")
            })?;
            addr.set_port(port);
            config.addr_configured = true;
        }
        if let Some(raw) = get(BEARER_TOKEN_VAR) {
            let token = BearerToken::new(raw.trim()).ok_or_else(|| {
                // The value is a secret: it stays out of the error.
                ConfigError::new(
                    BEARER_TOKEN_VAR,
                    "<redacted>",
                    "a token of A-Z a-z 0-9 - . _ ~ + / (then optional =)",
                )
            })?;
            config.bearer_token = Some(token);
        }
        config.tls = match (get(TLS_CERT_VAR), get(TLS_KEY_VAR)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: PathBuf::from(cert.trim()),
                key: PathBuf::from(key.trim()),
            }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    TLS_KEY_VAR,
                    "",
                    format!("a PEM key file, since {TLS_CERT_VAR} is set"),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    TLS_CERT_VAR,
                    "",
                    format!("a PEM certificate file, since {TLS_KEY_VAR} is set"),
                ));
            }
        };
        Ok((config, addr))
    }
}

fn parse_addr(variable: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || ConfigError::new(variable, raw, "an address like 127.0.0.1:9464");
    let raw_trimmed = raw.trim();
    if let Ok(addr) = raw_trimmed.parse() {
        return Ok(addr);
    }
    let (host, port) = raw_trimmed.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok(SocketAddr::new(parse_host(variable, host)?, port))
}

/// An IP literal (IPv6 with or without brackets) or `localhost` (127.0.0.1). Names are not
/// resolved: a listener address should not depend on DNS at start-up.
fn parse_host(variable: &str, raw: &str) -> Result<IpAddr, ConfigError> {
    let host = raw.trim();
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .map_err(|_| ConfigError::new(variable, raw, "an IP address or localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<(AdminConfig, SocketAddr), ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let default = "127.0.0.1:9464".parse().unwrap();
        AdminConfig::from_lookup(&|name| vars.get(name).cloned(), default)
    }

    #[test]
    fn nothing_set_keeps_the_default_and_a_single_port() {
        let (config, addr) = read(&[]).unwrap();
        assert!(!config.is_separate());
        assert_eq!(addr, "127.0.0.1:9464".parse().unwrap());
    }

    #[test]
    fn otel_variables_win_over_the_alias_part_by_part() {
        let (config, addr) = read(&[
            (METRICS_ADDR_VAR, "0.0.0.0:9000"),
            (PROMETHEUS_PORT_VAR, "9500"),
        ])
        .unwrap();
        assert!(config.is_separate());
        assert_eq!(addr, "0.0.0.0:9500".parse().unwrap());
        let (_, addr) = read(&[
            (METRICS_ADDR_VAR, "0.0.0.0:9000"),
            (PROMETHEUS_HOST_VAR, "localhost"),
        ])
        .unwrap();
        assert_eq!(addr, "127.0.0.1:9000".parse().unwrap());
        let (_, addr) = read(&[(PROMETHEUS_HOST_VAR, "[::1]")]).unwrap();
        assert_eq!(addr, "[::1]:9464".parse().unwrap());
        let (_, addr) = read(&[(METRICS_ADDR_VAR, "localhost:9100")]).unwrap();
        assert_eq!(addr, "127.0.0.1:9100".parse().unwrap());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            (PROMETHEUS_PORT_VAR, "70000"),
            (PROMETHEUS_HOST_VAR, "metrics.example.com"),
            (METRICS_ADDR_VAR, "localhost"),
            (TLS_CERT_VAR, "cert.pem"),
            (TLS_KEY_VAR, "key.pem"),
        ] {
            let err = read(&[(variable, value)]).unwrap_err();
            let named = if variable == TLS_CERT_VAR {
                TLS_KEY_VAR
            } else if variable == TLS_KEY_VAR {
                TLS_CERT_VAR
            } else {
                variable
            };
            assert_eq!(err.variable, named, "{err}");
        }
    }

    #[test]
    fn a_token_is_checked_and_never_shown() {
        let (config, _) = read(&[(BEARER_TOKEN_VAR, "s3cr3t-T0ken")]).unwrap();
        let token = config.bearer_token.clone().unwrap();
        assert!(token.matches(b"s3cr3t-T0ken"));
        assert!(!token.matches(b"s3cr3t-T0kem"));
        assert!(!token.matches(b"s3cr3t"));
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let err = read(&[(BEARER_TOKEN_VAR, "has space")]).unwrap_err();
        assert_eq!(err.variable, BEARER_TOKEN_VAR);
        assert!(!err.to_string().contains("has space"));
    }
}
