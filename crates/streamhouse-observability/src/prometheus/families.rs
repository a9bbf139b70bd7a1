//! The model both exposition encoders write: metric families sorted by name, each with one
//! type and its series sorted by label set, built from the series store without copying
//! label values. Every input gives a valid exposition: name clashes, duplicate series and
//! values a type cannot hold are resolved by the rules of `docs/exposition.md`, and what is
//! left out is reported in [`Dropped`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::{InstrumentationScope, KeyValue};

use super::labels::{Arena, Label, LabelSet, ScopeLabels, canonicalize, has_repeated_key};
use super::naming::{FamilyType, family_name, label_name};
use super::write::{self, Number};
use crate::config::{PrometheusConfig, ScopeLabels as ScopeLabelMode};
use crate::exemplars::{MetricExemplars, SeriesExemplars};
use crate::series::store::{HistogramValue, NumberType, Store, Stream, StreamKind, Value};

/// A histogram series' value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistogramPoint<'a>(&'a HistogramValue);

impl HistogramPoint<'_> {
    /// Calls `f` with each finite upper bound and the cumulative count at or below it.
    /// The `+Inf` bucket is [`Self::count`].
    pub(crate) fn cumulative_buckets(&self, mut f: impl FnMut(f64, u64)) {
        let mut cumulative = 0;
        for (bound, count) in self.0.bounds.iter().zip(self.0.counts.iter()) {
            cumulative += count;
            f(*bound, cumulative);
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.count
    }

    /// The sum, unless OpenMetrics forbids it: a histogram of values that can be negative
    /// (a negative bucket bound, minimum or sum) has a sum that is no counter. Without a
    /// sum OpenMetrics allows no `_count` either (the `+Inf` bucket still holds it), so
    /// encoders write both or neither, in both formats, so a series never depends on the
    /// format.
    pub(crate) fn sum(&self) -> Option<Number> {
        let below_zero = |n: Number| n.is_negative() || n.is_nan();
        let h = self.0;
        let signed = h.bounds.first().is_some_and(|b| *b < 0.0)
            || h.min.is_some_and(below_zero)
            || below_zero(h.sum);
        (!signed).then_some(h.sum)
    }
}

/// What a series holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sample<'a> {
    Number(Number),
    Histogram(HistogramPoint<'a>),
}

/// One series: its labels, its sample, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Series<'a> {
    pub(crate) labels: LabelSet,
    pub(crate) sample: Sample<'a>,
    /// Start time of a counter or histogram series.
    pub(crate) start: Option<SystemTime>,
    /// Index into [`Snapshot::sources`].
    pub(crate) source: u32,
    /// Index of the data point within its stream, to break ties deterministically.
    point: u32,
}

/// One metric family.
#[derive(Debug)]
pub(crate) struct Family<'a> {
    /// The name in text 0.0.4 (counters end in `_total`).
    pub(crate) name: Cow<'a, str>,
    pub(crate) help: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) kind: FamilyType,
    members: Members<'a>,
}

/// The series of a family.
#[derive(Debug)]
enum Members<'a> {
    /// Gathered from its streams, sorted and deduplicated at this scrape.
    Listed(Vec<Series<'a>>),
    /// One stream whose label sets are its attributes as they are and all distinct, in the order its
    /// [`RenderedLabels`](super::rendered::RenderedLabels) keep: nothing per series is built
    /// at the scrape.
    Rendered { stream: &'a Stream, source: u32 },
}

/// A series as the encoders write it.
#[derive(Debug, Clone)]
pub(crate) struct Row<'s, 'a> {
    /// Its rendered labels: `a="x",b="y"`, escaped, no braces.
    pub(crate) text: &'s str,
    pub(crate) sample: Sample<'a>,
    /// Start time of a counter or histogram series.
    pub(crate) start: Option<SystemTime>,
    /// Index into [`Snapshot::sources`].
    pub(crate) source: u32,
    pub(crate) exemplars: RowExemplars<'s, 'a>,
}

/// Where a row's exemplar slots come from.
#[derive(Debug, Clone)]
pub(crate) enum RowExemplars<'s, 'a> {
    /// Found when the series was stored (none when it has no slots).
    Known(Option<Arc<SeriesExemplars>>),
    /// To look up by its labels.
    ByLabels(&'s [Label<'a>]),
}

