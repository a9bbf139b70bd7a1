//! Attributes to label sets: sanitised names, reserved names renamed, colliding names
//! merged, sorted, and rendered once as `a="x",b="y"` (rules in `docs/exposition.md`).

use std::borrow::Cow;

use opentelemetry::{InstrumentationScope, Value};

use super::naming::label_name;
use super::write;

/// A label of a series: an exposed name and its value.
#[derive(Debug, Clone)]
pub(crate) struct Label<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) value: LabelValue<'a>,
}

/// A label value: an attribute's value, plain text (scope name and version), or the values of
/// attributes whose names collided, joined with `;`.
#[derive(Debug, Clone)]
pub(crate) enum LabelValue<'a> {
    Attribute(&'a Value),
    Text(&'a str),
    Joined(String),
}

impl LabelValue<'_> {
    /// The value as exposed, before escaping.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            LabelValue::Attribute(value) => write::value_text(value),
            LabelValue::Text(text) => Cow::Borrowed(text),
            LabelValue::Joined(text) => Cow::Borrowed(text),
        }
    }
}

/// The labels of one series: ranges into [`Arena::labels`] and into its rendered text.
/// Compact (24 bytes), since a scrape sorts one per series: a label set's text and label
/// count fit in `u32`, and a scrape's labels in `u32` too (4 G labels would need hundreds
/// of GiB of series).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelSet {
    text_start: usize,
    text_len: u32,
    labels_start: u32,
    labels_len: u32,
}

/// Labels of every series of a snapshot, and their rendered text, in two flat buffers.
#[derive(Debug, Default)]
pub(crate) struct Arena<'a> {
    labels: Vec<Label<'a>>,
    text: String,
    /// The attributes of the label set being added; reused.
    pending: Vec<(&'a str, &'a Value)>,
    /// Keys seen lately and whether each is exposed as it is.
    plain: Vec<(&'a str, bool)>,
    /// See [`Arena::take_suspect`].
    suspect: bool,
}

/// The scope labels of one stream, computed once per stream.
#[derive(Debug, Default)]
pub(crate) struct ScopeLabels<'a> {
    /// Scope attributes: exposed name, original key, value.
    attributes: Vec<Named<'a>>,
    /// `otel_scope_name`, `otel_scope_version`, `otel_scope_schema_url`: no attribute can
    /// take these names.
    fixed: Vec<Label<'a>>,
    /// Attributes merged, then the fixed labels: what a series gets on the fast path.
    merged: Vec<Label<'a>>,
    /// A scope attribute was renamed `exported_…`, which a point attribute may be named too.
    renamed: bool,
}

/// An attribute on its way to a label: exposed name, original key, value.
type Named<'a> = (Cow<'a, str>, &'a str, &'a Value);

/// Keys [`Arena::name_of`] remembers: a few more than a series has labels.
const MAX_REMEMBERED_KEYS: usize = 8;

const SCOPE_NAME: &str = "otel_scope_name";
const SCOPE_VERSION: &str = "otel_scope_version";
const SCOPE_SCHEMA_URL: &str = "otel_scope_schema_url";

impl<'a> ScopeLabels<'a> {
    /// `otel_scope_name`, `otel_scope_version` and `otel_scope_schema_url` (each when not empty) and
    /// one `otel_scope_<key>` per scope attribute (`exported_otel_scope_<key>` for the keys
    /// `name`, `version` and `schema_url`).
    pub(crate) fn new(scope: &'a InstrumentationScope) -> Self {
        let mut fixed = Vec::new();
        let optional = [
            (SCOPE_NAME, Some(scope.name())),
            (SCOPE_VERSION, scope.version()),
            (SCOPE_SCHEMA_URL, scope.schema_url()),
        ];
        for (name, value) in optional {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                fixed.push(Label {
                    name: Cow::Borrowed(name),
                    value: LabelValue::Text(value),
                });
            }
        }
        let mut renamed = false;
        let attributes: Vec<Named<'a>> = scope
            .attributes()
            .filter(|kv| !is_empty(&kv.value))
            .map(|kv| {
                let key = kv.key.as_str();
                let name = label_name(&format!("otel_scope_{key}")).into_owned();
                let name = match [SCOPE_NAME, SCOPE_VERSION, SCOPE_SCHEMA_URL].contains(&&*name) {
                    true => {
                        renamed = true;
                        format!("exported_{name}")
                    }
                    false => name,
                };
                (Cow::Owned(name), key, &kv.value)
            })
            .collect();
        let mut merged = merge(attributes.clone());
        merged.extend(fixed.iter().cloned());
        ScopeLabels {
            attributes,
            fixed,
            merged,
            renamed,
        }
    }
}

