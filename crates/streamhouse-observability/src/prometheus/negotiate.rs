//! Picks the scrape protocol from an `Accept` header, per Prometheus's "Scrape protocol
//! content negotiation".
//!
//! Hand-written: the offers are four fixed protocols, and what matters is the `version` and
//! `escaping` parameters and q-value ordering as Prometheus sends them; general
//! content-negotiation crates add nothing for that.

/// An exposition format: which encoder writes the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format: the body of both text protocols.
    Text,
    /// OpenMetrics text, with exemplars: the body of both OpenMetrics protocols.
    OpenMetrics,
}

impl Format {
    /// The body of an exposition without families (telemetry disabled or shut down): empty
    /// text, or `# EOF\n`, since an OpenMetrics body must end with it.
    pub(crate) fn empty_body(self) -> &'static str {
        match self {
            Format::Text => "",
            Format::OpenMetrics => "# EOF\n",
        }
    }
}

/// A scrape protocol `/metrics` serves, named as in Prometheus's `scrape_protocols`
/// (every one but `PrometheusProto`).
///
/// Exposed names are always legacy-valid (`[a-zA-Z_:][a-zA-Z0-9_:]*`), so whatever `escaping`
/// the scraper allows, the versions that require the parameter answer `escaping=underscores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScrapeProtocol {
    /// Prometheus text format 0.0.4: the answer when nothing better is acceptable.
    #[default]
    PrometheusText0_0_4,
    /// Prometheus text format 1.0.0: the body of 0.0.4.
    PrometheusText1_0_0,
    /// OpenMetrics 0.0.1: the body of 1.0.0.
    OpenMetricsText0_0_1,
    /// OpenMetrics 1.0.0.
    OpenMetricsText1_0_0,
}

/// At most this many ranges of an `Accept` header are looked at; later ones are ignored.
/// Prometheus sends at most six; the cap keeps a hostile header (say 1 MiB of ranges) to a
/// bounded scan instead of work growing with its length.
const MAX_RANGES: usize = 64;

/// The `escaping` values Prometheus defines; any other makes a range unusable.
const ESCAPINGS: [&str; 5] = ["allow-utf-8", "allow-utf8", "underscores", "dots", "values"];

impl ScrapeProtocol {
    const ALL: [ScrapeProtocol; 4] = [
        ScrapeProtocol::PrometheusText0_0_4,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::OpenMetricsText1_0_0,
    ];

    /// The protocol to answer `accept` with: among the ranges we serve, the one with the
    /// highest q-value, the earlier on a tie; [`PrometheusText0_0_4`](Self::PrometheusText0_0_4)
    /// when the header is absent or offers nothing we serve.
    ///
    /// `*/*`, `text/*` and `text/plain` without a version mean text 0.0.4;
    /// `application/openmetrics-text` without a version means OpenMetrics 1.0.0. A range
    /// with an unknown version, an unknown `escaping` value, a q-value that does not parse
    /// or a repeated parameter is unusable; `q=0` makes its protocol unacceptable. Only the
    /// first 64 ranges are looked at.
    ///
    /// ```
    /// use streamhouse_observability::prometheus::ScrapeProtocol;
    ///
    /// let prometheus_3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
    ///     application/openmetrics-text;version=0.0.1;q=0.4,\
    ///     text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
    ///     text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    /// let protocol = ScrapeProtocol::negotiate(Some(prometheus_3));
    /// assert_eq!(protocol, ScrapeProtocol::OpenMetricsText1_0_0);
    /// assert_eq!(
    ///     protocol.content_type(),
    ///     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
    /// );
    /// assert_eq!(ScrapeProtocol::negotiate(None), ScrapeProtocol::PrometheusText0_0_4);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> ScrapeProtocol {
        // Per protocol: the best q-value offered and the position of the range offering it.
        let mut offered: [Option<(u16, usize)>; 4] = [None; 4];
        // q=0 refuses a protocol even when another range offers it.
        let mut refused = [false; 4];
        let ranges = accept.unwrap_or_default().split(',').take(MAX_RANGES);
        for (position, range) in ranges.enumerate() {
            let Some((protocol, q)) = parse_range(range) else {
                continue;
            };
            let i = protocol as usize;
            if q == 0 {
                refused[i] = true;
            } else if offered[i].is_none_or(|(best, _)| q > best) {
                offered[i] = Some((q, position));
            }
        }
        let mut best: Option<(u16, usize, ScrapeProtocol)> = None;
        for protocol in Self::ALL {
            let i = protocol as usize;
            let Some((q, position)) = offered[i].filter(|_| !refused[i]) else {
                continue;
            };
            if best.is_none_or(|(best_q, best_position, _)| {
                q > best_q || (q == best_q && position < best_position)
            }) {
                best = Some((q, position, protocol));
            }
        }
        best.map_or_else(Self::default, |(_, _, protocol)| protocol)
    }

    /// The response `Content-Type`: the MIME type, the version, `charset=utf-8`, and for
    /// version 1.0.0 `escaping=underscores`.
    ///
    /// ```
    /// use streamhouse_observability::prometheus::ScrapeProtocol;
    ///
    /// assert_eq!(
    ///     ScrapeProtocol::PrometheusText0_0_4.content_type(),
    ///     "text/plain; version=0.0.4; charset=utf-8"
    /// );
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain; version=0.0.4; charset=utf-8",
            ScrapeProtocol::PrometheusText1_0_0 => {
                "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            ScrapeProtocol::OpenMetricsText0_0_1 => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8"
            }
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
            }
        }
    }

    /// The encoder of the body: both text versions share one body, and so do both
    /// OpenMetrics versions.
    pub fn format(self) -> Format {
        match self {
            ScrapeProtocol::PrometheusText0_0_4 | ScrapeProtocol::PrometheusText1_0_0 => {
                Format::Text
            }
            ScrapeProtocol::OpenMetricsText0_0_1 | ScrapeProtocol::OpenMetricsText1_0_0 => {
                Format::OpenMetrics
            }
        }
    }
}

