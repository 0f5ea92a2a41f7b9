//! Watches: a key's or a prefix's changes as a stream of events, in
//! revision order, from a chosen revision.
//!
//! A background task holds the `Watch` gRPC stream. When the stream breaks
//! (etcd restarts, the endpoint becomes unreachable) it reconnects, to the
//! next endpoint, and re-creates the watch from the revision after the last
//! event it delivered, so the consumer sees every event once, in order,
//! across reconnects. Events of one txn share a revision and arrive one
//! after another. If etcd has compacted the revision the watch must resume
//! from, the stream ends with [`Error::Compacted`]: the consumer must
//! re-read the state ([`Etcd::get_prefix`]) and watch again from the
//! listing's revision + 1.

use crate::client::{Etcd, KeyValue};
use crate::error::{Error, Result};
use crate::pb::{self, watch_client::WatchClient, watch_request::RequestUnion};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_stream::wrappers::ReceiverStream;

/// Watch responses (each a batch of events) buffered between the watch
/// task and the consumer.
const BUFFER: usize = 256;
/// The id this client gives its one watch on each stream.
const WATCH_ID: i64 = 1;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// The key after a put; after a delete, the key with an empty value and
    /// `mod_revision` the revision of the delete.
    pub kv: KeyValue,
    /// The key before the change, when asked for ([`WatchOptions::prev_kv`])
    /// and still in etcd's history.
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// How to start a watch.
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchOptions {
    /// The first revision to deliver (inclusive); 0: changes after the
    /// watch is created.
    pub start_revision: i64,
    /// Deliver each event's previous key-value.
    pub prev_kv: bool,
}

