//! `OTEL_PROPAGATORS`: which text-map propagators HTTP extraction and injection use.
//!
//! B3 comes from `opentelemetry-propagator-b3`, the OpenTelemetry project's B3 propagator.
//!
//! Record headers do not follow this setting: they always carry W3C trace context (see
//! [`propagator`](super::propagator)), so consumers never depend on a producer's HTTP
//! configuration.

use std::fmt;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_propagator_b3::{B3Encoding, Propagator as B3Propagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::ConfigError;

/// One propagator `OTEL_PROPAGATORS` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropagatorKind {
    /// W3C Trace Context: `traceparent`, `tracestate` (`tracecontext`).
    TraceContext,
    /// W3C Baggage: `baggage` (`baggage`).
    Baggage,
    /// Zipkin B3, one `b3` header (`b3`).
    B3,
    /// Zipkin B3, the `X-B3-*` headers (`b3multi`).
    B3Multi,
}

impl PropagatorKind {
    /// The name `OTEL_PROPAGATORS` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            PropagatorKind::TraceContext => "tracecontext",
            PropagatorKind::Baggage => "baggage",
            PropagatorKind::B3 => "b3",
            PropagatorKind::B3Multi => "b3multi",
        }
    }

    fn build(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
            PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
            PropagatorKind::B3 => Box::new(B3Single(B3Propagator::with_encoding(
                B3Encoding::SingleHeader,
            ))),
            PropagatorKind::B3Multi => {
                Box::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader))
            }
        }
    }
}

/// B3 single-header injection. `opentelemetry-propagator-b3` 0.33.1 also writes the
/// `X-B3-*` headers for `SingleHeader` (its `support(&UnSpecified)` is always true), so
/// `b3` alone would send `b3multi` too; this keeps only the `b3` header.
#[derive(Debug)]
struct B3Single(B3Propagator);

/// Passes on the `b3` header only.
struct SingleHeaderOnly<'a>(&'a mut dyn Injector);

impl Injector for SingleHeaderOnly<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key.eq_ignore_ascii_case("b3") {
            self.0.set(key, value);
        }
    }
}

impl TextMapPropagator for B3Single {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.0.inject_context(cx, &mut SingleHeaderOnly(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.0.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.0.fields()
    }
}

/// The HTTP propagators, in order: extraction runs each in turn (a later one's trace
/// context replaces an earlier one's), injection writes every one's headers.
///
/// Built once; cloning shares the built propagators. The default is the specification's,
/// `tracecontext,baggage`.
///
/// ```
/// use streamhouse_observability::propagation::{PropagatorKind, Propagators};
///
/// let b3 = Propagators::parse("OTEL_PROPAGATORS", "B3multi, tracecontext").unwrap();
/// assert_eq!(b3.kinds(), [PropagatorKind::B3Multi, PropagatorKind::TraceContext]);
/// let mut headers = http::HeaderMap::new();
/// b3.inject_http(&tracing::Span::current(), &mut headers);
/// assert!(Propagators::parse("OTEL_PROPAGATORS", "xray").is_err());
/// ```
#[derive(Clone)]
pub struct Propagators {
    kinds: Vec<PropagatorKind>,
    built: Arc<TextMapCompositePropagator>,
}

impl Propagators {
    /// The propagators `kinds`, in that order, repeats dropped.
    pub fn new(kinds: impl IntoIterator<Item = PropagatorKind>) -> Self {
        let mut unique: Vec<PropagatorKind> = Vec::new();
        for kind in kinds {
            if !unique.contains(&kind) {
                unique.push(kind);
            }
        }
        let built = TextMapCompositePropagator::new(unique.iter().map(|k| k.build()).collect());
        Propagators {
            kinds: unique,
            built: Arc::new(built),
        }
    }

    /// No propagation at all (`none`): nothing is extracted or injected over HTTP.
    pub fn none() -> Self {
        Propagators::new([])
    }

    /// The propagators in order.
    pub fn kinds(&self) -> &[PropagatorKind] {
        &self.kinds
    }

    /// Parses an `OTEL_PROPAGATORS` value: a comma list of `tracecontext`, `baggage`, `b3`,
    /// `b3multi` and `none`, case-insensitive. `none` alone turns propagation off; with other
    /// names it is ignored, as the specification says.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `variable` for an unknown name (`jaeger`, `xray` and
    /// `ottrace` are not built in), an empty member, or a list longer than 16 entries.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        // Each name can appear once in a useful list; the bound only stops absurd input.
        const MAX_ENTRIES: usize = 16;
        const EXPECTED: &str = "a comma list of tracecontext, baggage, b3, b3multi or none";
        let mut kinds = Vec::new();
        for (index, name) in raw.split(',').enumerate() {
            if index >= MAX_ENTRIES {
                return Err(ConfigError::new(variable, raw, EXPECTED));
            }
            let kind = match name.trim().to_ascii_lowercase().as_str() {
                "tracecontext" => PropagatorKind::TraceContext,
                "baggage" => PropagatorKind::Baggage,
                "b3" => PropagatorKind::B3,
                "b3multi" => PropagatorKind::B3Multi,
                "none" => continue,
                _ => return Err(ConfigError::new(variable, raw, EXPECTED)),
            };
            kinds.push(kind);
        }
        Ok(Propagators::new(kinds))
    }

