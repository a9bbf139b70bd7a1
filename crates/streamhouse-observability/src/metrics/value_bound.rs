//! The one place a caller's label value is cut to its bound, so recorders, bound-handle
//! cache keys, exemplar keys and span names all agree on what a long value becomes.
//!
//! Values longer than the bound that share their first bytes fold into one series: that is
//! intended, as a bound that kept them apart would have to keep them whole.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{DEFAULT_MAX_LABEL_VALUE_BYTES, MAX_LABEL_VALUE_BYTES, MIN_LABEL_VALUE_BYTES};

/// The longest prefix of `value` of at most `max_bytes` bytes that ends on a character
/// boundary. Borrows: cutting allocates nothing.
#[inline]
pub(crate) fn truncate_label_value(value: &str, max_bytes: usize) -> &str {
    &value[..value.floor_char_boundary(max_bytes)]
}

/// Spans are started by free functions without a telemetry handle, so their bound is
/// process-wide; [`Telemetry::init_global`](crate::Telemetry::init_global) sets it.
static SPAN_VALUE_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_LABEL_VALUE_BYTES);

/// The bound on topic and group values in messaging span names and attributes.
#[inline]
pub(crate) fn span_value_bytes() -> usize {
    SPAN_VALUE_BYTES.load(Ordering::Relaxed)
}

/// Sets the bound [`span_value_bytes`] returns, clamped to the configurable range.
pub(crate) fn set_span_value_bytes(max_bytes: usize) {
    SPAN_VALUE_BYTES.store(
        max_bytes.clamp(MIN_LABEL_VALUE_BYTES, MAX_LABEL_VALUE_BYTES),
        Ordering::Relaxed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary_and_keeps_short_values_whole() {
        assert_eq!(truncate_label_value("orders", 16), "orders");
        assert_eq!(truncate_label_value("orders", 6), "orders");
        assert_eq!(truncate_label_value("orders", 3), "ord");
        // "é" is 2 bytes: a cut in its middle keeps the whole characters before it.
        assert_eq!(truncate_label_value("aéé", 4), "aé");
        assert_eq!(truncate_label_value("aéé", 2), "a");
        assert_eq!(truncate_label_value("☃", 2), "");
    }
}
