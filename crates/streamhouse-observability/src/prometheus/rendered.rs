//! Label sets rendered once per series and kept in exposition order across scrapes.
//!
//! Label sets rarely change between scrapes, so rendering every series' labels and sorting
//! them at every scrape would be the largest cost a scrape has beyond writing the body.
//! Each stream keeps its series' rendered label text by store slot and its slots in
//! label-text order; a scrape brings both up to date from the slots that changed since
//! (new series are rendered and merged in, emptied slots dropped), which costs nothing
//! when no series came or went.

use super::labels::{Arena, ScopeLabels};
use crate::series::store::{Changes, Stream};

/// One stream's rendered label sets, by slot, and its slots in label-text order.
#[derive(Debug, Default)]
pub(crate) struct RenderedLabels {
    /// Label texts back to back; texts of emptied slots linger until [`Self::compact`].
    text: String,
    /// Per slot: start and length of its text; `(0, 0)` where none is rendered.
    spans: Vec<(u32, u32)>,
    /// Filled slots in label-text order.
    order: Vec<u32>,
    /// Bytes of `text` no slot points at.
    garbage: usize,
    /// Two series render alike (sanitised or empty labels): the family needs the general
    /// path, which picks one by the rules of `docs/exposition.md`.
    repeats: bool,
    /// Every label set rendered since the texts were last rendered anew is its attributes
    /// as they are: names are the keys, no value left out, no scope attribute renamed.
    plain: bool,
    /// What the texts were rendered with: scope labels on or off, names reserved or not.
    rendered_for: Option<(bool, bool)>,
}

impl RenderedLabels {
    /// Brings the texts and order up to date with `stream`'s `changes`; `with_scope` says
    /// whether its series carry `scope`'s labels, `reserve_scope` whether attributes are kept
    /// from scope label names. Returns
    /// false when the texts cannot be kept (past 4 GiB of label text): the family is then
    /// gathered the general way.
    pub(crate) fn update(
        &mut self,
        stream: &Stream,
        changes: Changes,
        (scope, with_scope, reserve_scope): (&ScopeLabels<'_>, bool, bool),
    ) -> bool {
        let Changes { mut added, removed } = changes;
        if self.rendered_for != Some((with_scope, reserve_scope)) {
            *self = RenderedLabels {
                rendered_for: Some((with_scope, reserve_scope)),
                plain: true,
                ..RenderedLabels::default()
            };
            added = stream.filled_slots();
        }
        if !removed && added.is_empty() {
            return true;
        }
        self.drop_changed(stream, removed, &added);
        if !self.render(stream, &added, scope, reserve_scope) {
            *self = RenderedLabels::default();
            return false;
        }
        self.merge(added);
        if self.garbage > self.text.len() / 2 {
            self.compact();
        }
        true
    }

    /// Filled slots in label-text order.
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    /// The rendered labels of `slot`: `a="x",b="y"`, escaped, no braces.
    pub(crate) fn text(&self, slot: u32) -> &str {
        let (start, len) = self.spans[slot as usize];
        &self.text[start as usize..(start + len) as usize]
    }

    /// Whether the kept texts and order expose the stream as the general path would, with
    /// label values found by attribute key: no two series render alike, and every label
    /// is an attribute as it is.
    pub(crate) fn is_plain(&self) -> bool {
        self.rendered_for.is_some() && !self.repeats && self.plain
    }

    /// Drops from the order the slots emptied and those refilled since the last update.
    fn drop_changed(&mut self, stream: &Stream, removed: bool, added: &[u32]) {
        let known = self.spans.len() as u32;
        let refilled = added.first().is_some_and(|&first| first < known);
        if !removed && !refilled {
            return;
        }
        let (spans, garbage) = (&mut self.spans, &mut self.garbage);
        self.order.retain(|&slot| {
            let keep = stream.slot(slot).is_some() && added.binary_search(&slot).is_err();
            if !keep {
                *garbage += spans[slot as usize].1 as usize;
                spans[slot as usize] = (0, 0);
            }
            keep
        });
    }

    /// Renders the labels of the `added` slots; false past 4 GiB of text.
    fn render(
        &mut self,
        stream: &Stream,
        added: &[u32],
        scope: &ScopeLabels<'_>,
        reserve_scope: bool,
    ) -> bool {
        if let Some(&last) = added.last()
            && self.spans.len() <= last as usize
        {
            self.spans.resize(last as usize + 1, (0, 0));
        }
        let mut arena = Arena::default();
        for &slot in added {
            let Some(series) = stream.slot(slot) else {
                continue;
            };
            let attributes = series.attributes.iter();
            let set = arena.push(
                attributes.map(|kv| (kv.key.as_str(), &kv.value)),
                scope,
                reserve_scope,
            );
            let text = arena.text(&set);
            let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(text.len()))
            else {
                return false;
            };
            if start.checked_add(len).is_none() {
                return false;
            }
            self.text.push_str(text);
            self.spans[slot as usize] = (start, len);
            // Sticks until the texts are rendered anew: a stream seldom loses such a series.
            self.plain &= !arena.take_suspect();
            arena.clear();
        }
        true
    }

    /// Sorts `added` by text and merges it into the order; finds repeated texts.
    fn merge(&mut self, mut added: Vec<u32>) {
        let (text, spans) = (&self.text, &self.spans);
        let text_of = |slot: &u32| {
            let (start, len) = spans[*slot as usize];
            &text[start as usize..(start + len) as usize]
        };
        added.sort_unstable_by(|a, b| text_of(a).cmp(text_of(b)));
        // Two sorted runs: the stable sort merges them in one pass.
        self.order.extend(added);
        self.order.sort_by(|a, b| text_of(a).cmp(text_of(b)));
        self.repeats = self
            .order
            .windows(2)
            .any(|w| text_of(&w[0]) == text_of(&w[1]));
    }

    /// Rewrites the text without what emptied slots left behind.
    fn compact(&mut self) {
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        for &slot in &self.order {
            let (start, len) = self.spans[slot as usize];
            self.spans[slot as usize] = (text.len() as u32, len);
            text.push_str(&self.text[start as usize..(start + len) as usize]);
        }
        self.text = text;
        self.garbage = 0;
    }
}
