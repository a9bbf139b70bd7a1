//! A careful reader of our own expositions, for the checks the real peers do not make:
//! `promtool` and Python `prometheus_client` both accept a body that repeats a series (the
//! Python OpenMetrics parser even drops the repeat silently), and neither knows the rules of
//! `docs/exposition.md` (reserved labels, names owned across families, one series set in
//! both formats). Every rule here cites the line of the contract or format it enforces.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The two bodies `/metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.
    OpenMetrics,
}

/// A series: sample name and sorted label pairs.
pub type SeriesKey = (String, Vec<(String, String)>);

/// One sample line as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine {
    /// 1-based line number in the body.
    pub line: usize,
    pub name: String,
    /// Label pairs in written order, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value as written.
    pub value: String,
    /// The whole line, for messages.
    pub raw: String,
}

impl SampleLine {
    /// The label set, sorted (duplicate names are reported separately).
    pub fn label_set(&self) -> BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }

    /// The series Prometheus stores the sample in: a label with an empty value is no label
    /// (Prometheus data model), so `x{k=""}` and `x` are one series.
    fn series_key(&self) -> SeriesKey {
        let mut labels: Vec<_> = self
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect();
        labels.sort();
        (self.name.clone(), labels)
    }
}

/// A family: its metadata lines and the sample lines after them.
#[derive(Debug, Clone, Default)]
pub struct Family {
    pub line: usize,
    pub name: String,
    pub kind: Option<String>,
    pub help: Option<String>,
    pub unit: Option<String>,
    pub samples: Vec<SampleLine>,
}

/// A tokenized body.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn samples(&self) -> impl Iterator<Item = &SampleLine> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The family a sample line belongs to.
    pub fn family_of(&self, sample: &SampleLine) -> Option<&Family> {
        self.families
            .iter()
            .find(|f| f.samples.iter().any(|s| s.line == sample.line))
    }
}

/// Tokenizes `body`, recording every violation of the format's grammar and of the family
/// structure (each sample under the family whose header precedes it, each family declared
/// once, metadata before samples). Returns what could be read and the violations.
pub fn read(body: &str, dialect: Dialect) -> (Exposition, Vec<String>) {
    let mut out = Exposition::default();
    let mut violations = Vec::new();
    let mut declared: HashMap<String, usize> = HashMap::new();
    let mut eof = false;
    if !body.is_empty() && !body.ends_with('\n') {
        violations.push("the body does not end with a newline".to_owned());
    }
    // Split on `\n` only: `str::lines` would also eat a `\r` before it.
    for (i, raw) in body.split_terminator('\n').enumerate() {
        let n = i + 1;
        let mut violation = |what: String| violations.push(format!("line {n}: {what}: {raw:?}"));
        if eof {
            violation("line after # EOF".into());
            continue;
        }
        if raw.is_empty() {
            // Text 0.0.4 allows blank lines; OpenMetrics does not.
            if dialect == Dialect::OpenMetrics {
                violation("blank line".into());
            }
            continue;
        }
        if let Some(comment) = raw.strip_prefix('#') {
            if dialect == Dialect::OpenMetrics && raw == "# EOF" {
                eof = true;
                continue;
            }
            let mut parts = comment.strip_prefix(' ').unwrap_or(comment).splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let (name, rest) = (parts.next(), parts.next());
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT")
                || (keyword == "UNIT" && dialect == Dialect::Text)
            {
                // A plain comment: legal in text, not in OpenMetrics.
                if dialect == Dialect::OpenMetrics {
                    violation("unknown comment".into());
                }
                continue;
            }
            let Some(name) = name.filter(|n| is_metric_name(n)) else {
                violation(format!("{keyword} without a valid metric name"));
                continue;
            };
            let rest = rest.unwrap_or_default().to_owned();
            if keyword == "HELP"
                && let Err(e) = check_help_escapes(&rest, dialect)
            {
                violation(e);
            }
            let current = out.families.last_mut().filter(|f| f.name == name);
            let family = match current {
                Some(family) => {
                    if !family.samples.is_empty() {
                        violation(format!("{keyword} after samples of {name}"));
                    }
                    family
                }
                None => {
                    if let Some(first) = declared.get(name) {
                        violation(format!(
                            "family {name} declared again (first at line {first})"
                        ));
                    }
                    declared.insert(name.to_owned(), n);
                    out.families.push(Family {
                        line: n,
                        name: name.to_owned(),
                        ..Family::default()
                    });
                    out.families.last_mut().expect("just pushed")
                }
            };
            let slot = match keyword {
                "HELP" => &mut family.help,
                "TYPE" => &mut family.kind,
                _ => &mut family.unit,
            };
            if slot.is_some() {
                violation(format!("second {keyword} for {name}"));
            }
            if keyword == "TYPE" && !valid_type(&rest, dialect) {
                violation(format!("unknown type {rest:?}"));
            }
            *slot = Some(rest);
            continue;
        }
        let sample = match parse_sample(raw, dialect) {
            Ok(((name, labels), value)) => SampleLine {
                line: n,
                name,
                labels,
                value,
                raw: raw.to_owned(),
            },
            Err(e) => {
                violation(e);
                continue;
            }
        };
        match out.families.last_mut() {
            Some(family) if family.kind.is_some() => {
                let allowed = sample_names(&family.name, family.kind.as_deref(), dialect);
                if !allowed.contains(&sample.name) {
                    violation(format!(
                        "sample {} is not one of family {} ({}): {allowed:?}",
                        sample.name,
                        family.name,
                        family.kind.as_deref().unwrap_or_default()
                    ));
                }
                family.samples.push(sample);
            }
            _ => violation("sample without a # TYPE header before it".into()),
        }
    }
    if dialect == Dialect::OpenMetrics && !eof {
        violations.push("no # EOF line".to_owned());
    }
    (out, violations)
}

