//! `otel-collector.yaml` parses (PyYAML) and wires what the push path needs: OTLP on 4317
//! and 4318, memory_limiter first, batch, and pipelines whose every component is defined.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn config() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(support::python())
        .arg(root.join("tests/peers/check_collector_config.py"))
        .arg(root.join("otel-collector.yaml"))
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn collector_config_wires_every_signal() {
    let config = config();
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    assert_eq!(
        config["exporters"]["prometheus"]["add_metric_suffixes"],
        false
    );
    for signal in ["metrics", "traces", "logs"] {
        let pipeline = &config["service"]["pipelines"][signal];
        let processors: Vec<&str> = pipeline["processors"]
            .as_array()
            .unwrap_or_else(|| panic!("{signal} has processors"))
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(processors, ["memory_limiter", "batch"], "{signal}");
        for (kind, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for name in pipeline[kind].as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert!(
                    config[section].get(name).is_some(),
                    "{signal} uses {kind} {name}, which is not defined"
                );
            }
        }
        assert!(
            pipeline["exporters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "debug")
        );
    }
    let exporters = |signal: &str| config["service"]["pipelines"][signal]["exporters"].clone();
    assert!(
        exporters("metrics")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "prometheus")
    );
    assert!(
        exporters("traces")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("otlp"))
    );
}
