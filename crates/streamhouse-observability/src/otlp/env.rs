//! Reads [`OtlpConfig`] from the standard variables. The one place the OTLP settings meet
//! the environment: exporters get every value from the config, never from the process env.

use std::time::Duration;

use opentelemetry_sdk::metrics::Temporality;

use super::config::{OtlpConfig, OtlpExporterConfig, OtlpProtocol, PemFile, Signal, signal_url};
use crate::config::ConfigError;

/// Longest accepted endpoint; real ones are far shorter, longer ones are mistakes.
const MAX_ENDPOINT_BYTES: usize = 2048;
/// Largest accepted queue or batch size: queues are preallocated by the SDK.
const MAX_QUEUE_SIZE: usize = 1 << 20;

impl OtlpConfig {
    /// Reads the `OTEL_EXPORTER_OTLP_*`, `OTEL_METRIC_EXPORT_*`, `OTEL_BSP_*`, `OTEL_BLRP_*`
    /// and `OTEL_{METRICS,TRACES,LOGS}_EXPORTER` variables through `get`, which returns
    /// `None` for unset or blank variables.
    pub(crate) fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = OtlpConfig::default();
        for signal in Signal::ALL {
            let (otlp, console) = exporters_selected(get, signal)?;
            if console {
                config.console.push(signal);
            }
            let exporter = match otlp {
                true => exporter_from_lookup(get, signal)?,
                false => None,
            };
            match signal {
                Signal::Metrics => config.metrics = exporter,
                Signal::Traces => config.traces = exporter,
                Signal::Logs => config.logs = exporter,
            }
        }
        let millis = |name: &str, into: &mut Duration| -> Result<(), ConfigError> {
            if let Some(raw) = get(name) {
                *into = positive_millis(name, &raw)?;
            }
            Ok(())
        };
        let size = |name: &str, into: &mut usize| -> Result<(), ConfigError> {
            if let Some(raw) = get(name) {
                *into = positive_size(name, &raw)?;
            }
            Ok(())
        };
        millis(
            "OTEL_METRIC_EXPORT_INTERVAL",
            &mut config.metric_export_interval,
        )?;
        millis(
            "OTEL_METRIC_EXPORT_TIMEOUT",
            &mut config.metric_export_timeout,
        )?;
        millis("OTEL_BSP_SCHEDULE_DELAY", &mut config.span_export_delay)?;
        millis("OTEL_BSP_EXPORT_TIMEOUT", &mut config.span_export_timeout)?;
        size("OTEL_BSP_MAX_QUEUE_SIZE", &mut config.span_queue_size)?;
        size(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            &mut config.span_max_export_batch_size,
        )?;
        millis(
            "OTEL_BLRP_SCHEDULE_DELAY",
            &mut config.log_batch.schedule_delay,
        )?;
        millis(
            "OTEL_BLRP_EXPORT_TIMEOUT",
            &mut config.log_batch.export_timeout,
        )?;
        size("OTEL_BLRP_MAX_QUEUE_SIZE", &mut config.log_batch.queue_size)?;
        size(
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            &mut config.log_batch.max_export_batch_size,
        )?;
        let variable = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        if let Some(raw) = get(variable) {
            config.temporality = match raw.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" => Temporality::Delta,
                "lowmemory" => Temporality::LowMemory,
                _ => {
                    return Err(ConfigError::new(
                        variable,
                        &raw,
                        "cumulative, delta or lowmemory",
                    ));
                }
            };
        }
        Ok(config)
    }
}