/// HELP escapes: `\\` and `\n` in text 0.0.4 (Go's parser rejects any other), and `\"` too in
/// OpenMetrics.
fn check_help_escapes(help: &str, dialect: Dialect) -> Result<(), String> {
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\' | 'n') => {}
                Some('"') if dialect == Dialect::OpenMetrics => {}
                other => return Err(format!("invalid escape \\{other:?} in HELP")),
            }
        }
    }
    Ok(())
}

fn valid_type(kind: &str, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Text => matches!(
            kind,
            "counter" | "gauge" | "histogram" | "summary" | "untyped"
        ),
        Dialect::OpenMetrics => matches!(
            kind,
            "counter"
                | "gauge"
                | "histogram"
                | "gaugehistogram"
                | "stateset"
                | "info"
                | "summary"
                | "unknown"
        ),
    }
}

/// The sample names a family of `kind` may write in `dialect`.
pub fn sample_names(family: &str, kind: Option<&str>, dialect: Dialect) -> Vec<String> {
    let suffixes: &[&str] = match (dialect, kind.unwrap_or_default()) {
        (Dialect::Text, "histogram") => &["_bucket", "_sum", "_count"],
        (Dialect::Text, "summary") => &["", "_sum", "_count"],
        (Dialect::Text, _) => &[""],
        (Dialect::OpenMetrics, "counter") => &["_total", "_created"],
        (Dialect::OpenMetrics, "histogram") => &["_bucket", "_sum", "_count", "_created"],
        (Dialect::OpenMetrics, "gaugehistogram") => &["_bucket", "_gsum", "_gcount"],
        (Dialect::OpenMetrics, "summary") => &["", "_sum", "_count", "_created"],
        (Dialect::OpenMetrics, "info") => &["_info"],
        (Dialect::OpenMetrics, _) => &[""],
    };
    suffixes.iter().map(|s| format!("{family}{s}")).collect()
}