impl RowExemplars<'_, '_> {
    /// The row's exemplar slots among `metric`'s.
    pub(crate) fn slots(self, metric: &MetricExemplars) -> Option<Arc<SeriesExemplars>> {
        match self {
            RowExemplars::Known(slots) => slots,
            RowExemplars::ByLabels(labels) => metric.lookup(|key| {
                let name = label_name(key);
                labels
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.value.text())
            }),
        }
    }
}

/// A stream whose series are exposed.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    metric: &'a Stream,
    /// From StreamHouse's own scope: its series may carry catalog exemplars.
    pub(crate) own: bool,
}

/// Why a series was left out of an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DropReason {
    /// Its family's name, or one of the names it would emit, belongs to another family.
    NameConflict,
    /// Another series of its family has the same labels.
    DuplicateSeries,
    /// A counter value that is NaN or negative.
    InvalidValue,
    /// An exponential histogram, which the text formats cannot express.
    Unsupported,
}

impl DropReason {
    /// Every reason, in the order of [`Dropped::counts`].
    pub(crate) const ALL: [DropReason; 4] = [
        DropReason::NameConflict,
        DropReason::DuplicateSeries,
        DropReason::InvalidValue,
        DropReason::Unsupported,
    ];

    /// The `reason` label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::NameConflict => "name_conflict",
            DropReason::DuplicateSeries => "duplicate_series",
            DropReason::InvalidValue => "invalid_value",
            DropReason::Unsupported => "unsupported",
        }
    }
}

/// Series left out of one snapshot: counts per reason, and the (name, reason) pairs.
#[derive(Debug, Default)]
pub(crate) struct Dropped<'a> {
    pub(crate) counts: [u64; DropReason::ALL.len()],
    pub(crate) names: Vec<(Cow<'a, str>, DropReason)>,
}

impl<'a> Dropped<'a> {
    fn add(&mut self, name: Cow<'a, str>, reason: DropReason, series: u64) {
        if series == 0 {
            return;
        }
        self.counts[reason as usize] += series;
        if self.names.last() != Some(&(name.clone(), reason)) {
            self.names.push((name, reason));
        }
    }
}

/// A collection, ready to encode.
#[derive(Debug)]
pub(crate) struct Snapshot<'a> {
    /// Labels of `target_info`, when it is exposed.
    pub(crate) target_info: Option<LabelSet>,
    pub(crate) families: Vec<Family<'a>>,
    pub(crate) sources: Vec<Source<'a>>,
    pub(crate) dropped: Dropped<'a>,
    arena: Arena<'a>,
}

/// One stream on its way to a family.
struct Candidate<'a> {
    name: Cow<'a, str>,
    kind: FamilyType,
    scope: &'a InstrumentationScope,
    metric: &'a Stream,
    own: bool,
}