/// `OTEL_<SIGNAL>_EXPORTER`: a comma list of `otlp` and `console`, or `none` alone.
/// Returns (otlp, console); unset means `otlp`.
fn exporters_selected(
    get: &dyn Fn(&str) -> Option<String>,
    signal: Signal,
) -> Result<(bool, bool), ConfigError> {
    let variable = format!("OTEL_{}EXPORTER", signal.env_infix());
    let Some(raw) = get(&variable) else {
        return Ok((true, false));
    };
    let expected = "a comma list of otlp and console, or none alone";
    let names: Vec<String> = raw
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let (mut otlp, mut console) = (false, false);
    for name in &names {
        match name.as_str() {
            "otlp" => otlp = true,
            "console" => console = true,
            "none" if names.len() == 1 => {}
            _ => return Err(ConfigError::new(&variable, &raw, expected)),
        }
    }
    Ok((otlp, console))
}

/// One signal's exporter from the generic and per-signal variables; per-signal wins.
fn exporter_from_lookup(
    get: &dyn Fn(&str) -> Option<String>,
    signal: Signal,
) -> Result<Option<OtlpExporterConfig>, ConfigError> {
    let infix = signal.env_infix();
    let specific = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{infix}{suffix}");
    // Returns the first set variable of the per-signal and generic pair, with its name.
    let either = |suffix: &str| {
        let name = specific(suffix);
        match get(&name) {
            Some(value) => Some((name, value)),
            None => {
                let name = format!("OTEL_EXPORTER_OTLP_{suffix}");
                get(&name).map(|value| (name, value))
            }
        }
    };

    let protocol = match either("PROTOCOL") {
        Some((name, raw)) => OtlpProtocol::parse(&name, &raw)?,
        None => OtlpProtocol::HttpProtobuf,
    };
    let insecure = match either("INSECURE") {
        Some((name, raw)) => parse_bool(&name, &raw)?,
        None => false,
    };
    let endpoint = match get(&specific("ENDPOINT")) {
        Some(raw) => endpoint(&specific("ENDPOINT"), &raw, protocol, insecure)?,
        None => match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(raw) => {
                let base = endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &raw, protocol, insecure)?;
                signal_url(&base, protocol, signal)
            }
            None => return Ok(None),
        },
    };
    let mut exporter = OtlpExporterConfig::new(endpoint, protocol);
    // Generic headers first, then per-signal ones, which win on a shared name.
    for name in ["OTEL_EXPORTER_OTLP_HEADERS".to_owned(), specific("HEADERS")] {
        if let Some(raw) = get(&name) {
            for (key, value) in parse_headers(&name, &raw)? {
                exporter
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                exporter.headers.push((key, value));
            }
        }
    }
    if let Some((name, raw)) = either("TIMEOUT") {
        exporter.timeout = positive_millis(&name, &raw)?;
    }
    if let Some((name, raw)) = either("COMPRESSION") {
        exporter.gzip = match raw.trim().to_ascii_lowercase().as_str() {
            "gzip" => true,
            "none" => false,
            _ => return Err(ConfigError::new(&name, &raw, "gzip or none")),
        };
    }
    let file = |suffix: &str| -> Result<Option<PemFile>, ConfigError> {
        match either(suffix) {
            None => Ok(None),
            Some((name, raw)) if raw.trim().len() > MAX_ENDPOINT_BYTES => Err(ConfigError::new(
                &name,
                &raw,
                format!("a file path of at most {MAX_ENDPOINT_BYTES} bytes"),
            )),
            Some((name, raw)) => Ok(Some(PemFile::new(raw.trim(), name))),
        }
    };
    exporter.tls.ca_certificate = file("CERTIFICATE")?;
    exporter.tls.client_certificate = file("CLIENT_CERTIFICATE")?;
    exporter.tls.client_key = file("CLIENT_KEY")?;
    Ok(Some(exporter))
}

/// Checks an endpoint and gives a scheme-less gRPC one (`collector:4317`) the scheme that
/// `insecure` implies, as the spec does; HTTP endpoints need a scheme.
fn endpoint(
    variable: &str,
    raw: &str,
    protocol: OtlpProtocol,
    insecure: bool,
) -> Result<String, ConfigError> {
    let trimmed = raw.trim();
    let has_scheme = trimmed.contains("://");
    let url = match (has_scheme, protocol) {
        (true, _) => trimmed.to_owned(),
        (false, OtlpProtocol::Grpc) if insecure => format!("http://{trimmed}"),
        (false, OtlpProtocol::Grpc) => format!("https://{trimmed}"),
        (false, OtlpProtocol::HttpProtobuf) => String::new(),
    };
    validate_endpoint(variable, raw, &url)?;
    Ok(url)
}