/// The names a family owns in either format (docs/exposition.md, Families rule 2): a counter
/// `x_total` owns `x`, `x_total` and `x_created`; a histogram `h` owns `h`, `h_bucket`,
/// `h_count`, `h_sum` and `h_created`; `target_info` owns `target` and `target_info`; a gauge
/// owns its name. `resource`: `target_info` is the resource's family (a user gauge of that
/// name, with the resource off, owns just its name).
pub fn owned_names(family: &Family, dialect: Dialect, resource: bool) -> Vec<String> {
    let name = family.name.as_str();
    let kind = family.kind.as_deref().unwrap_or_default();
    let with = |base: &str, suffixes: &[&str]| -> Vec<String> {
        suffixes.iter().map(|s| format!("{base}{s}")).collect()
    };
    match (dialect, kind) {
        (Dialect::Text, "counter") => with(
            name.strip_suffix("_total").unwrap_or(name),
            &["", "_total", "_created"],
        ),
        (Dialect::OpenMetrics, "counter") => with(name, &["", "_total", "_created"]),
        (_, "histogram") => with(name, &["", "_bucket", "_count", "_sum", "_created"]),
        (Dialect::Text, "gauge") if resource && name == "target_info" => {
            with("target", &["", "_info"])
        }
        (Dialect::OpenMetrics, "info") => with(name, &["", "_info"]),
        _ => vec![name.to_owned()],
    }
}

