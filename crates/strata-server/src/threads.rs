//! Serving on threads that each own their connections.
//!
//! `serve_on_threads` runs the services on `threads` threads, each with a
//! single-threaded tokio runtime of its own. An acceptor (on the caller's
//! runtime) hands every new connection to the thread with the fewest open
//! connections; that connection's HTTP/2 task and every request on it then
//! run on that thread only.
//!
//! Why not one multi-threaded runtime: with work stealing, a request
//! decoded on one worker is often run by another, and its reply goes back
//! to the first, each hand-off a futex wake and a context switch. On 2
//! cores with one client connection at 16 requests in flight, one thread
//! per connection served point reads 25–35% faster at a fifth less CPU
//! per request (docs/benchmarks.md). The price: one connection's requests
//! use one core (besides the blocking pool for reads that meet storage,
//! and the engine's committer), so a client that needs more opens more
//! connections, as Bigtable's Java and Go clients do with channel pools.
//!
//! Each serving thread defers waking the engine's committer for the
//! writes it queues until it has nothing left to run (its runtime's park
//! hook calls `strata_engine::wake_deferred_commits`), so the writes of
//! the requests it decoded in one pass start one commit group together
//! (docs/design.md, "Write path"; at 16 requests in flight, 4.1–4.9 writes
//! a group became 6.6–6.7, docs/benchmarks.md).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::connection::Connection;
use crate::serve::Shared;
use crate::ServerOptions;
use strata_table::Database;

/// Most serving threads (a bound on a flag's value, far above any core
/// count this runs on).
pub const SERVING_THREADS_MAX: usize = 1024;

/// How long the acceptor waits after an accept error (out of file
/// descriptors, most likely) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Why serving stopped other than by the shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving threads must be 1 to {SERVING_THREADS_MAX}, not {0}")]
    Threads(usize),
    #[error("starting serving thread {thread}: {source}")]
    Start { thread: usize, source: io::Error },
    #[error("serving thread {thread}: {source}")]
    Serve {
        thread: usize,
        source: tonic::transport::Error,
    },
    #[error("serving thread {0} stopped unexpectedly")]
    Lost(usize),
}

/// One serving thread as the acceptor sees it.
struct Worker {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Its connections still open.
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<Result<(), ServeError>>,
}

/// Serves like [`crate::serve`], on `threads` threads that each run their
/// own connections (module docs), until `shutdown` resolves; then stops
/// accepting, lets every thread finish its in-flight requests, and
/// returns. A thread that fails stops the others and is reported.
pub async fn serve_on_threads(
    db: Arc<Database>,
    listener: tokio::net::TcpListener,
    opts: ServerOptions,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    if !(1..=SERVING_THREADS_MAX).contains(&threads) {
        return Err(ServeError::Threads(threads));
    }
    let shared = Shared::new(db, opts);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = Vec::with_capacity(threads);
    for thread in 0..threads {
        match start(thread, shared.clone(), stop_rx.clone()) {
            Ok(w) => workers.push(w),
            Err(e) => {
                let _ = stop_tx.send(true);
                join(workers).await?;
                return Err(e);
            }
        }
    }
    let accepted = accept(&listener, &mut workers, shutdown).await;
    drop(listener);
    let _ = stop_tx.send(true);
    let joined = join(workers).await;
    // A lost thread's own error says more than the acceptor's.
    joined.and(accepted)
}

/// Starts serving thread `thread`.
fn start(thread: usize, shared: Shared, stop: watch::Receiver<bool>) -> Result<Worker, ServeError> {
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let open = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("strata-blk-{thread}"))
        // The requests decoded in one pass go to the engine's committer
        // together: it is woken once the thread has nothing left to run.
        .on_thread_park(strata_engine::wake_deferred_commits)
        .build()
        .map_err(|source| ServeError::Start { thread, source })?;
    let counter = open.clone();
    std::thread::Builder::new()
        .name(format!("strata-grpc-{thread}"))
        .spawn(move || {
            strata_engine::defer_commit_wakeups();
            let served = runtime.block_on(run(shared, conn_rx, counter, stop));
            // Waits for the requests still on its blocking pool, so that
            // once every thread is done nothing holds the database.
            drop(runtime);
            let _ = done_tx.send(served.map_err(|source| ServeError::Serve { thread, source }));
        })
        .map_err(|source| ServeError::Start { thread, source })?;
    Ok(Worker {
        connections: conn_tx,
        open,
        done: done_rx,
    })
}

/// A serving thread's runtime: serves the connections handed to it until
/// told to stop.
async fn run(
    shared: Shared,
    connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold((connections, open), |(mut rx, open)| async move {
        loop {
            let std_stream = rx.recv().await?;
            match TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    let counted = Connection::new(stream, open.clone());
                    return Some((Ok::<_, io::Error>(counted), (rx, open)));
                }
                Err(e) => {
                    open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("registering an accepted connection: {e}");
                }
            }
        }
    });
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    shared.serve(incoming, stopped).await
}

/// Accepts connections and hands each to the thread with the fewest open
/// ones, until `shutdown` resolves or a thread is lost (its runtime
/// stopped, dropping its end of the connection channel).
async fn accept(
    listener: &tokio::net::TcpListener,
    workers: &mut [Worker],
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    tokio::pin!(shutdown);
    loop {
        let lost = futures::future::select_all(
            workers
                .iter()
                .map(|w| Box::pin(w.connections.closed()))
                .collect::<Vec<_>>(),
        );
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            ((), thread, _) = lost => return Err(ServeError::Lost(thread)),
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Small unary replies must not wait for delayed ACKs (Nagle).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!("setting TCP_NODELAY on an accepted connection: {e}");
        }
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("moving an accepted connection to its thread: {e}");
                continue;
            }
        };
        let thread = least_loaded(workers);
        let w = &workers[thread];
        w.open.fetch_add(1, Ordering::Relaxed);
        if w.connections.send(std_stream).is_err() {
            w.open.fetch_sub(1, Ordering::Relaxed);
            return Err(ServeError::Lost(thread));
        }
    }
}

/// The thread with the fewest open connections (the first of those tied).
fn least_loaded(workers: &[Worker]) -> usize {
    assert!(!workers.is_empty(), "at least one serving thread");
    (0..workers.len())
        .min_by_key(|&i| workers[i].open.load(Ordering::Relaxed))
        .expect("not empty")
}

/// Waits for every thread to finish; the first failure, if any.
async fn join(workers: Vec<Worker>) -> Result<(), ServeError> {
    let mut first = Ok(());
    for (thread, w) in workers.into_iter().enumerate() {
        drop(w.connections);
        let outcome = w.done.await.unwrap_or(Err(ServeError::Lost(thread)));
        if let (Ok(()), Err(e)) = (&first, outcome) {
            first = Err(e);
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(open: usize) -> Worker {
        let (connections, _) = mpsc::unbounded_channel();
        let (_, done) = oneshot::channel();
        Worker {
            connections,
            open: Arc::new(AtomicUsize::new(open)),
            done,
        }
    }

    #[test]
    fn a_connection_goes_to_the_thread_with_fewest_open() {
        let workers: Vec<Worker> = [3, 1, 2, 1].into_iter().map(worker).collect();
        assert_eq!(least_loaded(&workers), 1, "the first of the tied");
        workers[1].open.fetch_add(1, Ordering::Relaxed);
        assert_eq!(least_loaded(&workers), 3);
        workers[3].open.fetch_add(5, Ordering::Relaxed);
        assert_eq!(
            least_loaded(&workers),
            1,
            "3, 2, 2, 6: the first of the tied"
        );
    }
}
