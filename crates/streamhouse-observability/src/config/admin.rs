//! The admin listener: where `/metrics` and `/health*` are served off an application's own
//! port, and how they are protected.
//!
//! The address follows the OpenTelemetry variables `OTEL_EXPORTER_PROMETHEUS_HOST` (an IP
//! address or `localhost`, which means `127.0.0.1`; names are not resolved) and
//! `OTEL_EXPORTER_PROMETHEUS_PORT`, defaults `localhost` and `9464`;
//! `STREAMHOUSE_METRICS_ADDR` (`host:port`) is an alias. When both forms are set, each OTel
//! variable wins for the part it names: `STREAMHOUSE_METRICS_ADDR=0.0.0.0:9000` with
//! `OTEL_EXPORTER_PROMETHEUS_PORT=9500` listens on `0.0.0.0:9500`.
//!
//! The listener's transport limits and the readiness probe's bounds (every value is bounded;
//! a value out of range is a [`ConfigError`] naming the variable):
//!
//! | variable | meaning | default | range |
//! |---|---|---|---|
//! | `STREAMHOUSE_METRICS_HEADER_READ_TIMEOUT_MS` | a connection that has not sent a request head (or finished its TLS handshake) within this is closed | 5000 | 1 to 600000 |
//! | `STREAMHOUSE_METRICS_REQUEST_TIMEOUT_MS` | longest an admin request may take (503 after) | 30000 | 1 to 600000 |
//! | `STREAMHOUSE_METRICS_MAX_CONNECTIONS` | admin connections open at once; more wait to be accepted | 64 | 1 to 65536 |
//! | `STREAMHOUSE_METRICS_SHUTDOWN_GRACE_MS` | how long shutdown waits for admin requests in flight | 5000 | 0 to 600000 |
//! | `STREAMHOUSE_HEALTH_CHECK_TIMEOUT_MS` | bound on one readiness check | 2000 | 1 to 600000 |
//! | `STREAMHOUSE_HEALTH_CACHE_MS` | one run of the readiness checks answers probes for this long | 1000 | 1 to 600000 |

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
/// [`TransportLimits::header_read_timeout`] of the admin listener, in milliseconds.
pub const HEADER_READ_TIMEOUT_VAR: &str = "STREAMHOUSE_METRICS_HEADER_READ_TIMEOUT_MS";
/// [`AdminConfig::request_timeout`], in milliseconds.
pub const REQUEST_TIMEOUT_VAR: &str = "STREAMHOUSE_METRICS_REQUEST_TIMEOUT_MS";
/// [`TransportLimits::max_connections`] of the admin listener.
pub const MAX_CONNECTIONS_VAR: &str = "STREAMHOUSE_METRICS_MAX_CONNECTIONS";
/// [`TransportLimits::shutdown_grace`] of the admin listener, in milliseconds.
pub const SHUTDOWN_GRACE_VAR: &str = "STREAMHOUSE_METRICS_SHUTDOWN_GRACE_MS";
/// [`AdminConfig::health_check_timeout`], in milliseconds.
pub const HEALTH_CHECK_TIMEOUT_VAR: &str = "STREAMHOUSE_HEALTH_CHECK_TIMEOUT_MS";
/// [`AdminConfig::health_cache_for`], in milliseconds.
pub const HEALTH_CACHE_VAR: &str = "STREAMHOUSE_HEALTH_CACHE_MS";

/// Largest accepted duration of any admin setting: ten minutes. Past it a typo (a value in
/// microseconds, say) would hold a connection or a shutdown for hours.
pub const MAX_ADMIN_MILLIS: u64 = 600_000;
/// Largest accepted [`TransportLimits::max_connections`].
pub const MAX_ADMIN_CONNECTIONS: usize = 65_536;
/// Default [`AdminConfig::request_timeout`].
pub const DEFAULT_ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`AdminConfig::health_check_timeout`].
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`AdminConfig::health_cache_for`].
pub const DEFAULT_HEALTH_CACHE_FOR: Duration = Duration::from_secs(1);