/// Accepts `http://host[:port][/path]` and `https://...` (bounded in length); anything else
/// is an error now rather than a silent export failure later.
pub(crate) fn validate_endpoint(variable: &str, raw: &str, url: &str) -> Result<(), ConfigError> {
    let expected = "an http:// or https:// URL with a host, like http://127.0.0.1:4318 \
                    (grpc also takes host:port, https unless *_INSECURE=true)";
    if url.len() > MAX_ENDPOINT_BYTES {
        return Err(ConfigError::new(
            variable,
            raw,
            format!("a URL of at most {MAX_ENDPOINT_BYTES} bytes"),
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(variable, raw, expected))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(ConfigError::new(variable, raw, expected))
    }
}

/// Parses `key=value,key2=value2` (values percent-decoded). The error never repeats the
/// value: headers usually hold credentials.
fn parse_headers(variable: &str, raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let bad = || {
        ConfigError::new(
            variable,
            "<redacted>",
            "a list of name=value pairs separated by commas, names being HTTP header tokens",
        )
    };
    let mut headers = Vec::new();
    for pair in raw.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(bad());
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| bad())?;
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(bad());
        }
        headers.push((key.to_ascii_lowercase(), value.into_owned()));
    }
    Ok(headers)
}

fn parse_bool(variable: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(variable, raw, "true or false")),
    }
}

fn positive_millis(variable: &str, raw: &str) -> Result<Duration, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::new(
            variable,
            raw,
            "a positive whole number of milliseconds",
        )),
    }
}