/// The events of a watch. Dropping it ends the watch.
pub struct WatchStream {
    /// Each watch response's events (all of a revision come in one).
    rx: mpsc::Receiver<Result<Vec<WatchEvent>>>,
    /// Events received and not yet returned.
    pending: VecDeque<WatchEvent>,
    cancel: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<bool>>,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl WatchStream {
    /// The next event; `None` once the watch has ended (after an error, or
    /// a cancel).
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            match self.rx.recv().await? {
                Ok(batch) => self.pending.extend(batch),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Every event of the next revision (one txn's changes, which a reader
    /// must see all or none of): never empty.
    pub async fn next_revision(&mut self) -> Option<Result<Vec<WatchEvent>>> {
        let first = match self.next().await? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let revision = first.revision();
        let mut out = vec![first];
        while self
            .pending
            .front()
            .is_some_and(|e| e.revision() == revision)
        {
            out.extend(self.pending.pop_front());
        }
        Some(Ok(out))
    }

    /// Cancels the watch with a `WatchCancelRequest` and waits (bounded by
    /// the rpc timeout) for etcd to confirm; returns whether it did.
    pub async fn cancel(mut self) -> bool {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
        let Some(task) = self.task.as_mut() else {
            return false;
        };
        let rx = &mut self.rx;
        // Drain what the task still sends, so it never blocks on a full
        // buffer before it sees the cancel. (Dropping `self` then aborts
        // the task if it did not finish in time.)
        let confirmed = async {
            let mut open = true;
            loop {
                tokio::select! {
                    done = &mut *task => return matches!(done, Ok(true)),
                    event = rx.recv(), if open => open = event.is_some(),
                }
            }
        };
        timeout(Duration::from_secs(10), confirmed)
            .await
            .unwrap_or(false)
    }
}

impl tokio_stream::Stream for WatchStream {
    type Item = Result<WatchEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(batch))) => self.pending.extend(batch),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Etcd {
    /// Watches every key starting with `prefix`.
    pub fn watch_prefix(&self, prefix: &[u8], opts: WatchOptions) -> WatchStream {
        self.watch_range(prefix.to_vec(), pb::prefix_end(prefix), opts)
    }

    /// Watches one key.
    pub fn watch_key(&self, key: &[u8], opts: WatchOptions) -> WatchStream {
        self.watch_range(key.to_vec(), Vec::new(), opts)
    }

    fn watch_range(&self, key: Vec<u8>, range_end: Vec<u8>, opts: WatchOptions) -> WatchStream {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let watcher = Watcher {
            etcd: self.clone(),
            key,
            range_end,
            next_revision: opts.start_revision.max(0),
            prev_kv: opts.prev_kv,
            tx,
            cancel: cancel_rx,
        };
        WatchStream {
            rx,
            pending: VecDeque::new(),
            cancel: Some(cancel_tx),
            task: Some(tokio::spawn(watcher.run())),
        }
    }
}

struct Watcher {
    etcd: Etcd,
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The revision to (re)start from; 0 until the first watch is created
    /// when watching "from now".
    next_revision: i64,
    prev_kv: bool,
    tx: mpsc::Sender<Result<Vec<WatchEvent>>>,
    cancel: oneshot::Receiver<()>,
}

/// How one gRPC stream ended.
enum Ended {
    /// Reconnect and resume.
    Broken(String),
    /// The watch is over (cancelled, consumer gone, or a final error sent);
    /// `true` if etcd confirmed a cancel.
    Done(bool),
}

impl Watcher {
    /// Runs the watch until cancelled, the consumer is gone, or a final
    /// error; returns whether etcd confirmed a cancel.
    async fn run(mut self) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let (endpoint, channel) = self.etcd.channel();
            match self.stream(channel, &mut backoff).await {
                Ended::Done(confirmed) => return confirmed,
                Ended::Broken(why) => {
                    tracing::warn!(
                        revision = self.next_revision,
                        "etcd watch broken, resuming in {backoff:?}: {why}"
                    );
                    self.etcd.endpoint_failed(endpoint);
                    tokio::select! {
                        _ = &mut self.cancel => return false,
                        _ = self.tx.closed() => return false,
                        _ = sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn stream(
        &mut self,
        channel: tonic::transport::Channel,
        backoff: &mut Duration,
    ) -> Ended {
        let create = pb::WatchCreateRequest {
            key: self.key.clone(),
            range_end: self.range_end.clone(),
            start_revision: self.next_revision,
            progress_notify: false,
            prev_kv: self.prev_kv,
            watch_id: WATCH_ID,
        };
        let (req_tx, req_rx) = mpsc::channel(2);
        // etcd sends the stream's headers with its first message: the
        // create request must be queued before the call.
        let _ = req_tx
            .send(pb::WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await;
        let mut client =
            WatchClient::new(channel).max_decoding_message_size(crate::client::MAX_MESSAGE_BYTES);
        let bound = self.etcd.options().rpc_timeout;
        let opened = tokio::select! {
            _ = &mut self.cancel => return Ended::Done(false),
            r = timeout(bound, client.watch(ReceiverStream::new(req_rx))) => r,
        };
        let mut responses = match opened {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => return self.failed(Error::from_status(status, 0, 0)).await,
            Err(_) => return Ended::Broken(format!("no answer within {bound:?}")),
        };
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut self.cancel => return Ended::Done(Self::cancel(&req_tx, &mut responses, bound).await),
                _ = self.tx.closed() => return Ended::Done(false),
                m = responses.message() => m,
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                Ok(None) => return Ended::Broken("watch stream closed by etcd".into()),
                Err(status) => return self.failed(Error::from_status(status, 0, 0)).await,
            };
            if resp.created {
                *backoff = Duration::from_millis(100);
                if self.next_revision == 0 {
                    let now = resp.header.as_ref().map_or(0, |h| h.revision);
                    self.next_revision = now + 1;
                }
            }
            if resp.compact_revision > 0 {
                let e = Error::Compacted {
                    revision: self.next_revision,
                    compact_revision: Some(resp.compact_revision),
                };
                return self.fail(e).await;
            }
            if resp.canceled {
                let reason = if resp.cancel_reason.is_empty() {
                    "no reason given".to_string()
                } else {
                    resp.cancel_reason
                };
                return self.fail(Error::WatchCanceled(reason)).await;
            }
            let mut batch = Vec::with_capacity(resp.events.len());
            for event in resp.events {
                let Some(kv) = event.kv else { continue };
                let kind = match pb::EventType::try_from(event.r#type) {
                    Ok(pb::EventType::Delete) => EventKind::Delete,
                    _ => EventKind::Put,
                };
                self.next_revision = self.next_revision.max(kv.mod_revision + 1);
                batch.push(WatchEvent {
                    kind,
                    kv,
                    prev_kv: event.prev_kv,
                });
            }
            if !batch.is_empty() && self.tx.send(Ok(batch)).await.is_err() {
                return Ended::Done(false);
            }
        }
    }

    /// A stream error: transient ones reconnect, others end the watch.
    async fn failed(&mut self, e: Error) -> Ended {
        // A broken connection surfaces from tonic as Unavailable, or as
        // Unknown/Internal (an h2 error): reconnect. Anything else is final.
        let transport = matches!(
            e,
            Error::Rpc {
                code: tonic::Code::Unknown | tonic::Code::Internal,
                ..
            }
        );
        if e.is_retryable() || transport {
            Ended::Broken(e.to_string())
        } else {
            self.fail(e).await
        }
    }

    /// Ends the watch with `e` for the consumer.
    async fn fail(&mut self, e: Error) -> Ended {
        let _ = self.tx.send(Err(e)).await;
        Ended::Done(false)
    }

    /// Sends a cancel and waits for etcd's confirmation.
    async fn cancel(
        req_tx: &mpsc::Sender<pb::WatchRequest>,
        responses: &mut tonic::Streaming<pb::WatchResponse>,
        bound: Duration,
    ) -> bool {
        let cancel = pb::WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest {
                watch_id: WATCH_ID,
            })),
        };
        if req_tx.send(cancel).await.is_err() {
            return false;
        }
        let confirmed = async {
            while let Ok(Some(resp)) = responses.message().await {
                if resp.canceled && resp.watch_id == WATCH_ID {
                    return true;
                }
            }
            false
        };
        timeout(bound, confirmed).await.unwrap_or(false)
    }
}