/// The protocol one media range offers and its q-value in thousandths; `None` when the
/// range is not ours or is unusable. Linear in the range's length.
fn parse_range(range: &str) -> Option<(ScrapeProtocol, u16)> {
    let mut parts = range.split(';');
    let media = parts.next().unwrap_or_default().trim();
    let openmetrics = if media.eq_ignore_ascii_case("application/openmetrics-text") {
        true
    } else if ["text/plain", "text/*", "*/*"]
        .iter()
        .any(|m| media.eq_ignore_ascii_case(m))
    {
        false
    } else {
        return None;
    };
    let (mut q, mut version, mut escaping) = (None, None, None);
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue; // `text/plain;` is allowed
        }
        let (key, value) = param.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let slot = match key.trim() {
            k if k.eq_ignore_ascii_case("q") => &mut q,
            k if k.eq_ignore_ascii_case("version") => &mut version,
            k if k.eq_ignore_ascii_case("escaping") => &mut escaping,
            _ => continue, // charset, proto, encoding, ...: nothing to us
        };
        if slot.replace(value).is_some() {
            return None; // which of two q-values or versions was meant?
        }
    }
    let q = q.map_or(Some(1000), parse_qvalue)?;
    if escaping.is_some_and(|e| !ESCAPINGS.iter().any(|known| e.eq_ignore_ascii_case(known))) {
        return None;
    }
    let protocol = match (openmetrics, version) {
        (false, None) => ScrapeProtocol::PrometheusText0_0_4,
        (false, Some("0.0.4")) => ScrapeProtocol::PrometheusText0_0_4,
        (false, Some("1.0.0")) => ScrapeProtocol::PrometheusText1_0_0,
        (true, None | Some("1.0.0")) => ScrapeProtocol::OpenMetricsText1_0_0,
        (true, Some("0.0.1")) => ScrapeProtocol::OpenMetricsText0_0_1,
        _ => return None,
    };
    Some((protocol, q))
}

