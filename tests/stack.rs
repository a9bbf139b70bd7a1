//! The local stack (`monitoring/compose.yaml`) hangs together without Docker running:
//! Debian's `docker-compose` accepts it for each profile, every file it mounts exists, every
//! image is pinned, the Dockerfile builds the example it runs, Grafana's provisioning names
//! data sources and dashboards that exist, and the collector, Prometheus, Tempo and compose
//! files agree on names, ports and job labels. `promtool` checks each Prometheus config
//! with the rule files mounted beside it, and a real Prometheus runs the push profile's
//! relabelling: the server's job keeps `up` alone, pushed series lose StreamHouse's scope.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use streamhouse_observability::catalog;

const PROFILES: [&str; 2] = ["pull", "push"];
/// The names every helper uses (names.md): what other containers and users reach.
const NAMES: [&str; 5] = [
    "streamhouse",
    "otel-collector",
    "prometheus",
    "tempo",
    "grafana",
];
const DASHBOARDS: [&str; 5] = [
    "consumer.json",
    "overview.json",
    "producer.json",
    "storage.json",
    "system.json",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose_file() -> PathBuf {
    root().join("monitoring/compose.yaml")
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e} (./scripts/test installs it)"))
}

fn yaml_file(path: &Path) -> Value {
    assert!(path.is_file(), "{} is missing", path.display());
    support::yaml_file(path)
}

fn docker_compose_config(file: &Path, profile: &str) -> Output {
    run(Command::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(["--profile", profile, "config"]))
}

/// The services one profile starts, as `docker-compose config` resolved them (paths made
/// absolute, anchors merged). Compose v1 prints every service whatever the profile, so the
/// selection is made here as Compose v2 makes it: no `profiles` means always.
struct Stack {
    profile: &'static str,
    services: BTreeMap<String, Value>,
}

impl Stack {
    fn load(profile: &'static str) -> Self {
        let output = docker_compose_config(&compose_file(), profile);
        assert!(
            output.status.success(),
            "docker-compose config --profile {profile}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config = support::yaml(&output.stdout);
        let services: BTreeMap<String, Value> = config["services"]
            .as_object()
            .expect("services")
            .iter()
            .filter(|(_, service)| match service["profiles"].as_array() {
                None => true,
                Some(profiles) => profiles.iter().any(|p| p == profile),
            })
            .map(|(name, service)| (name.clone(), service.clone()))
            .collect();
        println!("profile {profile}:");
        for (name, service) in &services {
            let what = service["image"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("build {}", service["build"]["context"]));
            println!("  {name}: {what}");
        }
        Stack { profile, services }
    }

    /// The one service reachable as `host` in the compose network (its name or an alias).
    fn resolve(&self, host: &str) -> (&str, &Value) {
        let matches: Vec<(&str, &Value)> = self
            .services
            .iter()
            .filter(|(name, service)| *name == host || aliases(service).contains(host))
            .map(|(name, service)| (name.as_str(), service))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "profile {}: {host} must name exactly one service, names {:?}",
            self.profile,
            matches.iter().map(|m| m.0).collect::<Vec<_>>()
        );
        matches[0]
    }
}

fn aliases(service: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(networks) = service["networks"].as_object() {
        for network in networks.values() {
            for alias in network["aliases"].as_array().into_iter().flatten() {
                names.insert(alias.as_str().expect("alias").to_owned());
            }
        }
    }
    names
}

/// Bind mounts as (host path, container path); named volumes are left out.
fn binds(service: &Value) -> Vec<(PathBuf, String)> {
    let mut mounts = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        let (source, target) = match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next().expect("source").to_owned();
                let target = parts.next().expect("a volume names its target").to_owned();
                (source, target)
            }
            long => (
                long["source"].as_str().unwrap_or_default().to_owned(),
                long["target"].as_str().expect("target").to_owned(),
            ),
        };
        if source.starts_with('/') {
            mounts.push((PathBuf::from(source), target));
        }
    }
    mounts
}

