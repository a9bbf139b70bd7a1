//! A TCP proxy on a free loopback port that a test switches off and on: off, it drops every
//! connection it holds and every new one, as a collector behind a failing network would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    on: Arc<AtomicBool>,
    /// Bumped at each switch-off: connections end when it changes.
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards connections to `target`; starts on.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let on = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0);
        let (accepting, cuts) = (Arc::clone(&on), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            on,
            cut,
            task,
        }
    }

    /// Off: every held connection is dropped, and new ones are closed at once.
    pub fn switch_off(&self) {
        self.on.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// On again: new connections reach the target.
    pub fn switch_on(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
