//! `streamhouse-lite`: a small but real StreamHouse-shaped server that exercises the
//! telemetry SDK end to end.
//!
//! Records flow: `POST /api/v1/produce` -> a [partition log](partition_log) whose active
//! [`segment`] buffers records -> sealed segments go to the [writer pool](writer_pool),
//! whose agents flush them to an object store -> `GET /api/v1/consume` reads recent records
//! from memory and older ones from flushed segments through the byte-bounded
//! [segment cache](segment_cache). [Consumer groups](consumer_groups) track members,
//! assignments, rebalances and committed offsets.
//!
//! Every metric of the SDK's catalog is recorded by the code path it describes; see
//! [`broker::Broker`] for where each one comes from.
//!
//! ```no_run
//! use streamhouse_lite::{LiteConfig, server::LiteServer};
//! use streamhouse_observability::{Telemetry, TelemetryConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = Telemetry::new(TelemetryConfig::default())?;
//! let server = LiteServer::start(LiteConfig::from_env()?, &telemetry).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod broker;
pub mod config;
pub mod connections;
pub mod consumer_groups;
pub mod loadgen;
pub mod manifest;
pub mod partition_log;
pub mod record;
pub mod segment;
pub mod segment_cache;
pub mod serve;
pub mod server;
pub mod store;
pub mod topics;
mod trace_context;
pub mod writer_pool;

pub use config::LiteConfig;
