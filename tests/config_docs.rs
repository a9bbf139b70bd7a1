//! The README's configuration table lists every variable the SDK, the reference server and the
//! examples read: each `OTEL_*`, `STREAMHOUSE_*` or `RUST_LOG` name written in their code
//! (test modules and comments aside) must be a row of it.

use std::collections::BTreeSet;
use std::path::Path;

/// Names in the first column of the configuration table, with the table's shorthand expanded:
/// `OTEL_X[_{A,B}]_Y` is `OTEL_X_Y`, `OTEL_X_A_Y` and `OTEL_X_B_Y`.
fn documented() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section");
    let mut names = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for quoted in first.split('`').skip(1).step_by(2) {
            names.extend(expand(quoted));
        }
    }
    names
}

fn expand(pattern: &str) -> Vec<String> {
    if let Some((before, rest)) = pattern.split_once('[') {
        let (optional, after) = rest.split_once(']').expect("a closing ]");
        let mut out = expand(&format!("{before}{after}"));
        out.extend(expand(&format!("{before}{optional}{after}")));
        return out;
    }
    if let Some((before, rest)) = pattern.split_once('{') {
        let (choices, after) = rest.split_once('}').expect("a closing }");
        return choices
            .split(',')
            .flat_map(|choice| expand(&format!("{before}{choice}{after}")))
            .collect();
    }
    vec![pattern.to_owned()]
}

/// Quoted variable names in the code of `dir` (recursively), outside test modules and comments.
fn read_in(dir: &Path, names: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_in(&path, names);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        // Test modules close their files here.
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for quoted in line.split('"').skip(1).step_by(2) {
                let is_variable = (quoted.starts_with("OTEL_")
                    || quoted.starts_with("STREAMHOUSE_"))
                    && quoted
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    || quoted == "RUST_LOG";
                if is_variable {
                    names.insert((quoted.to_owned(), path.display().to_string()));
                }
            }
        }
    }
}

#[test]
fn every_variable_read_is_in_the_readme_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut read = BTreeSet::new();
    for dir in [
        "crates/streamhouse-observability/src",
        "crates/streamhouse-lite/src",
        "examples",
    ] {
        read_in(&root.join(dir), &mut read);
    }
    // A scan that finds nothing would pass vacuously.
    assert!(read.len() > 60, "found only {} variables", read.len());
    let documented = documented();
    let missing: Vec<_> = read
        .iter()
        .filter(|(name, _)| !documented.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "read but not in the README table: {missing:?}"
    );
    for family in ["OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "OTEL_TRACES_EXPORTER"] {
        assert!(documented.contains(family), "{family}");
    }
}

#[test]
fn the_shorthand_expands_to_every_form() {
    let mut names = expand("OTEL_EXPORTER_OTLP[_{METRICS,TRACES}]_TIMEOUT");
    names.sort();
    assert_eq!(
        names,
        [
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        ]
    );
}
