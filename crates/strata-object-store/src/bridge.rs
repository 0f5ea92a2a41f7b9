//! The bridge from the synchronous engine to the asynchronous object
//! store: a small runtime of this crate's own runs each request, and the
//! calling thread waits on a channel. The engine calls storage from its
//! own threads and tokio's blocking pool, never from an async worker, so
//! the wait blocks no executor; the local engine never crosses this
//! bridge.

use std::future::Future;
use std::sync::Arc;

use strata_engine::Error;

use crate::SetupError;

/// Worker threads of the object-store runtime: requests mostly wait on
/// the network, so a few threads carry many in flight.
const RUNTIME_THREADS: usize = 2;

#[derive(Clone)]
pub struct Bridge {
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Bridge {
    pub fn new() -> Result<Bridge, SetupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("strata-object-store")
            .enable_all()
            .build()
            .map_err(SetupError::Runtime)?;
        Ok(Bridge {
            runtime: Arc::new(runtime),
        })
    }

    /// Runs `f` on the runtime and waits for its output.
    pub fn run<F>(&self, what: &str, f: F) -> Result<F::Output, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| {
            Error::io(
                what.to_string(),
                std::io::Error::other("the object-store runtime stopped"),
            )
        })
    }

    /// Starts `f` on the runtime without waiting.
    pub fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(f);
    }
}
