//! Picks the exposition format from an `Accept` header.
//!
//! Hand-written: the offers are two fixed media types, and what matters is the OpenMetrics
//! `version` parameter and q-value ordering as Prometheus sends them; general
//! content-negotiation crates add nothing for that.

/// An exposition format served at `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: the default.
    Text,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => super::text::CONTENT_TYPE,
            Format::OpenMetrics => super::openmetrics::CONTENT_TYPE,
        }
    }

    /// The format to answer `accept` with: the acceptable offer with the highest q-value,
    /// the earlier one on a tie; text 0.0.4 when the header is absent, unparsable or names
    /// nothing we serve.
    ///
    /// ```
    /// use streamhouse_observability::prometheus::Format;
    ///
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = value
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let offer = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                    Format::OpenMetrics
                }
                ("text/plain" | "text/*" | "*/*", _) => Format::Text,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, offer));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }
}

#[cfg(test)]
mod tests {
    use super::Format::{self, OpenMetrics, Text};

    #[test]
    fn negotiation_table() {
        let cases: &[(Option<&str>, Format)] = &[
            // Prometheus 2.x
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            // Prometheus 3.x
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                OpenMetrics,
            ),
            // Prometheus with scrape_protocols set to text first
            (
                Some(
                    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5",
                ),
                Text,
            ),
            (Some("text/plain"), Text),
            (Some("*/*"), Text),
            (None, Text),
            (Some(""), Text),
            (Some("garbage;;;==,,"), Text),
            (Some("application/json"), Text),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("APPLICATION/OpenMetrics-Text; Version=1.0.0"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (
                Some("text/plain;q=0.2, application/openmetrics-text;q=0.8"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.5, text/plain;q=0.5"),
                OpenMetrics,
            ),
            (
                Some("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
                Text,
            ),
            (
                Some("application/openmetrics-text;q=abc, text/plain;q=0.1"),
                Text,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(*accept), *want, "{accept:?}");
        }
    }
}