/// The host file a container sees at `container_path`, through the service's bind mounts.
fn host_path(service: &Value, container_path: &str) -> PathBuf {
    for (source, target) in binds(service) {
        if container_path == target {
            return source;
        }
        if let Some(rest) = container_path.strip_prefix(&format!("{target}/")) {
            return source.join(rest);
        }
    }
    panic!("{container_path} is in no bind mount of {service}");
}

fn env(service: &Value, key: &str) -> Option<String> {
    match &service["environment"] {
        Value::Object(map) => map.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Value::Array(list) => list.iter().find_map(|item| {
            item.as_str()?
                .strip_prefix(&format!("{key}="))
                .map(str::to_owned)
        }),
        _ => None,
    }
}

fn command(service: &Value) -> Vec<String> {
    service["command"]
        .as_array()
        .expect("command as a list")
        .iter()
        .map(|a| a.as_str().expect("argument").to_owned())
        .collect()
}

/// The value of `flag=value` in a service's command.
fn flag(service: &Value, flag: &str) -> Option<String> {
    command(service)
        .iter()
        .find_map(|a| a.strip_prefix(&format!("{flag}=")).map(str::to_owned))
}

/// `host:port` of an address or URL (`http://host:port/path`, `0.0.0.0:4317`).
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().expect("authority");
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address} has no port"));
    (host.to_owned(), port.parse().expect("port"))
}

fn published_ports(service: &Value) -> Vec<(u16, u16)> {
    service["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            // v1 prints `127.0.0.1:3000:3000/tcp`, v2 a mapping.
            if let Some(short) = p.as_str() {
                let short = short.split('/').next().expect("port");
                let parts: Vec<&str> = short.split(':').collect();
                let n = parts.len();
                (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
            } else {
                (
                    p["published"].as_str().expect("published").parse().unwrap(),
                    p["target"].as_u64().expect("target") as u16,
                )
            }
        })
        .collect()
}

fn streamhouse(stack: &Stack) -> &Value {
    stack.resolve("streamhouse").1
}

fn prometheus_config(stack: &Stack) -> (PathBuf, Value) {
    let prometheus = stack.resolve("prometheus").1;
    let path = flag(prometheus, "--config.file").expect("--config.file");
    let host = host_path(prometheus, &path);
    let config = yaml_file(&host);
    (host, config)
}

fn collector_config(stack: &Stack) -> Value {
    let collector = stack.resolve("otel-collector").1;
    let path = flag(collector, "--config").expect("--config");
    let host = host_path(collector, &path);
    assert_eq!(
        host,
        root().join("otel-collector.yaml"),
        "the stack runs the repository's collector configuration"
    );
    yaml_file(&host)
}

fn tempo_config(stack: &Stack) -> Value {
    let tempo = stack.resolve("tempo").1;
    let path = flag(tempo, "-config.file").expect("-config.file");
    yaml_file(&host_path(tempo, &path))
}

fn jobs(config: &Value) -> BTreeMap<String, Value> {
    config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|job| (job["job_name"].as_str().unwrap().to_owned(), job.clone()))
        .collect()
}

fn targets(job: &Value) -> Vec<String> {
    job["static_configs"]
        .as_array()
        .expect("static_configs")
        .iter()
        .flat_map(|c| c["targets"].as_array().expect("targets").iter())
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// True when the job's metric relabelling drops every scraped sample (`up` is not scraped,
/// so no metric relabelling reaches it).
fn drops_every_sample(job: &Value) -> bool {
    job["metric_relabel_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| {
            rule["action"] == "drop"
                && rule["source_labels"] == serde_json::json!(["__name__"])
                && matches!(rule["regex"].as_str(), Some(".+" | ".*"))
        })
}

