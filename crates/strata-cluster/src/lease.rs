//! Leases, and [`Lease`]: one kept alive by a background task.
//!
//! The task renews the lease every TTL/3 over a `LeaseKeepAlive` stream
//! and tracks a local deadline: the time the last successful renewal was
//! *sent* plus the TTL etcd granted then. etcd counts the TTL from when
//! it handles the renewal, which is later, so while the local deadline has
//! not passed etcd still holds the lease (clock rates aside). The lease is
//! reported lost, through a `tokio::sync::watch` channel, the moment:
//!
//! - etcd answers a renewal saying the lease no longer exists
//!   ([`LeaseLoss::Expired`]: it expired there, or someone revoked it), or
//! - the local deadline passes without a successful renewal
//!   ([`LeaseLoss::Deadline`]: etcd unreachable or slow, or this process
//!   was paused); a renewal that fails for a transient reason (a broken
//!   stream, a timeout) is retried on the next endpoint until then.
//!
//! Loss is final: a lost lease is never reported alive again, even if a
//! late renewal would have succeeded. Whoever depends on the lease (a
//! tablet server's liveness, the master's term) must stop acting on it as
//! soon as loss is reported, and must still not rely on that alone (see
//! [`crate::election`] on fencing).

use crate::client::{Ctx, Etcd, LeaseId};
use crate::error::{Error, Result};
use crate::pb::{self, lease_client::LeaseClient};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Why a kept-alive lease was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseLoss {
    /// etcd said the lease does not exist (expired or revoked there).
    Expired,
    /// The TTL passed without a successful renewal.
    Deadline,
    /// Revoked through [`Lease::revoke`].
    Revoked,
}

impl std::fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaseLoss::Expired => "etcd says it expired or was revoked",
            LeaseLoss::Deadline => "no renewal succeeded within its TTL",
            LeaseLoss::Revoked => "revoked by this process",
        })
    }
}

/// The state of a kept-alive lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    Alive,
    Lost(LeaseLoss),
}

/// A lease kept alive by a background task until lost, revoked, or every
/// clone of this handle is dropped (then renewals stop and etcd expires the
/// lease after its TTL).
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.inner.id)
            .field("ttl", &self.inner.ttl)
            .field("status", &self.status())
            .finish()
    }
}

struct Inner {
    id: LeaseId,
    ttl: Duration,
    etcd: Etcd,
    status: watch::Sender<LeaseStatus>,
    /// When the lease ends unless renewed (as of the last renewal).
    deadline: Arc<parking_lot::Mutex<std::time::Instant>>,
    renew: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Lease {
    /// Grants a lease of `ttl` (rounded up to whole seconds; etcd may raise
    /// a small one) and keeps it alive.
    pub async fn grant(etcd: &Etcd, ttl: Duration) -> Result<Lease> {
        let sent = Instant::now();
        let (id, granted) = etcd.lease_grant(ttl).await?;
        Ok(Lease::keep(etcd, id, granted, sent))
    }

    /// Keeps alive a lease granted at `sent` (when the grant was sent) with
    /// TTL `ttl`.
    fn keep(etcd: &Etcd, id: LeaseId, ttl: Duration, sent: Instant) -> Lease {
        let (status, _) = watch::channel(LeaseStatus::Alive);
        let (renew, renew_rx) = watch::channel(true);
        let deadline = Arc::new(parking_lot::Mutex::new((sent + ttl).into_std()));
        let keeper = Keeper {
            etcd: etcd.clone(),
            id,
            status: status.clone(),
            deadline: deadline.clone(),
            renew: renew_rx,
            stream: None,
        };
        let task = tokio::spawn(keeper.run(sent + ttl, ttl));
        Lease {
            inner: Arc::new(Inner {
                id,
                ttl,
                etcd: etcd.clone(),
                status,
                deadline,
                renew,
                task,
            }),
        }
    }

    /// The lease's id, to attach keys to it.
    pub fn id(&self) -> LeaseId {
        self.inner.id
    }

    /// The TTL etcd granted.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The current status.
    pub fn status(&self) -> LeaseStatus {
        *self.inner.status.borrow()
    }

    /// Whether the lease is still held.
    pub fn is_alive(&self) -> bool {
        self.status() == LeaseStatus::Alive
    }

    /// Whether the lease is held at this instant: not lost, and its
    /// deadline (as of the last renewal) not passed. Unlike
    /// [`Lease::is_alive`] this needs no task to have run: a process
    /// resumed after a pause (SIGSTOP, a long GC) sees at once that its
    /// lease may have ended, before the keeper wakes up to report it.
    pub fn held_now(&self) -> bool {
        self.is_alive() && std::time::Instant::now() < *self.inner.deadline.lock()
    }

    /// A receiver that sees every change of status (at most one: to lost).
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.inner.status.subscribe()
    }