impl<'a> Arena<'a> {
    /// Adds the label set of `attributes` (key, value) plus the `scope` labels. Names are
    /// sanitised, reserved ones (`le`, `quantile`, and `otel_scope_*` when `reserve_scope`)
    /// renamed `exported_<name>`, and names that collide merged, values joined with `;` in
    /// the order of their original keys.
    pub(crate) fn push(
        &mut self,
        attributes: impl Iterator<Item = (&'a str, &'a Value)>,
        scope: &ScopeLabels<'a>,
        reserve_scope: bool,
    ) -> LabelSet {
        let start = self.labels.len();
        self.pending.clear();
        self.pending.extend(attributes);
        if has_repeated_key(&self.pending) {
            canonicalize(&mut self.pending);
            self.suspect = true;
        }
        let mut changed = scope.renamed;
        for i in 0..self.pending.len() {
            let (key, value) = self.pending[i];
            match value {
                // An empty value is no label to Prometheus: `x{k=""}` and `x` are one series.
                Value::String(s) if s.as_str().is_empty() => {
                    self.suspect = true;
                    continue;
                }
                Value::String(_) => {}
                // `1` and `"1"` render alike.
                _ => self.suspect = true,
            }
            let name = self.name_of(key, reserve_scope);
            changed |= matches!(name, Cow::Owned(_));
            self.labels.push(Label {
                name,
                value: LabelValue::Attribute(value),
            });
        }
        if changed {
            // Rare: a changed name may collide with another, so merge by the original keys.
            self.suspect = true;
            self.labels.truncate(start);
            let mut all: Vec<Named<'a>> = self
                .pending
                .iter()
                .filter(|(_, value)| !is_empty(value))
                .map(|&(key, value)| (exposed_name(key, reserve_scope), key, value))
                .collect();
            all.extend(scope.attributes.iter().cloned());
            self.labels.extend(merge(all));
            self.labels.extend(scope.fixed.iter().cloned());
        } else {
            // Every name is its key and no key repeats, so nothing collides.
            self.labels.extend(scope.merged.iter().cloned());
        }
        sort_by_name(&mut self.labels[start..]);
        self.finish(start)
    }

    /// Whether a label set added since the last call may render like another one of the same
    /// stream (a name changed by sanitising, an empty value left out, a value that is not a
    /// string); resets the flag. When false, the SDK's unique attribute sets give unique
    /// label sets and no duplicate search is needed.
    pub(crate) fn take_suspect(&mut self) -> bool {
        std::mem::take(&mut self.suspect)
    }

    /// The exposed name of attribute `key`. Keys repeat from series to series of a stream
    /// (often the same `&'static str`, though in either order: the SDK reports a set as
    /// given or sorted), so whether a key is exposed as it is gets remembered by address.
    fn name_of(&mut self, key: &'a str, reserve_scope: bool) -> Cow<'a, str> {
        if let Some(&(_, plain)) = self.plain.iter().find(|(k, _)| std::ptr::eq(*k, key)) {
            if plain {
                return Cow::Borrowed(key);
            }
            return exposed_name(key, reserve_scope);
        }
        let name = exposed_name(key, reserve_scope);
        if self.plain.len() == MAX_REMEMBERED_KEYS {
            self.plain.remove(0);
        }
        self.plain.push((key, matches!(name, Cow::Borrowed(_))));
        name
    }

    /// Forgets every label set, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.labels.clear();
        self.text.clear();
    }