    /// The context carried by incoming HTTP headers; the current context when they carry
    /// none or it is malformed. A `tracestate` past the W3C bounds is dropped whole.
    pub fn extract_http(&self, headers: &http::HeaderMap) -> Context {
        self.built
            .extract(&super::headers::BoundedHeaderExtractor(headers))
    }

    /// Writes `span`'s context into outgoing HTTP headers.
    pub fn inject_http(&self, span: &tracing::Span, headers: &mut http::HeaderMap) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        self.built.inject_context(
            &span.context(),
            &mut opentelemetry_http::HeaderInjector(headers),
        );
    }
}

impl Default for Propagators {
    /// `tracecontext,baggage`.
    fn default() -> Self {
        Propagators::new([PropagatorKind::TraceContext, PropagatorKind::Baggage])
    }
}

impl PartialEq for Propagators {
    fn eq(&self, other: &Self) -> bool {
        self.kinds == other.kinds
    }
}

impl fmt::Debug for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.kinds.iter().map(|k| k.as_str()))
            .finish()
    }
}

/// So the configured set can be installed with
/// `opentelemetry::global::set_text_map_propagator`.
impl TextMapPropagator for Propagators {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.built.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.built.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.built.fields()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&'static str, String)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn trace_of(cx: &Context) -> Option<(String, String)> {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| {
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
            )
        })
    }

    #[test]
    fn parses_lists_case_insensitively_and_refuses_unknown_names() {
        let parse = |raw| Propagators::parse("OTEL_PROPAGATORS", raw);
        assert_eq!(
            parse("TraceContext,BAGGAGE").unwrap(),
            Propagators::default()
        );
        assert_eq!(
            parse(" b3 , b3multi,b3").unwrap().kinds(),
            [PropagatorKind::B3, PropagatorKind::B3Multi]
        );
        assert_eq!(parse("none").unwrap().kinds(), []);
        assert_eq!(
            parse("none,b3").unwrap().kinds(),
            [PropagatorKind::B3],
            "none beside others is ignored"
        );
        for bad in [
            "jaeger",
            "tracecontext,,baggage",
            "b3 multi",
            &"b3,".repeat(17),
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                (err.variable.as_str(), err.value.as_str()),
                ("OTEL_PROPAGATORS", bad)
            );
        }
    }

    #[test]
    fn extracts_only_what_is_configured() {
        let multi = headers(&[
            ("x-b3-traceid", TRACE.to_owned()),
            ("x-b3-spanid", SPAN.to_owned()),
            ("x-b3-sampled", "1".to_owned()),
        ]);
        let single = headers(&[("b3", format!("{TRACE}-{SPAN}-1"))]);
        let w3c = headers(&[("traceparent", format!("00-{TRACE}-{SPAN}-01"))]);
        let want = Some((TRACE.to_owned(), SPAN.to_owned()));

        let b3multi = Propagators::new([PropagatorKind::B3Multi]);
        assert_eq!(trace_of(&b3multi.extract_http(&multi)), want);
        assert_eq!(trace_of(&b3multi.extract_http(&w3c)), None);
        let b3 = Propagators::new([PropagatorKind::B3]);
        assert_eq!(trace_of(&b3.extract_http(&single)), want);
        assert_eq!(trace_of(&Propagators::default().extract_http(&multi)), None);
        assert_eq!(trace_of(&Propagators::default().extract_http(&w3c)), want);
        assert_eq!(trace_of(&Propagators::none().extract_http(&w3c)), None);
    }

    #[test]
    fn injects_the_configured_headers() {
        let cx = Context::new().with_remote_span_context(opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from_hex(TRACE).unwrap(),
            opentelemetry::trace::SpanId::from_hex(SPAN).unwrap(),
            opentelemetry::trace::TraceFlags::SAMPLED,
            true,
            Default::default(),
        ));
        let inject = |propagators: Propagators| {
            let mut out = http::HeaderMap::new();
            propagators.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut out));
            let mut names: Vec<String> = out.keys().map(|k| k.to_string()).collect();
            names.sort();
            (names, out)
        };
        let (names, out) = inject(Propagators::new([PropagatorKind::B3]));
        assert_eq!(names, ["b3"]);
        assert_eq!(out["b3"], format!("{TRACE}-{SPAN}-1").as_str());
        let (names, _) = inject(Propagators::new([
            PropagatorKind::B3Multi,
            PropagatorKind::TraceContext,
        ]));
        assert_eq!(
            names,
            [
                "traceparent",
                "tracestate",
                "x-b3-sampled",
                "x-b3-spanid",
                "x-b3-traceid"
            ]
        );
        assert!(inject(Propagators::none()).0.is_empty());
    }
}
