//! This process's figures from `/proc/self` (Linux).
//!
//! Four small files read by hand rather than through the `procfs` crate: it would pull in a
//! large dependency tree for a handful of fields. Every reader returns `None` rather than
//! fail when a file is missing or not in the expected form, so a collection never panics.

use std::sync::OnceLock;

/// What `/proc/self/stat` holds that we expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    /// User plus system CPU time, in clock ticks.
    pub(super) cpu_ticks: u64,
    /// Threads of the process.
    pub(super) threads: u64,
    /// Resident set size, in pages.
    pub(super) rss_pages: u64,
}

/// Sizes the kernel reports `/proc` figures in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Units {
    /// Clock ticks per second (`AT_CLKTCK`).
    pub(super) ticks_per_second: u64,
    /// Bytes per page (`AT_PAGESZ`).
    pub(super) page_bytes: u64,
}

/// The values almost every Linux system uses, for a missing or odd auxiliary vector.
const FALLBACK_UNITS: Units = Units {
    ticks_per_second: 100,
    page_bytes: 4096,
};

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_comm) = text.rsplit_once(')')?;
    // Field 3 (state) is the first after the command name; `proc(5)` numbers from 1.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

/// The soft limit on open files from `/proc/<pid>/limits`; `None` when unlimited.
pub(super) fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?;
    soft.parse().ok()
}

/// Reads `AT_CLKTCK` and `AT_PAGESZ` from an auxiliary vector (`/proc/<pid>/auxv`):
/// native-endian (key, value) words up to `AT_NULL`.
pub(super) fn parse_auxv(bytes: &[u8]) -> Units {
    const AT_PAGESZ: u64 = 6;
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = size_of::<usize>();
    let word = |chunk: &[u8]| {
        let mut raw = [0u8; WORD];
        raw.copy_from_slice(chunk);
        usize::from_ne_bytes(raw) as u64
    };
    let mut units = FALLBACK_UNITS;
    for pair in bytes.chunks_exact(2 * WORD) {
        let (key, value) = (word(&pair[..WORD]), word(&pair[WORD..]));
        match key {
            0 => break,
            AT_CLKTCK if value > 0 => units.ticks_per_second = value,
            AT_PAGESZ if value > 0 => units.page_bytes = value,
            _ => {}
        }
    }
    units
}

/// This process's units, read once.
fn units() -> Units {
    static UNITS: OnceLock<Units> = OnceLock::new();
    *UNITS.get_or_init(|| match std::fs::read("/proc/self/auxv") {
        Ok(bytes) => parse_auxv(&bytes),
        Err(_) => FALLBACK_UNITS,
    })
}

fn stat() -> Option<Stat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Resident memory in bytes.
pub(super) fn resident_bytes() -> Option<u64> {
    stat()?.rss_pages.checked_mul(units().page_bytes)
}

/// User plus system CPU time in seconds.
pub(super) fn cpu_seconds() -> Option<f64> {
    Some(stat()?.cpu_ticks as f64 / units().ticks_per_second as f64)
}

/// Threads of this process.
pub(super) fn threads() -> Option<u64> {
    Some(stat()?.threads)
}

/// Open file descriptors. Linux 6.2 and later report the count as the size of
/// `/proc/self/fd`, in constant time; listing it takes milliseconds per ten thousand
/// descriptors, so it is only the fallback for older kernels (which report size 0).
pub(super) fn open_fds() -> Option<u64> {
    match std::fs::metadata("/proc/self/fd").ok()?.len() {
        0 => open_fds_listed(),
        count => Some(count),
    }
}

/// Open file descriptors by listing `/proc/self/fd`, less the one the listing opens.
fn open_fds_listed() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.filter(Result::is_ok).count() as u64).saturating_sub(1))
}

/// The soft limit on open file descriptors; `None` when unlimited.
pub(super) fn max_fds() -> Option<u64> {
    parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernel's format; a command name may be any 15 bytes, spaces and `)` included.
    const STAT: &str = "12991 (cat) R 12989 12989 8772 0 -1 4194304 101 0 0 0 7 3 0 0 20 0 \
        1 0 940176 3133440 390 18446744073709551615 94105679020032 94105679039913 \
        140721785790288 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94105679055920 94105679057536 \
        94105785692160 140721785797337 140721785797357 140721785797357 140721785798635 0\n";
    const STAT_ODD_COMM: &str = "4242 (a) (b) c)) S 1 4242 4242 0 -1 4194560 5204 0 0 0 \
        1234 567 0 0 20 0 17 0 31337 1059295232 20480 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17642 0 0 0 17 1 0 0 0 0 0\n";

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max processes             127431               127431               processes 
Max open files            20000                1048576              files     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn parses_stat() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu_ticks: 10,
                threads: 1,
                rss_pages: 390
            }
        );
    }

    #[test]
    fn counts_stat_fields_from_the_last_parenthesis() {
        let stat = parse_stat(STAT_ODD_COMM).unwrap();
        assert_eq!(stat.cpu_ticks, 1234 + 567);
        assert_eq!(stat.threads, 17);
        assert_eq!(stat.rss_pages, 20480);
    }

    #[test]
    fn refuses_truncated_or_foreign_stat() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x) R 0 0"), None);
        assert_eq!(parse_stat(&STAT.replace(" 390 ", " -5 ")), None);
        let overflowing = STAT.replace(" 7 3 ", &format!(" {} 3 ", u64::MAX));
        assert_eq!(parse_stat(&overflowing), None);
    }

    #[test]
    fn parses_the_soft_open_files_limit() {
        assert_eq!(parse_max_open_files(LIMITS), Some(20000));
        let unlimited = LIMITS.replace("20000 ", "unlimited ");
        assert_eq!(parse_max_open_files(&unlimited), None);
        assert_eq!(parse_max_open_files("Limit Soft Hard\n"), None);
    }

    #[test]
    fn listing_and_size_count_the_same_descriptors() {
        let held: Vec<_> = (0..16)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let listed = open_fds_listed().unwrap();
        let reported = open_fds().unwrap();
        assert!(listed >= 3 + held.len() as u64, "{listed}");
        // Other tests open and close files meanwhile.
        assert!(
            listed.abs_diff(reported) <= 8,
            "{listed} listed, {reported} reported"
        );
    }

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.to_ne_bytes(), v.to_ne_bytes()])
            .flatten()
            .collect()
    }

    #[test]
    fn reads_clock_ticks_and_page_size_from_the_auxiliary_vector() {
        let units = parse_auxv(&auxv(&[(33, 1), (6, 16384), (17, 250), (0, 0), (17, 9)]));
        assert_eq!(
            units,
            Units {
                ticks_per_second: 250,
                page_bytes: 16384
            }
        );
        assert_eq!(parse_auxv(&auxv(&[(17, 0)])), FALLBACK_UNITS);
        assert_eq!(parse_auxv(&[1, 2, 3]), FALLBACK_UNITS);
    }
}