/// What one HTTP listener enforces on its connections (see `serve::Server` with the `axum`
/// feature). The defaults suit an admin listener (a scraper and a few probes).
///
/// ```
/// use std::time::Duration;
/// use streamhouse_observability::config::admin::TransportLimits;
///
/// let limits = TransportLimits::default()
///     .with_max_connections(16)
///     .with_header_read_timeout(Duration::from_secs(2));
/// assert_eq!(limits.max_connections, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportLimits {
    /// A connection that has not sent a whole request head within this is closed; a TLS
    /// handshake gets the same bound, and so does an idle keep-alive connection.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl TransportLimits {
    /// Sets [`Self::header_read_timeout`].
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`Self::max_connections`] (at least 1).
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Sets [`Self::shutdown_grace`].
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

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
/// under the variable that named it, and read again when they change (see `serve::tls` with
/// the `tls` feature), so a renewed certificate needs no restart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// A certificate chain (leaf first) and its private key, both PEM files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// How the admin listener is set up; the address is
/// [`TelemetryConfig::metrics_addr`](super::TelemetryConfig::metrics_addr).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Whether a variable named the admin address.
    pub addr_configured: bool,
    /// Required on every admin request when set.
    pub bearer_token: Option<BearerToken>,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
    /// The listener's connection limits.
    pub limits: TransportLimits,
    /// Longest an admin request may take; 503 after.
    pub request_timeout: Duration,
    /// Bound on one readiness check (see
    /// [`HealthRegistry::from_config`](crate::health::HealthRegistry::from_config)).
    pub health_check_timeout: Duration,
    /// How long one run of the readiness checks answers probes.
    pub health_cache_for: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr_configured: false,
            bearer_token: None,
            tls: None,
            limits: TransportLimits::default(),
            request_timeout: DEFAULT_ADMIN_REQUEST_TIMEOUT,
            health_check_timeout: DEFAULT_HEALTH_CHECK_TIMEOUT,
            health_cache_for: DEFAULT_HEALTH_CACHE_FOR,
        }
    }
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

    /// Sets the listener's connection limits.
    pub fn with_limits(mut self, limits: TransportLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`Self::request_timeout`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the readiness checks' timeout and cache period.
    pub fn with_health_limits(mut self, check_timeout: Duration, cache_for: Duration) -> Self {
        self.health_check_timeout = check_timeout;
        self.health_cache_for = cache_for;
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
        let millis = |variable: &str, min: u64, field: &mut Duration| {
            if let Some(raw) = get(variable) {
                *field = parse_millis(variable, &raw, min)?;
            }
            Ok::<(), ConfigError>(())
        };
        millis(
            HEADER_READ_TIMEOUT_VAR,
            1,
            &mut config.limits.header_read_timeout,
        )?;
        millis(SHUTDOWN_GRACE_VAR, 0, &mut config.limits.shutdown_grace)?;
        millis(REQUEST_TIMEOUT_VAR, 1, &mut config.request_timeout)?;
        millis(
            HEALTH_CHECK_TIMEOUT_VAR,
            1,
            &mut config.health_check_timeout,
        )?;
        millis(HEALTH_CACHE_VAR, 1, &mut config.health_cache_for)?;
        if let Some(raw) = get(MAX_CONNECTIONS_VAR) {
            config.limits.max_connections = match raw.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_ADMIN_CONNECTIONS).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        MAX_CONNECTIONS_VAR,
                        &raw,
                        format!("an integer from 1 to {MAX_ADMIN_CONNECTIONS}"),
                    ));
                }
            };
        }
        Ok((config, addr))
    }
}

/// Whole milliseconds from `min` to [`MAX_ADMIN_MILLIS`].
fn parse_millis(variable: &str, raw: &str, min: u64) -> Result<Duration, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if (min..=MAX_ADMIN_MILLIS).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::new(
            variable,
            raw,
            format!("whole milliseconds from {min} to {MAX_ADMIN_MILLIS}"),
        )),
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
    fn limits_and_health_bounds_are_read() {
        let (config, _) = read(&[]).unwrap();
        assert_eq!(config, AdminConfig::default());
        let (config, _) = read(&[
            (HEADER_READ_TIMEOUT_VAR, "250"),
            (REQUEST_TIMEOUT_VAR, " 1500 "),
            (MAX_CONNECTIONS_VAR, "8"),
            (SHUTDOWN_GRACE_VAR, "0"),
            (HEALTH_CHECK_TIMEOUT_VAR, "600000"),
            (HEALTH_CACHE_VAR, "5000"),
        ])
        .unwrap();
        assert_eq!(
            config.limits.header_read_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(config.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.limits.max_connections, 8);
        assert_eq!(config.limits.shutdown_grace, Duration::ZERO);
        assert_eq!(config.health_check_timeout, Duration::from_secs(600));
        assert_eq!(config.health_cache_for, Duration::from_secs(5));
        // Limits alone do not move the endpoints off an application's own port.
        assert!(!config.is_separate());
    }

    #[test]
    fn out_of_range_limits_name_their_variable() {
        for (variable, value) in [
            (HEADER_READ_TIMEOUT_VAR, "0"),
            (HEADER_READ_TIMEOUT_VAR, "600001"),
            (REQUEST_TIMEOUT_VAR, "-5"),
            (MAX_CONNECTIONS_VAR, "0"),
            (MAX_CONNECTIONS_VAR, "65537"),
            (SHUTDOWN_GRACE_VAR, "1e3"),
            (HEALTH_CHECK_TIMEOUT_VAR, "2s"),
            (HEALTH_CACHE_VAR, "0"),
            (HEALTH_CACHE_VAR, "18446744073709551616"),
        ] {
            let err = read(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
            assert_eq!(err.value, value);
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