impl<'a> Snapshot<'a> {
    /// Builds the families of `store` by the rules of `docs/exposition.md`.
    pub(crate) fn new(store: &'a mut Store, options: &PrometheusConfig) -> Self {
        keep_rendered(store, options);
        let store: &'a Store = store;
        let reserve_scope = options.scope_labels != ScopeLabelMode::None;
        let mut arena = Arena::default();
        let mut dropped = Dropped::default();
        let no_scope = ScopeLabels::default();
        let resource = &store.resource;
        let target_info = (options.target_info && !resource.is_empty()).then(|| {
            let attributes = resource.iter().map(|(key, value)| (key.as_str(), value));
            arena.push(attributes, &no_scope, reserve_scope)
        });

        for (name, series) in &store.unsupported {
            dropped.add(Cow::Borrowed(name), DropReason::Unsupported, *series);
        }
        let mut candidates = Vec::new();
        for scope_streams in &store.scopes {
            let scope = &scope_streams.scope;
            for metric in scope_streams.streams.iter().filter(|s| s.len() > 0) {
                let kind = family_type(metric);
                candidates.push(Candidate {
                    name: family_name(&metric.name, &metric.unit, kind),
                    kind,
                    scope,
                    metric,
                    own: is_own(scope),
                });
            }
        }
        candidates.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| precedence(a, b)));

        // Groups of one name, admitted resource first, then own-scope families, then the
        // rest; each group in name order (the sort is stable).
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, candidate) in candidates.iter().enumerate() {
            match groups.last_mut() {
                Some(group) if candidates[group.start].name == candidate.name => group.end = i + 1,
                _ => groups.push(i..i + 1),
            }
        }
        groups.sort_by_key(|group| !candidates[group.start].own);

        let mut claimed: HashSet<String> = HashSet::new();
        if target_info.is_some() {
            claimed.extend(["target".to_owned(), "target_info".to_owned()]);
        }
        let mut families = Vec::with_capacity(groups.len());
        let mut sources = Vec::new();
        for group in groups {
            let lead = &candidates[group.start];
            let names = lead.kind.claimed_names(&lead.name);
            if names.iter().any(|name| claimed.contains(name)) {
                for candidate in &candidates[group] {
                    let series = points(candidate.metric);
                    dropped.add(candidate.name.clone(), DropReason::NameConflict, series);
                }
                continue;
            }
            claimed.extend(names);
            let rendered = &lead.metric.rendered;
            if group.len() == 1 && rendered.is_plain() && !general_only() {
                let invalid = invalid_values(lead.metric);
                dropped.add(lead.name.clone(), DropReason::InvalidValue, invalid);
                if invalid < points(lead.metric) {
                    let members = Members::Rendered {
                        stream: lead.metric,
                        source: sources.len() as u32,
                    };
                    families.push((family(lead, members), false));
                }
                sources.push(Source {
                    metric: lead.metric,
                    own: lead.own,
                });
                continue;
            }
            let mut series = Vec::new();
            let several_streams = group.len() > 1;
            arena.take_suspect();
            let name = lead.name.clone();
            for candidate in &candidates[group.clone()] {
                if candidate.kind != lead.kind {
                    let series = points(candidate.metric);
                    dropped.add(candidate.name.clone(), DropReason::NameConflict, series);
                    continue;
                }
                let scope_labels = match with_scope_labels(options, candidate.own) {
                    true => ScopeLabels::new(candidate.scope),
                    false => ScopeLabels::default(),
                };
                let source = Source {
                    metric: candidate.metric,
                    own: candidate.own,
                };
                let invalid = push_series(
                    &source,
                    sources.len() as u32,
                    &scope_labels,
                    reserve_scope,
                    &mut arena,
                    &mut series,
                );
                dropped.add(name.clone(), DropReason::InvalidValue, invalid);
                sources.push(source);
            }
            if !series.is_empty() {
                let may_repeat = several_streams || arena.take_suspect();
                families.push((family(lead, Members::Listed(series)), may_repeat));
            }
        }
        families.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));

        let families: Vec<Family<'a>> = families
            .into_iter()
            .filter_map(|(mut family, may_repeat)| {
                if let Members::Listed(series) = &mut family.members {
                    sort_series(series, &arena, may_repeat);
                    if may_repeat {
                        let duplicates = dedup_series(series, &arena, &sources);
                        dropped.add(family.name.clone(), DropReason::DuplicateSeries, duplicates);
                    }
                    if series.is_empty() {
                        return None;
                    }
                }
                Some(family)
            })
            .collect();
        Snapshot {
            target_info,
            families,
            sources,
            dropped,
            arena,
        }
    }

    /// The rendered labels of `target_info`: `a="x",b="y"`, escaped.
    pub(crate) fn label_text(&self, set: &LabelSet) -> &str {
        self.arena.text(set)
    }

    /// Calls `f` with each series of `family`, in exposition order, until it fails.
    pub(crate) fn rows<E>(
        &self,
        family: &Family<'a>,
        mut f: impl FnMut(Row<'_, 'a>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &family.members {
            Members::Listed(series) => {
                for s in series {
                    f(Row {
                        text: self.arena.text(&s.labels),
                        sample: s.sample,
                        start: s.start,
                        source: s.source,
                        exemplars: RowExemplars::ByLabels(self.arena.labels(&s.labels)),
                    })?;
                }
            }
            Members::Rendered { stream, source } => {
                let rendered = &stream.rendered;
                let timed = is_timed(stream);
                let check = may_be_invalid(stream);
                for &slot in rendered.order() {
                    let Some(series) = stream.slot(slot) else {
                        continue;
                    };
                    let sample = sample_of(series);
                    if check && is_invalid(sample) {
                        continue;
                    }
                    f(Row {
                        text: rendered.text(slot),
                        sample,
                        start: timed.then_some(series.start),
                        source: *source,
                        exemplars: RowExemplars::Known(series.exemplars()),
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// Tests compare the two ways a family's series are gathered.
    pub(crate) static GENERAL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn general_only() -> bool {
    #[cfg(test)]
    return GENERAL_ONLY.get();
    #[cfg(not(test))]
    false
}

/// Brings every stream's kept label texts and order up to date with what changed in it
/// since the last scrape.
fn keep_rendered(store: &mut Store, options: &PrometheusConfig) {
    let reserve_scope = options.scope_labels != ScopeLabelMode::None;
    for scope_streams in &mut store.scopes {
        let scope = &scope_streams.scope;
        let own = is_own(scope);
        let with_scope = with_scope_labels(options, own);
        let scope_labels = match with_scope {
            true => ScopeLabels::new(scope),
            false => ScopeLabels::default(),
        };
        for stream in &mut scope_streams.streams {
            let changes = stream.take_changes();
            let mut rendered = std::mem::take(&mut stream.rendered);
            let labels = (&scope_labels, with_scope, reserve_scope);
            rendered.update(stream, changes, labels);
            stream.rendered = rendered;
        }
    }
}

/// Whether `scope` is StreamHouse's own.
fn is_own(scope: &InstrumentationScope) -> bool {
    scope.name() == crate::SCOPE_NAME
}

/// Whether series of a scope (StreamHouse's own or not) carry its scope labels.
fn with_scope_labels(options: &PrometheusConfig, own: bool) -> bool {
    matches!(
        (options.scope_labels, own),
        (ScopeLabelMode::All, _) | (ScopeLabelMode::Foreign, false)
    )
}

/// A family of `lead`'s name, help, unit and type.
fn family<'a>(lead: &Candidate<'a>, members: Members<'a>) -> Family<'a> {
    Family {
        name: lead.name.clone(),
        help: &lead.metric.description,
        unit: &lead.metric.unit,
        kind: lead.kind,
        members,
    }
}

/// Whether a stream's series have a start time to expose.
fn is_timed(metric: &Stream) -> bool {
    matches!(metric.kind, StreamKind::Counter | StreamKind::Histogram)
}

/// Whether a stream may hold counter values no exposition takes: only counters of signed
/// or float numbers can.
fn may_be_invalid(metric: &Stream) -> bool {
    metric.is_counter() && metric.number != NumberType::U64
}

/// A counter value that is NaN or negative.
fn is_invalid(sample: Sample<'_>) -> bool {
    matches!(sample, Sample::Number(value) if value.is_nan() || value.is_negative())
}

/// How many counter values of `metric` are NaN or negative.
fn invalid_values(metric: &Stream) -> u64 {
    if !may_be_invalid(metric) {
        return 0;
    }
    metric.series().filter(|s| is_invalid(sample_of(s))).count() as u64
}

fn sample_of(series: &crate::series::store::Series) -> Sample<'_> {
    match &series.value {
        Value::Number(n) => Sample::Number(*n),
        Value::Histogram(h) => Sample::Histogram(HistogramPoint(h)),
    }
}

/// The order of streams that share a name: StreamHouse's own scope first, then by scope,
/// instrument name, description, unit and type. Independent of hash and creation order.
fn precedence(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    let (sa, sb) = (a.scope, b.scope);
    b.own
        .cmp(&a.own)
        .then_with(|| sa.name().cmp(sb.name()))
        .then_with(|| sa.version().cmp(&sb.version()))
        .then_with(|| sa.schema_url().cmp(&sb.schema_url()))
        .then_with(|| compare_attributes(sa.attributes(), sb.attributes()))
        .then_with(|| a.metric.name.cmp(&b.metric.name))
        .then_with(|| a.metric.description.cmp(&b.metric.description))
        .then_with(|| a.metric.unit.cmp(&b.metric.unit))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| number_type(a.metric).cmp(&number_type(b.metric)))
        // Streams alike in all of the above (a sync and an observable counter of one name):
        // their data decides, and equal data renders equal bytes whichever comes first.
        .then_with(|| content(a.metric).cmp(&content(b.metric)))
}

fn number_type(metric: &Stream) -> NumberType {
    metric.number
}

/// Every data point of `metric` as text, sorted: a total order on stream contents.
fn content(metric: &Stream) -> Vec<String> {
    let mut points = Vec::new();
    for_each_point(metric, |attributes, sample, _| {
        let mut line = String::new();
        for kv in attributes {
            let tag = format!("{:?}", std::mem::discriminant(&kv.value));
            line.push_str(&format!(
                "{}={tag}:{},",
                kv.key,
                write::value_text(&kv.value)
            ));
        }
        match sample {
            Sample::Number(n) => n.write(&mut line),
            Sample::Histogram(h) => {
                h.cumulative_buckets(|bound, count| line.push_str(&format!(" {bound}:{count}")));
                line.push_str(&format!(" {} ", h.count()));
                if let Some(sum) = h.sum() {
                    sum.write(&mut line);
                }
            }
        }
        points.push(line);
    });
    points.sort_unstable();
    points
}

/// Orders attribute lists by key, then by value type and text.
fn compare_attributes<'a>(
    a: impl Iterator<Item = &'a KeyValue>,
    b: impl Iterator<Item = &'a KeyValue>,
) -> Ordering {
    let key = |kv: &'a KeyValue| {
        let tag = format!("{:?}", std::mem::discriminant(&kv.value));
        (kv.key.as_str(), tag, write::value_text(&kv.value))
    };
    a.map(key).cmp(b.map(key))
}

fn family_type(metric: &Stream) -> FamilyType {
    match metric.kind {
        StreamKind::Counter => FamilyType::Counter,
        StreamKind::UpDown | StreamKind::Gauge => FamilyType::Gauge,
        StreamKind::Histogram => FamilyType::Histogram,
    }
}

/// The number of series of a stream.
fn points(metric: &Stream) -> u64 {
    metric.len() as u64
}

/// Calls `f` with the attributes, sample and start time of each series of `metric`, in the
/// store's order (the same for every call on one snapshot).
fn for_each_point<'a>(
    metric: &'a Stream,
    mut f: impl FnMut(&mut dyn Iterator<Item = &'a KeyValue>, Sample<'a>, Option<SystemTime>),
) {
    let timed = is_timed(metric);
    for series in metric.series() {
        let sample = sample_of(series);
        f(
            &mut series.attributes.iter(),
            sample,
            timed.then_some(series.start),
        );
    }
}

/// Adds the series of `source`; returns how many counter values were NaN or negative and
/// left out.
fn push_series<'a>(
    source: &Source<'a>,
    index: u32,
    scope: &ScopeLabels<'a>,
    reserve_scope: bool,
    arena: &mut Arena<'a>,
    out: &mut Vec<Series<'a>>,
) -> u64 {
    let is_counter = source.metric.is_counter();
    let mut point = 0;
    let mut invalid = 0;
    for_each_point(source.metric, |attributes, sample, start| {
        point += 1;
        if is_counter && is_invalid(sample) {
            invalid += 1;
            return;
        }
        let pairs = attributes.map(|kv| (kv.key.as_str(), &kv.value));
        let labels = arena.push(pairs, scope, reserve_scope);
        out.push(Series {
            labels,
            sample,
            start,
            source: index,
            point: point - 1,
        });
    });
    invalid
}

/// Sorts `series` by label text. Where texts may repeat, equal ones (duplicates) follow
/// by stream, then data point, so the one kept does not depend on the sort.
fn sort_series(series: &mut [Series<'_>], arena: &Arena<'_>, may_repeat: bool) {
    let text = |s: &Series<'_>| arena.text(&s.labels);
    if may_repeat {
        series.sort_unstable_by(|a, b| {
            text(a)
                .cmp(text(b))
                .then_with(|| a.source.cmp(&b.source))
                .then_with(|| a.point.cmp(&b.point))
        });
    } else {
        // Unique texts: an unstable sort gives one order.
        series.sort_unstable_by(|a, b| text(a).cmp(text(b)));
    }
}

/// Keeps one series per label set of sorted `series`: the first stream's in precedence
/// order, and within one stream the one whose attributes sort first. Returns how many were
/// left out.
fn dedup_series(series: &mut Vec<Series<'_>>, arena: &Arena<'_>, sources: &[Source<'_>]) -> u64 {
    let text = |s: &Series<'_>| arena.text(&s.labels);
    let same = |i: usize| text(&series[i]) == text(&series[i + 1]);
    if !(0..series.len().saturating_sub(1)).any(same) {
        return 0;
    }
    let before = series.len();
    let mut start = 0;
    while start < series.len() {
        let mut end = start + 1;
        while end < series.len() && text(&series[end]) == text(&series[start]) {
            end += 1;
        }
        if end - start > 1 {
            let first_source = series[start].source;
            let tied = (start..end).take_while(|&i| series[i].source == first_source);
            let points: Vec<u32> = tied.clone().map(|i| series[i].point).collect();
            let attributes = point_attributes(sources[first_source as usize].metric, &points);
            let best = tied
                .zip(&attributes)
                .min_by(|(_, a), (_, b)| compare_attributes(a.iter().copied(), b.iter().copied()))
                .map_or(start, |(i, _)| i);
            series.swap(start, best);
            series.drain(start + 1..end);
        }
        start += 1;
    }
    (before - series.len()) as u64
}

/// The attributes of the data points numbered `points` (ascending) of `metric`, in the
/// SDK's canonical form, gathered in one pass over the stream.
fn point_attributes<'a>(metric: &'a Stream, points: &[u32]) -> Vec<Vec<&'a KeyValue>> {
    let mut found = Vec::with_capacity(points.len());
    let mut index = 0;
    for_each_point(metric, |attributes, _, _| {
        if points.get(found.len()) == Some(&index) {
            let mut pairs: Vec<(&str, &KeyValue)> =
                attributes.map(|kv| (kv.key.as_str(), kv)).collect();
            if has_repeated_key(&pairs) {
                canonicalize(&mut pairs);
            }
            found.push(pairs.into_iter().map(|(_, kv)| kv).collect());
        }
        index += 1;
    });
    found
}