#[test]
fn docker_compose_accepts_each_profile_and_each_name_is_one_service() {
    let source = yaml_file(&compose_file());
    let top: BTreeSet<&str> = source
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The Compose Specification's top-level keys (v2 reads them); `version` is v1's.
    for key in &top {
        assert!(
            [
                "services", "volumes", "networks", "configs", "secrets", "name"
            ]
            .contains(key)
                || key.starts_with("x-"),
            "top-level key {key} is not in the Compose Specification"
        );
    }
    for (name, service) in source["services"].as_object().unwrap() {
        // No service outside the profiles: `up` without one starts nothing, rather than
        // half a stack.
        assert!(service["profiles"].is_array(), "{name} has no profile");
        for v1_only in [
            "links",
            "external_links",
            "volume_driver",
            "cpu_shares",
            "mem_limit",
        ] {
            assert!(service.get(v1_only).is_none(), "{name} uses {v1_only}");
        }
    }

    for profile in PROFILES {
        let stack = Stack::load(profile);
        for name in NAMES {
            stack.resolve(name);
        }
        for (name, service) in &stack.services {
            let depends: Vec<String> = match &service["depends_on"] {
                Value::Object(map) => map.keys().cloned().collect(),
                Value::Array(list) => list.iter().map(|d| d.as_str().unwrap().into()).collect(),
                _ => Vec::new(),
            };
            for dependency in depends {
                assert!(
                    stack.services.contains_key(&dependency),
                    "{profile}: {name} depends on {dependency}, which the profile does not start"
                );
            }
        }
        let mut published = BTreeMap::new();
        for (name, service) in &stack.services {
            for (host, _) in published_ports(service) {
                if let Some(other) = published.insert(host, name.clone()) {
                    panic!("{profile}: {name} and {other} both publish port {host}");
                }
            }
        }
        assert_eq!(published.get(&3000).map(String::as_str), Some("grafana"));
    }
}

#[test]
fn docker_compose_config_rejects_a_broken_file() {
    // Guards the test above: docker-compose must refuse an invalid file, not just print it.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("compose.yaml");
    std::fs::write(
        &broken,
        "services:\n  a:\n    image: x:1\n    profiles: [pull]\n    ports: {oops: 1}\n",
    )
    .unwrap();
    let output = docker_compose_config(&broken, "pull");
    assert!(!output.status.success());
    assert!(!output.stderr.is_empty());
}

#[test]
fn every_mount_exists_and_every_image_is_pinned() {
    for profile in PROFILES {
        let stack = Stack::load(profile);
        for (name, service) in &stack.services {
            for (source, target) in binds(service) {
                assert!(
                    source.exists(),
                    "{profile}: {name} mounts {} at {target}, which does not exist",
                    source.display()
                );
                assert!(
                    source.starts_with(root()),
                    "{name} mounts outside the repository"
                );
            }
            if let Some(context) = service["build"]["context"].as_str() {
                let dockerfile = service["build"]["dockerfile"]
                    .as_str()
                    .unwrap_or("Dockerfile");
                assert!(Path::new(context).join(dockerfile).is_file(), "{name}");
                assert_eq!(Path::new(context), root(), "{name} builds the repository");
                continue;
            }
            let image = service["image"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}"));
            let (_, tag) = image
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{name}: {image} has no tag"));
            let version = tag.strip_prefix('v').unwrap_or(tag);
            let parts: Vec<&str> = version.split('.').collect();
            assert!(
                parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
                "{name}: {image} is not pinned to an exact version"
            );
        }
    }
}

