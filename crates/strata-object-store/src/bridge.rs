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
    runtime: Arc<Owned>,
}

/// The runtime, shut down without waiting when the last storage goes:
/// that may happen on an async thread (a cluster server's tablets close
/// in its tasks), where dropping a runtime the usual way panics. Nothing
/// is left to wait for: every request a storage makes is waited for by
/// its caller, except cache fills, which may be abandoned.
struct Owned(Option<tokio::runtime::Runtime>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Owned {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime lives until dropped")
    }
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
            runtime: Arc::new(Owned(Some(runtime))),
        })
    }

    /// Runs `f` on the runtime and waits for its output.
    pub fn run<F>(&self, what: &str, f: F) -> Result<F::Output, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.get().spawn(async move {
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
        self.runtime.get().spawn(f);
    }
}