/// An RFC 9110 qvalue (`0`, `0.5`, `0.125`, `1`, `1.000`) in thousandths.
pub(crate) fn parse_qvalue(q: &str) -> Option<u16> {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::ScrapeProtocol::{self, *};
    use super::{Format, parse_qvalue};

    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    // Prometheus 3.x with `scrape_protocols` starting with PrometheusProto.
    const PROMETHEUS_3_PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn negotiation_table() {
        let cases: &[(Option<&str>, ScrapeProtocol)] = &[
            (Some(PROMETHEUS_2), OpenMetricsText1_0_0),
            (Some(PROMETHEUS_3), OpenMetricsText1_0_0),
            // We do not serve protobuf: the next best.
            (Some(PROMETHEUS_3_PROTOBUF), OpenMetricsText1_0_0),
            // scrape_protocols: [OpenMetricsText0.0.1]
            (
                Some("application/openmetrics-text;version=0.0.1;q=0.5,*/*;q=0.1"),
                OpenMetricsText0_0_1,
            ),
            (
                Some("application/openmetrics-text;version=0.0.1"),
                OpenMetricsText0_0_1,
            ),
            // scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]
            (
                Some(
                    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
                ),
                PrometheusText1_0_0,
            ),
            // Text first, then OpenMetrics.
            (
                Some(
                    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5",
                ),
                PrometheusText0_0_4,
            ),
            // Defaults.
            (Some("text/plain"), PrometheusText0_0_4),
            (Some("text/*"), PrometheusText0_0_4),
            (Some("*/*"), PrometheusText0_0_4),
            (None, PrometheusText0_0_4),
            (Some(""), PrometheusText0_0_4),
            (Some("garbage;;;==,,"), PrometheusText0_0_4),
            (Some("application/json"), PrometheusText0_0_4),
            (Some("application/openmetrics-text"), OpenMetricsText1_0_0),
            // Case-insensitive names and values, whitespace around everything.
            (
                Some("APPLICATION/OpenMetrics-Text; Version=1.0.0"),
                OpenMetricsText1_0_0,
            ),
            (
                Some("Text/Plain;VERSION=1.0.0;Escaping=Underscores"),
                PrometheusText1_0_0,
            ),
            (
                Some(
                    "  text/plain ; version = 0.0.4 ; q = 0.9 ,\t application/openmetrics-text ;version=0.0.1; q=0.95 ",
                ),
                OpenMetricsText0_0_1,
            ),
            (
                Some("application/openmetrics-text;version=\"0.0.1\""),
                OpenMetricsText0_0_1,
            ),
            // Unknown versions are unusable.
            (
                Some("application/openmetrics-text;version=2.0.0"),
                PrometheusText0_0_4,
            ),
            (
                Some(
                    "text/plain;version=2.0.0;q=0.9,application/openmetrics-text;version=0.0.1;q=0.1",
                ),
                OpenMetricsText0_0_1,
            ),
            // Escaping: every defined value is fine, any other makes the range unusable.
            (
                Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf8"),
                OpenMetricsText1_0_0,
            ),
            (
                Some("application/openmetrics-text;version=1.0.0;escaping=dots"),
                OpenMetricsText1_0_0,
            ),
            (
                Some("application/openmetrics-text;version=1.0.0;escaping=values"),
                OpenMetricsText1_0_0,
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=utf-9;q=0.9,text/plain;version=1.0.0;escaping=underscores;q=0.1",
                ),
                PrometheusText1_0_0,
            ),
            (
                Some("application/openmetrics-text;escaping="),
                PrometheusText0_0_4,
            ),
            // q=0 excludes, also when another range offers the same protocol.
            (
                Some("application/openmetrics-text;q=0"),
                PrometheusText0_0_4,
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0,application/openmetrics-text;q=0.9,text/plain;version=1.0.0;q=0.1",
                ),
                PrometheusText1_0_0,
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.000,application/openmetrics-text;version=0.0.1;q=0.001",
                ),
                OpenMetricsText0_0_1,
            ),
            // Highest q-value wins, the earlier range on a tie.
            (
                Some("text/plain;q=0.2, application/openmetrics-text;q=0.8"),
                OpenMetricsText1_0_0,
            ),
            (
                Some("application/openmetrics-text;q=0.5, text/plain;q=0.5"),
                OpenMetricsText1_0_0,
            ),
            (
                Some("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
                PrometheusText0_0_4,
            ),
            (
                Some(
                    "application/openmetrics-text;version=0.0.1;q=0.5,application/openmetrics-text;version=1.0.0;q=0.5",
                ),
                OpenMetricsText0_0_1,
            ),
            (
                Some(
                    "text/plain;version=1.0.0;q=0.3,text/plain;version=1.0.0;q=0.9,application/openmetrics-text;q=0.5",
                ),
                PrometheusText1_0_0,
            ),
            // A q-value that does not parse excludes its range.
            (
                Some("application/openmetrics-text;q=abc, text/plain;version=1.0.0;q=0.1"),
                PrometheusText1_0_0,
            ),
            (
                Some("application/openmetrics-text;q=1.5"),
                PrometheusText0_0_4,
            ),
            (
                Some("application/openmetrics-text;q=0.5000"),
                PrometheusText0_0_4,
            ),
            // A repeated parameter or one without a value is unusable.
            (
                Some("application/openmetrics-text;q=0.1;q=0.9"),
                PrometheusText0_0_4,
            ),
            (
                Some("application/openmetrics-text;version=0.0.1;version=1.0.0"),
                PrometheusText0_0_4,
            ),
            (
                Some("application/openmetrics-text;version"),
                PrometheusText0_0_4,
            ),
            // Other parameters do not matter.
            (
                Some("application/openmetrics-text;charset=utf-8;version=0.0.1"),
                OpenMetricsText0_0_1,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(ScrapeProtocol::negotiate(*accept), *want, "{accept:?}");
        }
    }

    #[test]
    fn content_types_and_formats() {
        let cases = [
            (
                PrometheusText0_0_4,
                "text/plain; version=0.0.4; charset=utf-8",
                Format::Text,
            ),
            (
                PrometheusText1_0_0,
                "text/plain; version=1.0.0; charset=utf-8; escaping=underscores",
                Format::Text,
            ),
            (
                OpenMetricsText0_0_1,
                "application/openmetrics-text; version=0.0.1; charset=utf-8",
                Format::OpenMetrics,
            ),
            (
                OpenMetricsText1_0_0,
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
                Format::OpenMetrics,
            ),
        ];
        for (protocol, content_type, format) in cases {
            assert_eq!(protocol.content_type(), content_type);
            assert_eq!(protocol.format(), format);
            // Each protocol is what its own answer negotiates: the answer is well-formed.
            assert_eq!(ScrapeProtocol::negotiate(Some(content_type)), protocol);
        }
        assert_eq!(Format::Text.empty_body(), "");
        assert_eq!(Format::OpenMetrics.empty_body(), "# EOF\n");
    }

    #[test]
    fn qvalues_follow_rfc_9110() {
        let cases = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.125", Some(125)),
            ("0.001", Some(1)),
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("2", None),
            ("-0.5", None),
            (".5", None),
            ("0.1234", None),
            ("0.1a", None),
            ("", None),
            ("NaN", None),
        ];
        for (q, want) in cases {
            assert_eq!(parse_qvalue(q), want, "{q:?}");
        }
    }

    #[test]
    fn only_the_first_64_ranges_count() {
        let mut accept = "application/json,".repeat(63);
        accept.push_str("application/openmetrics-text;version=0.0.1");
        assert_eq!(
            ScrapeProtocol::negotiate(Some(&accept)),
            OpenMetricsText0_0_1
        );
        // One range later, it is not looked at.
        accept.insert_str(0, "application/json,");
        assert_eq!(
            ScrapeProtocol::negotiate(Some(&accept)),
            PrometheusText0_0_4
        );
    }

    #[test]
    fn hostile_headers_negotiate_as_the_rules_say() {
        // Their cost per byte is measured next to a real header's in `benches/scrape.rs`
        // (`negotiate`), not timed here.
        for (accept, want) in hostile_accept_headers() {
            assert_eq!(ScrapeProtocol::negotiate(Some(&accept)), want);
        }
    }

    /// 1 MiB each: 100k ranges with the only one we serve last, one range of 100k
    /// parameters, and separators alone.
    fn hostile_accept_headers() -> [(String, ScrapeProtocol); 3] {
        let mut many_ranges = "a/b;q=0.5,".repeat(100_000);
        many_ranges.push_str("application/openmetrics-text");
        let mut many_params = String::from("application/openmetrics-text");
        many_params.push_str(&";charset=utf".repeat(100_000));
        [
            (many_ranges, PrometheusText0_0_4),
            (many_params, OpenMetricsText1_0_0),
            (";,".repeat(500_000), PrometheusText0_0_4),
        ]
    }
}
