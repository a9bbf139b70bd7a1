//! The server's transport limits, tried with raw sockets on loopback: half-sent request heads
//! (slowloris), the connection limit, a trickling body, and shutdown with requests open.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use object_store::memory::InMemory;
use streamhouse_observability::catalog::HTTP_SERVER_REQUEST_DURATION;
use support::closed_within;
use support::lite::{LiteTestServer, eventually, start, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack for a loaded machine on top of a limit that should have acted.
const MARGIN: Duration = Duration::from_secs(3);

async fn server_with(configure: impl FnOnce(&mut streamhouse_lite::LiteConfig)) -> LiteTestServer {
    let mut config = test_config();
    configure(&mut config);
    start(config, Arc::new(InMemory::new())).await
}

/// Reads one HTTP/1.1 response: status and body (by `Content-Length`).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.expect("read response");
        assert!(n > 0, "connection closed before a response: {received:?}");
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let status = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while received.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read body");
        assert!(n > 0, "connection closed inside the body");
        received.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&received[head_end..head_end + length]).to_string();
    (status, body)
}

/// `GET path` on a fresh connection.
async fn get_fresh(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    read_response(&mut stream).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_closed_within_the_header_timeout_while_others_are_served() {
    let timeout = Duration::from_secs(1);
    let server = server_with(|c| c.header_read_timeout = timeout).await;
    let mut attackers = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET /api/v1/topics HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .expect("send a partial head");
        attackers.push(stream);
    }
    let last_opened = Instant::now();

    let closes = join_all(
        attackers
            .iter_mut()
            .map(|stream| closed_within(stream, timeout + MARGIN)),
    );
    let served = async {
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(get_fresh(server.addr, "/api/v1/topics").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses
    };
    let (closes, statuses) = tokio::join!(closes, served);

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for (i, closed) in closes.iter().enumerate() {
        let closed = closed.unwrap_or_else(|| panic!("attacker {i} still open"));
        assert!(closed.duration_since(last_opened) <= timeout + MARGIN);
    }
    assert!(
        server.server.open_connections() <= 1,
        "{} connections still open",
        server.server.open_connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_a_client_waits_until_one_closes() {
    let server = server_with(|c| {
        c.max_connections = 4;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    eventually(Duration::from_secs(5), "4 accepted connections", || async {
        (server.server.open_connections() == 4).then_some(())
    })
    .await;

    let addr = server.addr;
    let fifth = tokio::spawn(async move { get_fresh(addr, "/api/v1/topics").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fifth.is_finished(),
        "the fifth client was served past the limit"
    );
    assert_eq!(server.server.open_connections(), 4);

    drop(idle.pop());
    let status = tokio::time::timeout(MARGIN, fifth)
        .await
        .expect("the fifth client is served once a connection closes")
        .expect("task");
    assert_eq!(status, 200);
    assert!(server.server.open_connections() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_gets_a_json_503_at_the_request_timeout() {
    let limit = Duration::from_secs(1);
    let server = server_with(|c| {
        c.request_timeout = limit;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // Before the head: the server's clock cannot start earlier than this.
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/v1/topics HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"na",
        )
        .await
        .expect("send head");
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        // One byte every 200 ms: 100 bytes would take 20 s.
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let response = tokio::time::timeout(limit + MARGIN, async {
        loop {
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without an answer");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).to_string();
            if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                return text;
            }
        }
    })
    .await
    .expect("an answer within the request timeout");
    trickle.abort();
    assert!(started.elapsed() >= limit, "answered before the limit");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(&response[response.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["error"], "request_timeout");

    let labels = [
        ("http_request_method", "POST"),
        ("http_response_status_code", "503"),
        ("http_route", "/api/v1/topics"),
        ("url_scheme", "http"),
        // A 5xx is an error: its status code is the error type.
        ("error_type", "503"),
    ];
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.get(&HTTP_SERVER_REQUEST_DURATION, "_count", &labels),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_drops_half_sent_ones_at_the_grace() {
    let grace = Duration::from_secs(2);
    let server = server_with(|c| {
        c.shutdown_grace = grace;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = server.addr;
    let mut half_sent = TcpStream::connect(addr).await.expect("connect");
    half_sent
        .write_all(b"GET /api/v1/topics HTTP/1.1\r\nHost: te")
        .await
        .expect("send a partial head");
    let body = br#"{"name":"in-flight","partitions":1}"#;
    let mut in_flight = TcpStream::connect(addr).await.expect("connect");
    // `100 Continue` comes back once the handler reads the body: the request is in flight.
    let head = format!(
        "POST /api/v1/topics HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.expect("head");
    let mut interim = [0u8; 25];
    in_flight
        .read_exact(&mut interim)
        .await
        .expect("100 Continue");
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
    in_flight
        .write_all(&body[..10])
        .await
        .expect("half the body");
    eventually(
        Duration::from_secs(5),
        "both connections accepted",
        || async { (server.server.open_connections() == 2).then_some(()) },
    )
    .await;

    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    eventually(MARGIN, "the listener to close", || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    in_flight
        .write_all(&body[10..])
        .await
        .expect("rest of the body");
    let (status, answer) = read_response(&mut in_flight).await;
    assert_eq!(status, 201, "{answer}");

    tokio::time::timeout(grace + MARGIN, stopping)
        .await
        .expect("shutdown within the grace")
        .expect("task");
    assert!(started.elapsed() < grace + MARGIN);
    assert!(
        closed_within(&mut half_sent, Duration::from_secs(1))
            .await
            .is_some(),
        "the half-sent request's connection is closed"
    );
}
