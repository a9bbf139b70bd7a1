//! `otel-collector.yaml` parses (PyYAML) and wires what the push path needs: OTLP on 4317
//! and 4318, memory_limiter first, batch, pipelines whose every component is defined, a
//! Prometheus exporter that serves pushed exemplars, and traces to Tempo in plain text.
//! `tests/stack.rs` checks it against the compose stack's ports and names.

mod support;

use std::path::Path;

use serde_json::Value;

fn config() -> Value {
    support::yaml_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("otel-collector.yaml"))
}

#[test]
fn collector_config_wires_every_signal() {
    let config = config();
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    let prometheus = &config["exporters"]["prometheus"];
    assert_eq!(prometheus["add_metric_suffixes"], false);
    // Exemplars leave the exporter only in OpenMetrics, which Prometheus then negotiates.
    assert_eq!(prometheus["enable_open_metrics"], true);
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
    // Tempo's OTLP receiver in the stack speaks plain gRPC.
    let tempo = &config["exporters"]["otlp/tempo"];
    assert_eq!(tempo["endpoint"], "tempo:4317");
    assert_eq!(tempo["tls"]["insecure"], true);
}