#[test]
fn dockerfile_builds_and_runs_the_reference_server() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // Instructions, with continuation lines joined and comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let args = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter_map(|i| i.strip_prefix(&format!("{keyword} ")).map(str::to_owned))
            .collect()
    };

    let froms = args("FROM");
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"');
    assert!(
        froms[0].starts_with(&format!("rust:{rust_version}.")),
        "build on the workspace's rust-version {rust_version}: {}",
        froms[0]
    );
    for from in &froms {
        // Same Debian release in both stages: the binary links the build stage's glibc.
        assert!(from.contains("bookworm"), "{from}");
        assert!(!from.contains("latest"), "{from}");
    }

    let build = args("RUN")
        .into_iter()
        .find(|r| r.contains("cargo build"))
        .expect("a cargo build");
    let words: Vec<&str> = build.split_whitespace().collect();
    for needed in ["--release", "--locked"] {
        assert!(words.contains(&needed), "{build}");
    }
    let example = words[words
        .iter()
        .position(|w| *w == "--example")
        .expect("--example")
        + 1];
    assert!(root().join(format!("examples/{example}.rs")).is_file());
    let built = format!("target/release/examples/{example}");
    let installed = words[words
        .iter()
        .position(|w| *w == built)
        .expect("built binary")
        + 1];
    let copied = args("COPY");
    assert!(
        copied
            .iter()
            .any(|c| c == &format!("--from=build {installed} {installed}")),
        "the runtime stage copies {installed}: {copied:?}"
    );
    for copy in copied.iter().filter(|c| !c.starts_with("--from")) {
        let source = copy.split_whitespace().next().unwrap();
        assert!(root().join(source).exists(), "COPY {source}");
    }
    assert_eq!(
        args("ENTRYPOINT"),
        [format!("[\"{installed}\"]")],
        "runs what it built"
    );
    let user = args("USER").pop().expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    // `docker stop` sends SIGTERM, which the server handles (tests/lite_sigterm.rs).
    assert!(args("STOPSIGNAL").is_empty(), "the default stop signal");

    let env_value = |key: &str| -> String {
        args("ENV")
            .iter()
            .flat_map(|e| e.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap_or_else(|| panic!("ENV {key}"))
    };
    let http_addr = env_value("STREAMHOUSE_HTTP_ADDR");
    let store = env_value("STREAMHOUSE_OBJECT_STORE");
    assert_eq!(args("VOLUME"), [format!("[\"{store}\"]")]);
    assert_eq!(args("EXPOSE"), [host_port(&http_addr).1.to_string()]);

    // The build context keeps local state out and every build input in.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for kept_out in ["target", ".venv", "data"] {
        assert!(patterns.contains(&kept_out), "{kept_out} in .dockerignore");
    }
    for input in ["Cargo.toml", "Cargo.lock", "crates", "examples"] {
        assert!(root().join(input).exists());
        assert!(!patterns.contains(&input), "{input} is a build input");
    }

    for profile in PROFILES {
        let stack = Stack::load(profile);
        let (name, server) = stack.resolve("streamhouse");
        assert!(
            server["build"].is_object(),
            "{name} is built from the Dockerfile"
        );
        assert_eq!(
            env(server, "STREAMHOUSE_HTTP_ADDR"),
            Some(http_addr.clone())
        );
        let port = host_port(&http_addr).1;
        assert!(published_ports(server).contains(&(port, port)), "{name}");
        // Time to seal and flush on SIGTERM before `docker stop` kills it.
        assert_eq!(server["stop_grace_period"], "30s");
        let volumes: Vec<String> = server["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert!(
            volumes.iter().any(|v| v.split(':').nth(1) == Some(&store)),
            "{name} keeps its segments in a volume: {volumes:?}"
        );
    }
}

