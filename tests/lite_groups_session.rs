//! Member sessions of `streamhouse-lite`: a member that stops calling leaves after its
//! session timeout and the group rebalances; a heartbeat, or a consume or commit naming the
//! member, keeps it in.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use reqwest::StatusCode;
use serde_json::{Value, json};
use streamhouse_lite::LiteConfig;
use streamhouse_observability::catalog;
use support::lite::{LiteTestServer, eventually, start, test_config};

const TOPIC: &str = "events";
/// Keep-alive calls come this often, well inside every session timeout used here.
const KEEPALIVE_EVERY: Duration = Duration::from_millis(50);

fn config(session_timeout: Duration) -> LiteConfig {
    let mut config = test_config();
    config.member_session_timeout = session_timeout;
    config
}

async fn join(server: &LiteTestServer, group: &str) -> String {
    let (status, body) = server
        .post(
            &format!("/api/v1/consumer-groups/{group}/members"),
            &json!({ "topic": TOPIC }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["memberId"].as_str().unwrap().to_owned()
}

async fn heartbeat(server: &LiteTestServer, group: &str, member: &str) -> (StatusCode, Value) {
    server
        .post_raw(
            &format!("/api/v1/consumer-groups/{group}/members/{member}/heartbeat"),
            "",
        )
        .await
}

/// Member id -> assigned partitions, or `None` once the group is gone.
async fn members(server: &LiteTestServer, group: &str) -> Option<serde_json::Map<String, Value>> {
    let (status, body) = server
        .get(&format!("/api/v1/consumer-groups/{group}"))
        .await;
    match status {
        StatusCode::OK => Some(body["members"].as_object().unwrap().clone()),
        StatusCode::NOT_FOUND => None,
        _ => panic!("{status}: {body}"),
    }
}

fn rebalances(m: &support::lite::Metrics, group: &str) -> f64 {
    m.get(
        &catalog::CONSUMER_REBALANCES,
        "",
        &[("consumer_group", group)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_leaves_and_the_other_takes_its_partitions() {
    let server = Arc::new(
        start(
            config(Duration::from_millis(300)),
            Arc::new(InMemory::new()),
        )
        .await,
    );
    server.create_topic(TOPIC, 4).await;
    let silent = join(&server, "g").await;
    let alive = join(&server, "g").await;
    let keepalive = {
        let (server, alive) = (Arc::clone(&server), alive.clone());
        tokio::spawn(async move {
            loop {
                let (status, body) = heartbeat(&server, "g", &alive).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                tokio::time::sleep(KEEPALIVE_EVERY).await;
            }
        })
    };

    let held = eventually(
        Duration::from_secs(5),
        "the silent member to leave",
        || async {
            let members = members(&server, "g").await.expect("the group stays");
            (members.len() == 1).then_some(members)
        },
    )
    .await;
    let partitions: Vec<u64> = held[&alive]
        .as_array()
        .unwrap()
        .iter()
        .map(|tp| tp["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(partitions, [0, 1, 2, 3]);
    // Two joins and one expiry.
    assert_eq!(rebalances(&server.metrics().await, "g"), 3.0);
    let (status, body) = heartbeat(&server, "g", &silent).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "member_not_found");
    let (status, body) = heartbeat(&server, "g", &alive).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["generation"], 3);
    assert_eq!(body["assignments"].as_array().unwrap().len(), 4);

    // The last member goes silent too: the group, which never committed, goes away with
    // all of its series (its four rebalances included).
    keepalive.abort();
    let _ = keepalive.await;
    eventually(Duration::from_secs(5), "the group to go away", || async {
        members(&server, "g").await.is_none().then_some(())
    })
    .await;
    let m = server.metrics().await;
    assert!(!m.body.contains(r#"consumer_group="g""#), "{}", m.body);
    let (status, body) = server.get("/api/v1/consumer-groups/g/lag").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_consumes_and_commits_naming_a_member_keep_it_in() {
    let timeout = Duration::from_millis(500);
    let server = start(config(timeout), Arc::new(InMemory::new())).await;
    server.create_topic(TOPIC, 4).await;
    let by_heartbeat = join(&server, "g").await;
    let by_consume = join(&server, "g").await;
    let by_commit = join(&server, "g").await;
    let silent = join(&server, "g").await;

    let started = Instant::now();
    while started.elapsed() < timeout * 4 {
        let (status, body) = heartbeat(&server, "g", &by_heartbeat).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = server
            .get(&format!(
                "/api/v1/consume?topic={TOPIC}&partition=0&groupId=g&memberId={by_consume}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = server
            .post(
                "/api/v1/consumer-groups/commit",
                &json!({
                    "groupId": "g", "topic": TOPIC, "partition": 1, "offset": 0,
                    "memberId": by_commit,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(KEEPALIVE_EVERY).await;
    }

    let members = members(&server, "g").await.expect("the group stays");
    let mut ids: Vec<&String> = members.keys().collect();
    ids.sort();
    let mut expected = vec![&by_heartbeat, &by_consume, &by_commit];
    expected.sort();
    assert_eq!(ids, expected, "{silent} left, the others stayed");
    // Four joins and the one expiry.
    assert_eq!(rebalances(&server.metrics().await, "g"), 5.0);
}
