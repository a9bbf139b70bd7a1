//! A small Tokio runtime owned by the telemetry handle, for our OTLP transports.
//!
//! tonic channels and hyper's client pool spawn their connection tasks on a runtime and need
//! it alive afterwards; the SDK drives exports from its own threads. Owning a one-worker
//! runtime makes push work from sync code and outlive the caller's runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle, Runtime};

pub(crate) struct ExportRuntime {
    runtime: Option<Runtime>,
}

impl ExportRuntime {
    pub(crate) fn new() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("streamhouse-otlp")
            .enable_all()
            .build()?;
        Ok(ExportRuntime {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> Handle {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .handle()
            .clone()
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // A plain drop blocks and panics when the last handle goes away inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Polls `inner` inside the runtime's context, so timers and I/O an exporter creates
/// while exporting land on the runtime that drives them.
pub(crate) struct InRuntime<F> {
    pub(crate) handle: Handle,
    pub(crate) inner: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.handle.enter();
        self.inner.as_mut().poll(cx)
    }
}