    /// Waits until the lease is lost, and says why.
    pub async fn lost(&self) -> LeaseLoss {
        let mut rx = self.subscribe();
        let result = rx.wait_for(|s| *s != LeaseStatus::Alive).await;
        match result.map(|s| *s) {
            Ok(LeaseStatus::Lost(why)) => why,
            // The sender lives in `self`: unreachable; be conservative.
            _ => LeaseLoss::Deadline,
        }
    }

    /// Stops renewing without revoking: etcd expires the lease after its
    /// TTL, and the handle reports [`LeaseLoss::Deadline`] when the local
    /// deadline passes. What a process that stops responding looks like.
    pub fn stop_renewing(&self) {
        self.inner.renew.send_replace(false);
    }

    /// Revokes the lease (etcd deletes the keys attached to it) and stops
    /// renewing it. Reports [`LeaseLoss::Revoked`] unless already lost.
    pub async fn revoke(&self) -> Result<()> {
        self.stop_renewing();
        lose(&self.inner.status, LeaseLoss::Revoked);
        match self.inner.etcd.lease_revoke(self.inner.id).await {
            Ok(()) | Err(Error::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Marks the lease lost, unless it already is (the first loss stands).
fn lose(status: &watch::Sender<LeaseStatus>, why: LeaseLoss) {
    status.send_if_modified(|s| {
        let alive = *s == LeaseStatus::Alive;
        if alive {
            *s = LeaseStatus::Lost(why);
        }
        alive
    });
}

/// The keep-alive stream: requests in, responses out, and its endpoint.
type KeepAliveStream = (
    mpsc::Sender<pb::LeaseKeepAliveRequest>,
    tonic::Streaming<pb::LeaseKeepAliveResponse>,
    usize,
);

struct Keeper {
    etcd: Etcd,
    id: LeaseId,
    status: watch::Sender<LeaseStatus>,
    deadline: Arc<parking_lot::Mutex<std::time::Instant>>,
    renew: watch::Receiver<bool>,
    stream: Option<KeepAliveStream>,
}

impl Keeper {
    async fn run(mut self, mut deadline: Instant, ttl: Duration) {
        let mut interval = (ttl / 3).max(Duration::from_millis(100));
        let mut next = Instant::now() + interval;
        loop {
            let renewing = *self.renew.borrow();
            tokio::select! {
                _ = sleep_until(deadline) => return lose(&self.status, LeaseLoss::Deadline),
                _ = sleep_until(next), if renewing => {}
                changed = self.renew.changed() => {
                    if changed.is_err() {
                        return; // the handle is gone
                    }
                    self.stream = None;
                    continue;
                }
            }
            if *self.status.borrow() != LeaseStatus::Alive {
                return;
            }
            let sent = Instant::now();
            let bound = self.etcd.options().rpc_timeout;
            let outcome = tokio::select! {
                _ = sleep_until(deadline) => return lose(&self.status, LeaseLoss::Deadline),
                r = timeout(bound, self.renew_once()) => r,
            };
            match outcome {
                Ok(Ok(secs)) if secs > 0 => {
                    let granted = Duration::from_secs(secs.unsigned_abs());
                    deadline = deadline.max(sent + granted);
                    *self.deadline.lock() = deadline.into_std();
                    interval = (granted / 3).max(Duration::from_millis(100));
                    next = sent + interval;
                }
                Ok(Ok(_)) | Ok(Err(Error::LeaseNotFound(_))) => {
                    return lose(&self.status, LeaseLoss::Expired);
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {bound:?}"),
                    };
                    tracing::warn!(lease = %self.id, "lease renewal failed, retrying: {why}");
                    if let Some((_, _, endpoint)) = self.stream.take() {
                        self.etcd.endpoint_failed(endpoint);
                    }
                    next = Instant::now() + interval.min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Sends one renewal and waits for its answer: the new TTL in seconds
    /// (0 or less: the lease is gone).
    async fn renew_once(&mut self) -> Result<i64> {
        let req = pb::LeaseKeepAliveRequest { id: self.id.0 };
        if let Some((tx, _, _)) = &self.stream {
            if tx.send(req.clone()).await.is_err() {
                self.stream = None;
            }
        }
        if self.stream.is_none() {
            // etcd answers the stream's headers with its first message, so
            // the first request goes in before the call.
            let (tx, rx) = mpsc::channel(4);
            let _ = tx.send(req).await;
            let (endpoint, channel) = self.etcd.channel();
            let call = lease(channel)
                .lease_keep_alive(ReceiverStream::new(rx))
                .await;
            let responses = match call {
                Ok(resp) => resp.into_inner(),
                Err(status) => {
                    if status.code() == tonic::Code::Unavailable {
                        self.etcd.endpoint_failed(endpoint);
                    }
                    return Err(Error::from_status(status, self.id.0, 0));
                }
            };
            self.stream = Some((tx, responses, endpoint));
        }
        let Some((_, responses, _)) = &mut self.stream else {
            return Err(Error::Unavailable("keep-alive stream not open".into()));
        };
        match responses.message().await {
            Ok(Some(resp)) => Ok(resp.ttl),
            Ok(None) => Err(Error::Unavailable("keep-alive stream closed".into())),
            Err(status) => Err(Error::from_status(status, self.id.0, 0)),
        }
    }
}

fn lease(channel: Channel) -> LeaseClient<Channel> {
    LeaseClient::new(channel).max_decoding_message_size(crate::client::MAX_MESSAGE_BYTES)
}

/// Whole seconds, rounded up, at least 1.
fn whole_seconds(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

impl Etcd {
    /// Grants a lease of `ttl` (rounded up to whole seconds); returns its id
    /// and the TTL etcd granted (it raises TTLs below its minimum, about
    /// 1.5 × the election timeout). Nothing keeps it alive: see
    /// [`Lease::grant`].
    pub async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        let req = pb::LeaseGrantRequest {
            ttl: whole_seconds(ttl),
            id: 0,
        };
        // Not retried: a lost answer would leave an unknown lease (harmless,
        // it expires, but the caller should know the call failed).
        let resp = self
            .unary(
                "lease grant",
                false,
                Ctx::default(),
                req,
                |ch, r| async move { lease(ch).lease_grant(r).await },
            )
            .await?;
        if !resp.error.is_empty() {
            return Err(Error::InvalidRequest(resp.error));
        }
        let secs = u64::try_from(resp.ttl).unwrap_or(0);
        Ok((LeaseId(resp.id), Duration::from_secs(secs)))
    }

    /// Revokes a lease: etcd deletes every key attached to it.
    pub async fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        let ctx = Ctx {
            lease: id.0,
            ..Ctx::default()
        };
        let req = pb::LeaseRevokeRequest { id: id.0 };
        self.unary("lease revoke", true, ctx, req, |ch, r| async move {
            lease(ch).lease_revoke(r).await
        })
        .await?;
        Ok(())
    }

    /// The lease's remaining time to live, or `None` if it no longer exists.
    pub async fn lease_time_to_live(&self, id: LeaseId) -> Result<Option<Duration>> {
        let ctx = Ctx {
            lease: id.0,
            ..Ctx::default()
        };
        let req = pb::LeaseTimeToLiveRequest {
            id: id.0,
            keys: false,
        };
        let resp = self
            .unary("lease ttl", true, ctx, req, |ch, r| async move {
                lease(ch).lease_time_to_live(r).await
            })
            .await;
        match resp {
            Ok(r) if r.ttl >= 0 => Ok(Some(Duration::from_secs(r.ttl.unsigned_abs()))),
            Ok(_) | Err(Error::LeaseNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
