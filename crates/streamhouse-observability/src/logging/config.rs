//! [`LoggingConfig`]: the filter and format of our layers, in code or from the environment.

use tracing_subscriber::filter::EnvFilter;

use crate::config::ConfigError;

/// The default filter when `RUST_LOG` is unset: the application's and the SDK's warnings and
/// errors show, the SDK's debug chatter does not.
pub const DEFAULT_FILTER: &str = "info";

/// The longest `RUST_LOG` accepted, in bytes. Directives are compiled into matchers that run
/// on every callsite; real filters are a few dozen bytes.
pub const MAX_FILTER_BYTES: usize = 4096;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// `tracing-subscriber`'s human-readable lines.
    #[default]
    Human,
    /// One JSON object per line (see [`JsonLogLayer`](super::JsonLogLayer)): span fields, the
    /// span list and, inside spans, `trace_id` and `span_id`.
    Json,
}

/// Filter and format of the log output.
///
/// ```
/// use streamhouse_observability::logging::{LogFormat, LoggingConfig};
///
/// let config = LoggingConfig::default()
///     .with_filter("info,streamhouse=debug")
///     .with_format(LogFormat::Json);
/// assert_eq!(config.filter, "info,streamhouse=debug");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggingConfig {
    /// `EnvFilter` directives, as in `RUST_LOG`; applied to each of our layers (see the
    /// [module docs](super)).
    pub filter: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            filter: DEFAULT_FILTER.to_owned(),
            format: LogFormat::Human,
        }
    }
}

impl LoggingConfig {
    /// Reads `RUST_LOG` and `STREAMHOUSE_LOG_FORMAT` from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`.
    ///
    /// ```
    /// use streamhouse_observability::logging::{LogFormat, LoggingConfig};
    ///
    /// let config = LoggingConfig::from_lookup(|name| match name {
    ///     "STREAMHOUSE_LOG_FORMAT" => Some("json".to_owned()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.format, LogFormat::Json);
    /// assert_eq!(config.filter, "info");
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] naming `RUST_LOG` (directives that do not parse, or longer than
    /// [`MAX_FILTER_BYTES`]) or `STREAMHOUSE_LOG_FORMAT` (neither `human` nor `json`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = LoggingConfig::default();
        if let Some(filter) = get("RUST_LOG") {
            parse_filter(&filter)?;
            config.filter = filter;
        }
        if let Some(raw) = get("STREAMHOUSE_LOG_FORMAT") {
            config.format = match raw.trim().to_ascii_lowercase().as_str() {
                "human" | "text" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "STREAMHOUSE_LOG_FORMAT",
                        &shorten(&raw),
                        "human or json",
                    ));
                }
            };
        }
        Ok(config)
    }

    /// Sets the filter directives (checked when the layers are built).
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = filter.into();
        self
    }

    /// Sets the line format.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }
}

/// Parses `RUST_LOG`-style directives into a filter, bounded by [`MAX_FILTER_BYTES`].
pub(super) fn parse_filter(filter: &str) -> Result<EnvFilter, ConfigError> {
    if filter.len() > MAX_FILTER_BYTES {
        return Err(ConfigError::new(
            "RUST_LOG",
            &shorten(filter),
            format!("at most {MAX_FILTER_BYTES} bytes of EnvFilter directives"),
        ));
    }
    EnvFilter::try_new(filter).map_err(|e| {
        ConfigError::new(
            "RUST_LOG",
            filter,
            "tracing-subscriber EnvFilter directives",
        )
        .with_source(e)
    })
}

/// The start of a long value, so an error message stays readable.
fn shorten(value: &str) -> String {
    const KEEP: usize = 64;
    match value.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_when_unset_or_blank() {
        let config = LoggingConfig::from_lookup(lookup(&[("RUST_LOG", "  ")])).unwrap();
        assert_eq!(config, LoggingConfig::default());
        assert_eq!(config.filter, "info");
        assert_eq!(config.format, LogFormat::Human);
    }

    #[test]
    fn reads_good_values() {
        let config = LoggingConfig::from_lookup(lookup(&[
            ("RUST_LOG", "warn,streamhouse_lite=debug"),
            ("STREAMHOUSE_LOG_FORMAT", "JSON"),
        ]))
        .unwrap();
        assert_eq!(config.filter, "warn,streamhouse_lite=debug");
        assert_eq!(config.format, LogFormat::Json);
        let human =
            LoggingConfig::from_lookup(lookup(&[("STREAMHOUSE_LOG_FORMAT", "text")])).unwrap();
        assert_eq!(human.format, LogFormat::Human);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err =
            LoggingConfig::from_lookup(lookup(&[("RUST_LOG", "info,[unclosed")])).unwrap_err();
        assert_eq!(err.variable, "RUST_LOG");
        assert!(err.expected.contains("EnvFilter"), "{err}");

        let err =
            LoggingConfig::from_lookup(lookup(&[("STREAMHOUSE_LOG_FORMAT", "xml")])).unwrap_err();
        assert_eq!(err.variable, "STREAMHOUSE_LOG_FORMAT");
        assert_eq!(err.value, "xml");
    }

    #[test]
    fn an_oversized_filter_is_refused_with_a_short_value() {
        let long = "a=info,".repeat(MAX_FILTER_BYTES / 7 + 1);
        let err = LoggingConfig::from_lookup(lookup(&[("RUST_LOG", &long)])).unwrap_err();
        assert_eq!(err.variable, "RUST_LOG");
        assert!(err.value.len() < 100, "{}", err.value);
        assert!(err.expected.contains("4096"), "{err}");
        // Just under the bound parses.
        let fits = "a=info,".repeat(MAX_FILTER_BYTES / 7);
        assert!(parse_filter(&fits).is_ok());
    }
}