fn positive_size(variable: &str, raw: &str) -> Result<usize, ConfigError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n > 0 && n <= MAX_QUEUE_SIZE => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            raw,
            format!("a whole number from 1 to {MAX_QUEUE_SIZE}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<OtlpConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_lookup(&|name| vars.get(name).cloned())
    }

    #[test]
    fn off_without_an_endpoint() {
        let config = from(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=b")]).unwrap();
        assert_eq!(config, OtlpConfig::default());
    }

    #[test]
    fn generic_endpoint_gets_signal_paths_over_http_only() {
        let http = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(http.logs.unwrap().endpoint, "http://c:4318/v1/logs");
        assert_eq!(http.metrics.unwrap().endpoint, "http://c:4318/v1/metrics");
        assert_eq!(http.traces.unwrap().endpoint, "http://c:4318/v1/traces");
        let grpc = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(grpc.metrics.unwrap().endpoint, "http://c:4317");
    }

    #[test]
    fn per_signal_variables_win() {
        let config = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=a,authorization=generic",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "Authorization=Bearer%20t",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZip"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/m.key"),
        ])
        .unwrap();
        let traces = config.traces.unwrap();
        assert_eq!(traces.endpoint, "http://t:4317");
        assert_eq!(traces.protocol, OtlpProtocol::Grpc);
        assert_eq!(
            traces.headers,
            vec![
                ("x-tenant".to_owned(), "a".to_owned()),
                ("authorization".to_owned(), "Bearer t".to_owned())
            ]
        );
        assert_eq!(traces.timeout, Duration::from_secs(3));
        assert!(traces.gzip);
        let ca = traces.tls.ca_certificate.unwrap();
        assert_eq!(ca.path.to_str(), Some("/traces/ca.pem"));
        assert_eq!(ca.setting, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE");
        assert_eq!(traces.tls.client_key, None);
        let metrics = config.metrics.unwrap();
        assert_eq!(metrics.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(metrics.timeout, Duration::from_millis(1500));
        let ca = metrics.tls.ca_certificate.unwrap();
        assert_eq!(ca.setting, "OTEL_EXPORTER_OTLP_CERTIFICATE");
        let cert = metrics.tls.client_certificate.unwrap();
        assert_eq!(cert.setting, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
        let key = metrics.tls.client_key.unwrap();
        assert_eq!(key.setting, "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY");
        assert_eq!(config.metric_export_interval, Duration::from_millis(250));
        assert_eq!(config.temporality, Temporality::Delta);
    }

    #[test]
    fn insecure_gives_scheme_less_grpc_endpoints_their_scheme() {
        let base = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        let secure = from(&base).unwrap();
        assert_eq!(secure.traces.unwrap().endpoint, "https://collector:4317");
        let mut vars = base.to_vec();
        vars.push(("OTEL_EXPORTER_OTLP_INSECURE", "TRUE"));
        vars.push(("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false"));
        let insecure = from(&vars).unwrap();
        assert_eq!(insecure.traces.unwrap().endpoint, "http://collector:4317");
        assert_eq!(insecure.logs.unwrap().endpoint, "https://collector:4317");
        // A scheme wins over INSECURE.
        let explicit = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ])
        .unwrap();
        assert_eq!(explicit.traces.unwrap().endpoint, "https://collector:4317");
    }

    #[test]
    fn exporter_lists_select_otlp_and_console() {
        let config = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "None"),
            ("OTEL_LOGS_EXPORTER", "console"),
            ("OTEL_METRICS_EXPORTER", "OTLP, console"),
        ])
        .unwrap();
        assert!(config.metrics.is_some());
        assert!(config.traces.is_none());
        assert!(config.logs.is_none());
        assert_eq!(config.console, vec![Signal::Metrics, Signal::Logs]);
    }

    #[test]
    fn batch_variables_good_values() {
        let config = from(&[
            ("OTEL_METRIC_EXPORT_TIMEOUT", "1234"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "2345"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "128"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "150"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "3456"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "99"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "33"),
        ])
        .unwrap();
        assert_eq!(config.metric_export_timeout, Duration::from_millis(1234));
        assert_eq!(config.span_export_timeout, Duration::from_millis(2345));
        assert_eq!(config.span_max_export_batch_size, 64);
        assert_eq!(config.span_queue_size, 128);
        assert_eq!(config.log_batch.schedule_delay, Duration::from_millis(150));
        assert_eq!(config.log_batch.export_timeout, Duration::from_millis(3456));
        assert_eq!(config.log_batch.queue_size, 99);
        assert_eq!(config.log_batch.max_export_batch_size, 33);
        // Logs keep their own defaults when only span variables are set.
        let spans_only = from(&[("OTEL_BSP_MAX_QUEUE_SIZE", "7")]).unwrap();
        assert_eq!(spans_only.log_batch, OtlpConfig::default().log_batch);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let long = format!("http://{}:4318", "a".repeat(3000));
        let cases = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c:21"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", long.as_str()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://bad host"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "yes"),
            ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "1"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "-5"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "30s"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "1.5"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", ""),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "99999999999"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "many"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "both"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_METRICS_EXPORTER", "otlp,none"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", long.as_str()),
        ];
        for (variable, value) in cases {
            let mut vars = vec![(variable, value)];
            if !variable.ends_with("ENDPOINT") {
                vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"));
            }
            let vars: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            // An empty value reaches the parser here; `from_env` turns blanks into unset.
            let err = OtlpConfig::from_lookup(&|name| vars.get(name).cloned()).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert_eq!(err.value, value);
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn http_needs_a_scheme_even_when_insecure() {
        let err = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
    }

    #[test]
    fn bad_headers_are_named_but_never_echoed() {
        for raw in ["Authorization: Bearer s3cret", "bad name=s3cret", "=s3cret"] {
            let err = from(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", raw),
            ])
            .unwrap_err();
            assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_HEADERS");
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(!format!("{err:?}").contains("s3cret"));
        }
    }
}