/// Tokenizes one sample line: name, labels (unescaped) and value.
fn parse_sample(line: &str, dialect: Dialect) -> Result<(SeriesKey, String), String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let label_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let label = &rest[..label_end];
            if !is_label_name(label) {
                return Err(format!("invalid label name {label:?}"));
            }
            rest = rest[label_end..]
                .strip_prefix("=\"")
                .ok_or_else(|| format!("no =\" after label {label}"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err(format!("unterminated value of label {label}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!(
                                "invalid escape \\{:?} in label {label}",
                                other.map(|(_, c)| c)
                            ));
                        }
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &rest[close + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
                // OpenMetrics forbids a trailing comma; text allows it.
                if dialect == Dialect::OpenMetrics && rest.starts_with('}') {
                    return Err("trailing comma in labels".into());
                }
            } else if !rest.starts_with('}') {
                return Err(format!("no , or }} after label {label}"));
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("no single space before the value")?;
    // Value, then an optional timestamp, then (OpenMetrics) an optional exemplar.
    let (sample, exemplar) = match rest.split_once(" # ") {
        Some((sample, exemplar)) if dialect == Dialect::OpenMetrics => (sample, Some(exemplar)),
        _ => (rest, None),
    };
    let mut fields = sample.split(' ');
    let value = fields.next().unwrap_or_default();
    if parse_value(value).is_none() {
        return Err(format!("invalid value {value:?}"));
    }
    if let Some(ts) = fields.next()
        && ts.parse::<f64>().is_err()
    {
        return Err(format!("invalid timestamp {ts:?}"));
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    if let Some(exemplar) = exemplar
        && !exemplar.starts_with('{')
    {
        return Err(format!("invalid exemplar {exemplar:?}"));
    }
    Ok(((name.to_owned(), labels), value.to_owned()))
}

/// A sample value as both formats spell it: Go `ParseFloat` syntax with `NaN` and `±Inf`.
pub fn parse_value(value: &str) -> Option<f64> {
    match value {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            value.parse().ok()
        }
        _ => None,
    }
}

pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Violations of docs/exposition.md within one tokenized body; `resource`: `target_info`
/// is exposed.
pub fn contract_violations(
    exposition: &Exposition,
    dialect: Dialect,
    resource: bool,
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut series: HashMap<SeriesKey, &SampleLine> = HashMap::new();
    for family in &exposition.families {
        let kind = family.kind.as_deref().unwrap_or_default();
        if family.name.starts_with('_') {
            // Names: "we never invent a leading `_`".
            violations.push(format!("family name {} starts with _", family.name));
        }
        if dialect == Dialect::Text && kind == "counter" && !family.name.ends_with("_total") {
            // Metric names: `_total` for counters.
            violations.push(format!("text counter family {} lacks _total", family.name));
        }
        for sample in &family.samples {
            let mut names = BTreeSet::new();
            for (label, _) in &sample.labels {
                if !names.insert(label) {
                    violations.push(format!(
                        "line {}: label {label} twice: {}",
                        sample.line, sample.raw
                    ));
                }
                if label.starts_with('_') {
                    // Sanitising: "no exposed label ever uses the `__` prefix ... and we
                    // never invent a leading `_`".
                    violations.push(format!(
                        "line {}: label {label} starts with _: {}",
                        sample.line, sample.raw
                    ));
                }
                let bucket =
                    kind == "histogram" && sample.name == format!("{}_bucket", family.name);
                if (label == "le" && !bucket) || label == "quantile" {
                    // Labels rule 2: `le` and `quantile` attributes become `exported_*` on
                    // every family type.
                    violations.push(format!(
                        "line {}: reserved label {label} on {}: {}",
                        sample.line, sample.name, sample.raw
                    ));
                }
            }
            let counts = match kind {
                "counter" => sample.name.ends_with("_total"),
                "histogram" => sample.name.ends_with("_bucket") || sample.name.ends_with("_count"),
                _ => false,
            };
            if counts && parse_value(&sample.value).is_some_and(|v| v.is_nan() || v < 0.0) {
                // Families rule 4: a negative (or NaN) counter is dropped, not exposed.
                violations.push(format!(
                    "line {}: counter-like sample is {}: {}",
                    sample.line, sample.value, sample.raw
                ));
            }
            if let Some(first) = series.insert(sample.series_key(), sample) {
                // Families rule 3: identical series are dropped, one kept.
                violations.push(format!(
                    "duplicate series at lines {} and {}:\n  {}\n  {}",
                    first.line, sample.line, first.raw, sample.raw
                ));
            }
        }
    }
    // Families rule 2: a name is owned by one family across both formats.
    let mut owners: HashMap<String, &Family> = HashMap::new();
    for family in &exposition.families {
        for name in owned_names(family, dialect, resource) {
            if let Some(other) = owners.insert(name.clone(), family) {
                violations.push(format!(
                    "name {name} owned by family {} ({}, line {}) and family {} ({}, line {})",
                    other.name,
                    other.kind.as_deref().unwrap_or_default(),
                    other.line,
                    family.name,
                    family.kind.as_deref().unwrap_or_default(),
                    family.line
                ));
            }
        }
    }
    violations
}

/// The series of a body as `(name, labels) -> value`, leaving out OpenMetrics `_created`
/// samples of counters and histograms (text 0.0.4 has no such sample).
pub fn series_values(exposition: &Exposition, dialect: Dialect) -> BTreeMap<SeriesKey, String> {
    let mut out = BTreeMap::new();
    for family in &exposition.families {
        let kind = family.kind.as_deref().unwrap_or_default();
        for sample in &family.samples {
            let created = dialect == Dialect::OpenMetrics
                && matches!(kind, "counter" | "histogram")
                && sample.name == format!("{}_created", family.name);
            if !created {
                out.insert(sample.series_key(), sample.value.clone());
            }
        }
    }
    out
}

/// Checks OpenMetrics `_created` samples against the configuration (OpenMetrics section: off
/// by default, and when on, one per counter and histogram series).
pub fn created_violations(exposition: &Exposition, enabled: bool) -> Vec<String> {
    let mut violations = Vec::new();
    for family in &exposition.families {
        let kind = family.kind.as_deref().unwrap_or_default();
        // A series is a counter's `_total` sample, or a histogram's buckets (its `_count`
        // may be absent, with `_sum`), told apart by their labels without `le`.
        let series_sample = match kind {
            "counter" => format!("{}_total", family.name),
            "histogram" => format!("{}_bucket", family.name),
            _ => continue,
        };
        let created = format!("{}_created", family.name);
        let sets = |name: &str| -> Vec<BTreeMap<String, String>> {
            let mut v: Vec<_> = family
                .samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| {
                    let mut labels = s.label_set();
                    if kind == "histogram" {
                        labels.remove("le");
                    }
                    labels
                })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let (series, created_sets) = (sets(&series_sample), sets(&created));
        if !enabled && !created_sets.is_empty() {
            violations.push(format!(
                "{created} present although created samples are off"
            ));
        }
        if enabled && series != created_sets {
            violations.push(format!(
                "{} series of {} have {} {created} samples",
                series.len(),
                family.name,
                created_sets.len()
            ));
        }
    }
    violations
}

/// The lines of `body` around 1-based `line`, for messages.
pub fn context(body: &str, line: usize) -> String {
    body.lines()
        .enumerate()
        .skip(line.saturating_sub(4))
        .take(7)
        .map(|(i, l)| format!("{:>5} {}", i + 1, truncate(l, 300)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` cut to at most `max` characters, saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…(+{} bytes)", &text[..i], text.len() - i),
        None => text.to_owned(),
    }
}