    /// The rendered labels of `set`: `a="x",b="y"`, escaped, no braces.
    pub(crate) fn text(&self, set: &LabelSet) -> &str {
        &self.text[set.text_start..set.text_start + set.text_len as usize]
    }

    /// The labels of `set`.
    pub(crate) fn labels(&self, set: &LabelSet) -> &[Label<'a>] {
        let start = set.labels_start as usize;
        &self.labels[start..start + set.labels_len as usize]
    }

    /// Ends the label set begun at `start`, sorted by name: renders it.
    fn finish(&mut self, start: usize) -> LabelSet {
        let text_start = self.text.len();
        write_labels(&mut self.text, &self.labels[start..]);
        LabelSet {
            text_start,
            text_len: (self.text.len() - text_start) as u32,
            labels_start: start as u32,
            labels_len: (self.labels.len() - start) as u32,
        }
    }
}

/// Sorts a series' labels by name. Most series have one or two labels: those skip the
/// general sort, whose set-up costs more than the comparison.
fn sort_by_name(labels: &mut [Label<'_>]) {
    match labels {
        [] | [_] => {}
        [a, b] => {
            if a.name > b.name {
                std::mem::swap(a, b);
            }
        }
        _ => labels.sort_unstable_by(|a, b| a.name.cmp(&b.name)),
    }
}

/// Whether a key appears twice: the SDK keeps such an attribute set as given or in its
/// canonical form, whichever its hash map yields first.
pub(crate) fn has_repeated_key<T>(attributes: &[(&str, T)]) -> bool {
    attributes
        .iter()
        .enumerate()
        .any(|(i, (key, _))| attributes[..i].iter().any(|(k, _)| k == key))
}

/// The SDK's canonical form of an attribute set: sorted by key with the same unstable
/// sort, then the first of each key kept, so both forms the SDK may report expose alike.
pub(crate) fn canonicalize<T>(attributes: &mut Vec<(&str, T)>) {
    attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    attributes.dedup_by(|a, b| a.0 == b.0);
}

fn is_empty(value: &Value) -> bool {
    // Kept in step with the filter in `Arena::push`.
    matches!(value, Value::String(s) if s.as_str().is_empty())
}

/// The label name of attribute `key`: sanitised, and `exported_<name>` when reserved.
fn exposed_name(key: &str, reserve_scope: bool) -> Cow<'_, str> {
    let name = label_name(key);
    let reserved =
        name == "le" || name == "quantile" || (reserve_scope && name.starts_with("otel_scope_"));
    match reserved {
        true => Cow::Owned(format!("exported_{name}")),
        false => name,
    }
}

/// Merges labels whose names are equal, values joined with `;` in the order of their
/// original keys (a key given twice: in the order of its values).
fn merge<'a>(mut labels: Vec<Named<'a>>) -> Vec<Label<'a>> {
    labels.sort_by(|a, b| {
        (a.0.cmp(&b.0))
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| write::value_text(a.2).cmp(&write::value_text(b.2)))
    });
    let mut out: Vec<Label<'a>> = Vec::with_capacity(labels.len());
    for (name, _, value) in labels {
        match out.last_mut() {
            Some(last) if last.name == name => {
                let mut joined = last.value.text().into_owned();
                joined.push(';');
                joined.push_str(&write::value_text(value));
                last.value = LabelValue::Joined(joined);
            }
            _ => out.push(Label {
                name,
                value: LabelValue::Attribute(value),
            }),
        }
    }
    out
}

/// Writes `a="x",b="y"` (no braces) for `labels`.
fn write_labels(out: &mut String, labels: &[Label<'_>]) {
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&label.name);
        out.push_str("=\"");
        match &label.value {
            LabelValue::Attribute(value) => write::attribute_value(out, value),
            LabelValue::Text(text) => write::label_value(out, text),
            LabelValue::Joined(text) => write::label_value(out, text),
        }
        out.push('"');
    }
}
