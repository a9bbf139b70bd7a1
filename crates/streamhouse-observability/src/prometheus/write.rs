//! Escaping and number formatting shared by the exposition encoders.

use std::borrow::Cow;

use opentelemetry::{Array, Value};

/// Writes `name{labels} value`, without the line end (exemplars may follow).
pub(crate) fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: Number) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    value.write(out);
}

/// Writes the bucket lines of histogram series, `name_bucket{labels,le="…"} count`
/// without the line end: the text before the bound is built once per series and each
/// bound's text once per family (every point of a stream shares its view's bounds), so a
/// line is three copies and a number.
#[derive(Debug, Default)]
pub(crate) struct BucketLines {
    /// `name_bucket{labels,le="` of the current series.
    prefix: String,
    /// Each bound and its text with the line's middle, `0.5"} `.
    bounds: Vec<(f64, String)>,
}

impl BucketLines {
    /// Starts the bucket lines of series `labels` of family `name`.
    pub(crate) fn series(&mut self, name: &str, labels: &str) {
        self.prefix.clear();
        self.prefix.push_str(name);
        self.prefix.push_str("_bucket{");
        self.prefix.push_str(labels);
        if !labels.is_empty() {
            self.prefix.push(',');
        }
        self.prefix.push_str("le=\"");
    }

    /// Writes the line of the `index`-th bound, `bound`.
    #[inline]
    pub(crate) fn line(&mut self, out: &mut String, index: usize, bound: f64, cumulative: u64) {
        if self
            .bounds
            .get(index)
            .is_none_or(|(cached, _)| cached.to_bits() != bound.to_bits())
        {
            let mut text = String::new();
            float(&mut text, bound);
            text.push_str("\"} ");
            self.bounds.truncate(index);
            self.bounds.push((bound, text));
        }
        out.push_str(&self.prefix);
        out.push_str(&self.bounds[index].1);
        out.push_str(itoa::Buffer::new().format(cumulative));
    }

    /// Writes the `+Inf` line.
    #[inline]
    pub(crate) fn infinity(&self, out: &mut String, count: u64) {
        out.push_str(&self.prefix);
        out.push_str("+Inf\"} ");
        out.push_str(itoa::Buffer::new().format(count));
    }
}

/// Writes a label value with `\`, `"` and newline escaped.
pub(crate) fn label_value(out: &mut String, value: &str) {
    escape(out, value, true);
}

/// Writes help text with `\` and newline escaped (text format 0.0.4).
pub(crate) fn help(out: &mut String, text: &str) {
    escape(out, text, false);
}

/// Writes help text with `\`, `"` and newline escaped (OpenMetrics).
pub(crate) fn openmetrics_help(out: &mut String, text: &str) {
    escape(out, text, true);
}

fn escape(out: &mut String, text: &str, quotes: bool) {
    let needs = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    if !text.bytes().any(needs) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes an attribute value as a label value, escaped.
pub(crate) fn attribute_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => label_value(out, s.as_str()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I64(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::F64(f) => float(out, *f),
        other => label_value(out, &value_text(other)),
    }
}

/// An attribute value as label text, unescaped: strings as they are, numbers as Prometheus
/// spells them, arrays as JSON (the attribute specification's rule for non-OTLP formats).
pub(crate) fn value_text(value: &Value) -> Cow<'_, str> {
    let mut out = String::new();
    match value {
        Value::String(s) => return Cow::Borrowed(s.as_str()),
        Value::Bool(b) => return Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::I64(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::F64(f) => float(&mut out, *f),
        Value::Array(array) => {
            out.push('[');
            let mut item = |i: usize, write: &mut dyn FnMut(&mut String)| {
                if i > 0 {
                    out.push(',');
                }
                write(&mut out);
            };
            match array {
                Array::Bool(v) => v.iter().enumerate().for_each(|(i, b)| {
                    item(i, &mut |o| o.push_str(if *b { "true" } else { "false" }))
                }),
                Array::I64(v) => v.iter().enumerate().for_each(|(i, n)| {
                    item(i, &mut |o| o.push_str(itoa::Buffer::new().format(*n)))
                }),
                Array::F64(v) => v
                    .iter()
                    .enumerate()
                    .for_each(|(i, f)| item(i, &mut |o| float(o, *f))),
                Array::String(v) => v.iter().enumerate().for_each(|(i, s)| {
                    item(i, &mut |o| {
                        o.push_str(&serde_json::Value::from(s.as_str()).to_string())
                    })
                }),
                other => item(0, &mut |o| o.push_str(&other.to_string())),
            }
            out.push(']');
        }
        other => return Cow::Owned(other.as_str().into_owned()),
    }
    Cow::Owned(out)
}

/// A sample value of any of the SDK's number types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number::U64(v)
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number::I64(v)
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::F64(v)
    }
}

impl Number {
    pub(crate) fn is_nan(self) -> bool {
        matches!(self, Number::F64(v) if v.is_nan())
    }

    pub(crate) fn is_negative(self) -> bool {
        match self {
            Number::U64(_) => false,
            Number::I64(v) => v < 0,
            Number::F64(v) => v < 0.0,
        }
    }

    pub(crate) fn write(self, out: &mut String) {
        match self {
            Number::U64(v) => out.push_str(itoa::Buffer::new().format(v)),
            Number::I64(v) => out.push_str(itoa::Buffer::new().format(v)),
            Number::F64(v) => float(out, v),
        }
    }
}

/// Writes a float the way Prometheus parses it: `NaN`, `+Inf`, `-Inf`, integers without a
/// fraction, otherwise the shortest representation that round-trips.
pub(crate) fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        float(&mut s, v);
        s
    }

    #[test]
    fn floats_round_trip_in_prometheus_spelling() {
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.001), "0.001");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(-3.0), "-3");
        for v in [1e-9, 0.1 + 0.2, 1e300, 123456789.125, 5e15] {
            assert_eq!(f(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut s = String::new();
        label_value(&mut s, "a\"b\\c\nd é");
        assert_eq!(s, r#"a\"b\\c\nd é"#);
        let mut s = String::new();
        help(&mut s, "say \"hi\"\\\n");
        assert_eq!(s, r#"say "hi"\\\n"#);
    }
}