#[test]
fn grafana_provisioning_names_data_sources_and_dashboards_that_exist() {
    let rules = yaml_file(&root().join("monitoring/rules.yml"));
    let recorded: BTreeSet<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();

    for profile in PROFILES {
        let stack = Stack::load(profile);
        let grafana = stack.resolve("grafana").1;
        let provisioning = host_path(grafana, "/etc/grafana/provisioning/datasources");
        let mut sources: BTreeMap<String, Value> = BTreeMap::new();
        for entry in std::fs::read_dir(&provisioning).unwrap() {
            let file = yaml_file(&entry.unwrap().path());
            assert_eq!(file["apiVersion"], 1);
            for source in file["datasources"].as_array().unwrap() {
                let uid = source["uid"].as_str().expect("every data source has a uid");
                assert!(sources.insert(uid.to_owned(), source.clone()).is_none());
            }
        }
        assert_eq!(
            sources.keys().map(String::as_str).collect::<Vec<_>>(),
            ["prometheus", "tempo"]
        );
        let prometheus = &sources["prometheus"];
        let tempo = &sources["tempo"];
        assert_eq!(prometheus["type"], "prometheus");
        assert_eq!(tempo["type"], "tempo");
        let defaults: Vec<&String> = sources
            .iter()
            .filter(|(_, s)| s["isDefault"] == true)
            .map(|(uid, _)| uid)
            .collect();
        assert_eq!(defaults, ["prometheus"]);

        // Data source URLs reach the services, on the ports they listen on.
        let (host, port) = host_port(prometheus["url"].as_str().unwrap());
        let prometheus_service = stack.resolve(&host).1;
        let listen = flag(prometheus_service, "--web.listen-address")
            .unwrap_or_else(|| "0.0.0.0:9090".into());
        assert_eq!(port, host_port(&listen).1);
        let (host, port) = host_port(tempo["url"].as_str().unwrap());
        assert_eq!(stack.resolve(&host).0, "tempo");
        assert_eq!(
            Some(u64::from(port)),
            tempo_config(&stack)["server"]["http_listen_port"].as_u64()
        );

        // Exemplars (labelled trace_id, names.md) open their trace in Tempo.
        let destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
            .as_array()
            .expect("exemplarTraceIdDestinations");
        assert!(!destinations.is_empty());
        for destination in destinations {
            assert_eq!(destination["name"], "trace_id");
            assert_eq!(destination["datasourceUid"], "tempo");
        }

        // A trace links back to the server's metrics, through recording rules that exist and
        // keep the labels the span's tags become.
        let to_metrics = &tempo["jsonData"]["tracesToMetrics"];
        let target = to_metrics["datasourceUid"].as_str().expect("datasourceUid");
        assert_eq!(sources[target]["type"], "prometheus");
        let labels: Vec<&str> = to_metrics["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["value"].as_str().unwrap())
            .collect();
        let queries = to_metrics["queries"].as_array().unwrap();
        assert!(!queries.is_empty());
        for query in queries {
            let query = query["query"].as_str().unwrap();
            // A single `$` would be read as an environment variable by Grafana.
            assert!(query.contains("{$$__tags}"), "{query}");
            let names: Vec<&str> = query
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.matches(':').count() == 2)
                .collect();
            assert!(!names.is_empty(), "{query} reads a recording rule");
            for name in names {
                assert!(recorded.contains(name), "{name} is not in rules.yml");
                let mut parts = name.split(':');
                let level = parts.next().unwrap();
                let metric = parts.next().unwrap();
                assert!(catalog::by_prometheus_name(metric).is_some(), "{metric}");
                let kept: Vec<&str> = level.split('_').collect();
                for label in &labels {
                    assert!(kept.contains(label), "{name} keeps no {label}");
                }
            }
        }

        // The provider loads the five dashboards from a directory mounted into Grafana.
        let providers_dir = host_path(grafana, "/etc/grafana/provisioning/dashboards");
        let mut dashboard_dirs = Vec::new();
        for entry in std::fs::read_dir(&providers_dir).unwrap() {
            let file = yaml_file(&entry.unwrap().path());
            assert_eq!(file["apiVersion"], 1);
            for provider in file["providers"].as_array().unwrap() {
                assert_eq!(provider["type"], "file");
                let path = provider["options"]["path"].as_str().unwrap();
                dashboard_dirs.push(host_path(grafana, path));
            }
        }
        assert_eq!(dashboard_dirs, [root().join("monitoring/dashboards")]);
        let mut found: Vec<String> = std::fs::read_dir(&dashboard_dirs[0])
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json"))
            .collect();
        found.sort();
        assert_eq!(found, DASHBOARDS);
        let home = env(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").expect("home");
        assert!(host_path(grafana, &home).is_file(), "{home}");

        // Every data source a dashboard names is its variable or a provisioned one.
        for file in DASHBOARDS {
            let text = std::fs::read_to_string(dashboard_dirs[0].join(file)).unwrap();
            let dashboard: Value = serde_json::from_str(&text).unwrap();
            check_datasources(file, &dashboard, &sources);
        }
    }
}

fn check_datasources(file: &str, node: &Value, sources: &BTreeMap<String, Value>) {
    match node {
        Value::Object(map) => {
            if map.get("type") == Some(&Value::from("datasource")) {
                // A data source variable: its plugin type must be provisioned.
                let kind = &map["query"];
                assert!(
                    sources.values().any(|s| &s["type"] == kind),
                    "{file}: no {kind} data source"
                );
            }
            if let Some(Value::Object(reference)) = map.get("datasource") {
                let uid = reference["uid"].as_str().unwrap_or_default();
                if !matches!(uid, "${datasource}" | "$datasource") {
                    let source = sources
                        .get(uid)
                        .unwrap_or_else(|| panic!("{file} names data source {uid}"));
                    if let Some(kind) = reference.get("type") {
                        assert_eq!(&source["type"], kind, "{file}: {uid}");
                    }
                }
            }
            for value in map.values() {
                check_datasources(file, value, sources);
            }
        }
        Value::Array(list) => {
            for value in list {
                check_datasources(file, value, sources);
            }
        }
        _ => {}
    }
}

#[test]
fn collector_prometheus_tempo_and_compose_agree() {
    let alerts = std::fs::read_to_string(root().join("monitoring/alerts.yml")).unwrap();
    assert!(alerts.contains("up{job=\"streamhouse\"}"));

    for profile in PROFILES {
        let stack = Stack::load(profile);
        let server = streamhouse(&stack);
        let collector = collector_config(&stack);
        let (_, prometheus) = prometheus_config(&stack);
        let jobs = jobs(&prometheus);

        // The server pushes to the collector's OTLP receiver of the protocol it speaks.
        let endpoint = env(server, "OTEL_EXPORTER_OTLP_ENDPOINT").expect("endpoint");
        let (host, port) = host_port(&endpoint);
        assert_eq!(stack.resolve(&host).0, "otel-collector");
        let protocol = match env(server, "OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            Some("grpc") => "grpc",
            None | Some("http/protobuf") => "http",
            Some(other) => panic!("protocol {other}"),
        };
        let receiver = collector["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
            .as_str()
            .expect("receiver");
        assert_eq!(port, host_port(receiver).1, "{profile}: {endpoint}");
        let pipeline = |signal: &str, kind: &str| -> Vec<String> {
            collector["service"]["pipelines"][signal][kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        assert!(pipeline("traces", "receivers").contains(&"otlp".to_owned()));
        assert_eq!(env(server, "OTEL_TRACES_EXPORTER"), None, "traces go out");

        // Job and instance line up: pushed series get service.name and
        // service.instance.id, pulled ones the job name and target address.
        assert_eq!(
            env(server, "OTEL_SERVICE_NAME").as_deref(),
            Some("streamhouse")
        );
        let server_job = &jobs["streamhouse"];
        assert!(
            server_job["relabel_configs"].is_null(),
            "instance stays the address"
        );
        let server_targets = targets(server_job);
        assert_eq!(
            server_targets,
            [env(server, "STREAMHOUSE_INSTANCE_ID").expect("STREAMHOUSE_INSTANCE_ID")]
        );
        let (host, port) = host_port(&server_targets[0]);
        assert_eq!(stack.resolve(&host).1, server);
        let http_addr = env(server, "STREAMHOUSE_HTTP_ADDR").expect("STREAMHOUSE_HTTP_ADDR");
        assert_eq!(port, host_port(&http_addr).1);

        // One metrics path per profile: no sample reaches Prometheus twice.
        let metrics_exporter = env(server, "OTEL_METRICS_EXPORTER");
        match profile {
            "pull" => {
                assert_eq!(metrics_exporter.as_deref(), Some("none"));
                assert_eq!(jobs.keys().collect::<Vec<_>>(), ["streamhouse"]);
                assert!(!drops_every_sample(server_job));
            }
            _ => {
                assert!(matches!(metrics_exporter.as_deref(), None | Some("otlp")));
                assert_eq!(
                    jobs.keys().collect::<Vec<_>>(),
                    ["otel-collector", "streamhouse"]
                );
                assert!(
                    drops_every_sample(server_job),
                    "the server is scraped for up only"
                );
                let collector_job = &jobs["otel-collector"];
                assert_eq!(collector_job["honor_labels"], true);
                assert!(!drops_every_sample(collector_job));
                let collector_targets = targets(collector_job);
                assert_eq!(collector_targets.len(), 1);
                let (host, port) = host_port(&collector_targets[0]);
                assert_eq!(stack.resolve(&host).0, "otel-collector");
                let exporter = collector["exporters"]["prometheus"]["endpoint"]
                    .as_str()
                    .expect("prometheus exporter");
                assert_eq!(port, host_port(exporter).1);
                assert!(pipeline("metrics", "exporters").contains(&"prometheus".to_owned()));
            }
        }

        // Exemplars are stored, and the collector's traces reach Tempo's OTLP gRPC port.
        let prometheus_service = stack.resolve("prometheus").1;
        assert!(command(prometheus_service).contains(&"--enable-feature=exemplar-storage".into()));
        let trace_exporters: Vec<String> = pipeline("traces", "exporters")
            .into_iter()
            .filter(|e| e.starts_with("otlp"))
            .collect();
        assert_eq!(trace_exporters.len(), 1, "{trace_exporters:?}");
        let endpoint = collector["exporters"][&trace_exporters[0]]["endpoint"]
            .as_str()
            .unwrap();
        let (host, port) = host_port(endpoint);
        assert_eq!(stack.resolve(&host).0, "tempo");
        let tempo = tempo_config(&stack);
        let tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
            .as_str()
            .expect("Tempo's OTLP gRPC receiver");
        assert_eq!(host_port(tempo_grpc), ("0.0.0.0".to_owned(), port));
    }
}

/// Copies the bind mounts under `/etc/prometheus` of the stack's Prometheus into `dir`, as
/// the container sees them; returns the config file's path there.
fn mirror_prometheus(stack: &Stack, dir: &Path, skip: Option<&str>) -> PathBuf {
    let prometheus = stack.resolve("prometheus").1;
    for (source, target) in binds(prometheus) {
        if Some(target.as_str()) == skip || !target.starts_with("/etc/prometheus/") {
            continue;
        }
        let at = dir.join(target.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(&source, &at).unwrap();
    }
    let config = flag(prometheus, "--config.file").expect("--config.file");
    dir.join(config.trim_start_matches('/'))
}

#[test]
fn promtool_checks_each_stack_prometheus_config_with_its_rule_files() {
    for profile in PROFILES {
        let stack = Stack::load(profile);
        let (_, config) = prometheus_config(&stack);
        let rule_files = config["rule_files"].as_array().expect("rule_files").len();
        assert_eq!(rule_files, 2, "alerts.yml and rules.yml");

        let dir = tempfile::tempdir().unwrap();
        let mirrored = mirror_prometheus(&stack, dir.path(), None);
        let output = run(Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(&mirrored));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{profile}: {text}");
        assert!(
            text.contains(&format!("{rule_files} rule files found")),
            "{profile}: {text}"
        );

        // Guard: without a mounted rule file the same check fails, so the mounts matter.
        let dir = tempfile::tempdir().unwrap();
        let mirrored = mirror_prometheus(&stack, dir.path(), Some("/etc/prometheus/rules.yml"));
        let output = run(Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(&mirrored));
        assert!(!output.status.success(), "{profile}: rules.yml missing");
    }
}

/// A PromQL query's result; `None` while Prometheus does not answer yet.
async fn try_query(client: &reqwest::Client, base: &str, promql: &str) -> Option<Vec<Value>> {
    let response = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.expect("JSON answer");
    assert_eq!(body["status"], "success", "{promql}: {body}");
    Some(body["data"]["result"].as_array().expect("result").clone())
}

async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Vec<Value> {
    try_query(client, base, promql)
        .await
        .expect("Prometheus answers")
}

#[tokio::test(flavor = "multi_thread")]
async fn push_profile_relabelling_keeps_up_alone_and_strips_our_scope_in_prometheus() {
    use streamhouse_observability::config::{PrometheusConfig, ScopeLabels};
    use streamhouse_observability::{Telemetry, TelemetryConfig};

    // A real exposition carrying StreamHouse's scope labels, as the collector's exporter
    // serves pushed series: otel_scope_name="streamhouse" and its version.
    let telemetry = Telemetry::new(
        TelemetryConfig::default()
            .with_service_instance_id("stack-test")
            .with_prometheus(PrometheusConfig::default().with_scope_labels(ScopeLabels::All)),
    )
    .expect("telemetry");
    let _recorded = support::record_every_metric(&telemetry);
    let exposition = telemetry.render_prometheus();
    assert!(exposition.contains("otel_scope_name=\"streamhouse\""));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = streamhouse_observability::http::metrics_router(&telemetry);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The push profile's Prometheus config as it is, every target pointed at that server
    // and scraping every second (JSON is YAML to Prometheus).
    let stack = Stack::load("push");
    let (_, mut config) = prometheus_config(&stack);
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    config.as_object_mut().unwrap().remove("rule_files");
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        job["static_configs"] = serde_json::json!([{ "targets": [address] }]);
    }
    let prometheus = support::Prometheus::start(&serde_json::to_string(&config).unwrap());
    let base = prometheus.url();
    let client = support::http_client(std::time::Duration::from_secs(5));

    let mut ready = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let server_up = try_query(&client, &base, "up{job=\"streamhouse\"} == 1").await;
        let pushed = try_query(
            &client,
            &base,
            "{job=\"otel-collector\",__name__=~\"streamhouse_.+\"}",
        )
        .await;
        if server_up.is_some_and(|s| !s.is_empty()) && pushed.is_some_and(|p| !p.is_empty()) {
            ready = true;
            break;
        }
    }
    assert!(ready, "Prometheus scraped both jobs within 30 s");

    // The server's job: up, and Prometheus's own scrape series; every scraped sample dropped.
    let names = query(
        &client,
        &base,
        "count by (__name__) ({job=\"streamhouse\"})",
    )
    .await;
    for series in &names {
        let name = series["metric"]["__name__"].as_str().unwrap();
        assert!(
            name == "up" || name.starts_with("scrape_"),
            "{name} reached Prometheus twice"
        );
    }
    let scraped = query(
        &client,
        &base,
        "scrape_samples_scraped{job=\"streamhouse\"} > 0",
    )
    .await;
    assert_eq!(scraped.len(), 1, "the server answered samples");
    let kept = query(
        &client,
        &base,
        "scrape_samples_post_metric_relabeling{job=\"streamhouse\"} == 0",
    )
    .await;
    assert_eq!(kept.len(), 1, "and none were kept");

    // The collector's job: our scope's labels are gone, as on the server's own /metrics.
    let with_scope = query(
        &client,
        &base,
        "{job=\"otel-collector\",otel_scope_name=\"streamhouse\"}",
    )
    .await;
    assert!(with_scope.is_empty(), "{with_scope:?}");
    let orphans = query(
        &client,
        &base,
        "{job=\"otel-collector\",otel_scope_name=\"\",otel_scope_version=~\".+\"}",
    )
    .await;
    assert!(orphans.is_empty(), "{orphans:?}");
}
