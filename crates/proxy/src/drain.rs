//! Graceful drain: one signal every listener and connection selects on. On SIGTERM the
//! proxy stops accepting, asks each connection to finish (HTTP/1.1 closes once idle,
//! HTTP/2 sends GOAWAY), and waits up to the drain timeout for them to end, like Istio's
//! `terminationDrainDuration` (default 5s).

use std::time::Duration;

use tokio::sync::watch;

/// The drain signal, owned by the proxy. Every [`Watcher`] is also a count of what is
/// still being served: the drain is over when all have been dropped.
#[derive(Debug)]
pub struct Drain {
    tx: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// A watcher for one listener or connection; hold it for as long as it serves.
    pub fn watcher(&self) -> Watcher {
        Watcher(self.tx.subscribe())
    }

    /// Starts draining: every watcher's [`Watcher::signaled`] resolves.
    pub fn start(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.tx.borrow()
    }

    /// How many listeners and connections are still being served.
    pub fn active(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Waits until every watcher is gone or `timeout` passes; `true` when all finished.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.tx.closed())
            .await
            .is_ok()
    }
}

/// One listener's or connection's view of the drain signal.
#[derive(Debug)]
pub struct Watcher(watch::Receiver<bool>);

impl Watcher {
    /// Resolves once draining has started (at once if it already has).
    pub async fn signaled(&mut self) {
        // An error means the proxy itself is gone: drain then too.
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}
