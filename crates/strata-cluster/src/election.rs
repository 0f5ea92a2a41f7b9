//! Master election, and fencing the master's writes.
//!
//! The master is whoever holds the key `/<cluster>/master`, attached to its
//! lease. A candidate campaigns with one txn: "if the key's create_revision
//! is 0 (it does not exist), put it with my lease". The winner's **term**
//! is the key's create_revision, the revision of that txn: terms only grow,
//! and no two masters ever have the same one. A candidate that loses
//! watches the key and tries again when it is deleted: when the master
//! resigns, or its lease expires or is revoked. The master learns that it
//! lost the role from its lease (reported the moment a renewal is refused
//! or the TTL passes without one) or from a watch of the key.
//!
//! # Leadership is not mutual exclusion
//!
//! Holding the key does not mean no one else acts as master. Jepsen's
//! analysis of etcd 3.4.3 (2020) shows it for etcd's own locks, and it
//! holds for any lease-based lock: a master paused past its TTL (a GC or VM
//! pause, SIGSTOP, a slow disk) loses its lease, another server wins, and
//! the paused one resumes still believing it leads. Between resuming and
//! noticing, it can send writes; a network delay does the same to writes
//! already in flight. Observing [`Leadership::lost`] shrinks that window
//! but cannot close it.
//!
//! So every write the master makes must be checked by whatever stores it,
//! against its term:
//!
//! - in etcd: a txn guarded by the compare "the master key's
//!   create_revision equals my term" ([`Leadership::guard`],
//!   [`Leadership::txn`]). etcd applies txns one at a time, so a deposed
//!   master's write fails in etcd itself: its key is gone, or was created
//!   again by the new master at a higher revision.
//! - elsewhere (the object store): the term, or an epoch derived from it,
//!   as a fencing token the storage layer checks (conditional writes).

use crate::client::Etcd;
use crate::error::{Error, Result};
use crate::lease::{Lease, LeaseLoss, LeaseStatus};
use crate::txn::{Cmp, Compare, Op, OpResponse, Txn, TxnResponse};
use crate::watch::{EventKind, WatchOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The master key of a cluster: `/<cluster>/master`.
pub fn master_key(cluster: &str) -> String {
    format!("/{cluster}/master")
}

/// Who is master, as etcd says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterInfo {
    /// The candidate id it campaigned with.
    pub id: String,
    /// Its term: the master key's create_revision.
    pub term: i64,
    /// Its lease.
    pub lease: i64,
}

/// The current master of `cluster`, if any.
pub async fn master(etcd: &Etcd, cluster: &str) -> Result<Option<MasterInfo>> {
    let kv = etcd.get(master_key(cluster).as_bytes()).await?;
    Ok(kv.map(|kv| MasterInfo {
        id: String::from_utf8_lossy(&kv.value).into_owned(),
        term: kv.create_revision,
        lease: kv.lease,
    }))
}

/// Why a master stopped being one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadershipLoss {
    /// Its lease was lost.
    Lease(LeaseLoss),
    /// The master key was deleted or re-created (by an operator, or after
    /// the lease expired in etcd before this process noticed).
    KeyGone,
    /// [`Leadership::resign`].
    Resigned,
}

/// Campaigns for master of `cluster` as `candidate`, with `lease` (usually
/// the server's membership lease). Returns once elected; waits, watching
/// the master key, while another candidate holds it. Fails with
/// [`Error::LeaseLost`] if the lease is lost meanwhile, and on etcd errors
/// that are not transient (transient ones are retried).
///
/// Dropping the future may leave the key created on `lease` (if the txn
/// went through): a later campaign with the same lease finds and resumes
/// that leadership; otherwise it lasts until the lease ends.
pub async fn campaign(
    etcd: &Etcd,
    cluster: &str,
    candidate: &str,
    lease: &Lease,
) -> Result<Leadership> {
    let key = master_key(cluster);
    let term = loop {
        if let LeaseStatus::Lost(reason) = lease.status() {
            return Err(Error::LeaseLost {
                id: lease.id().0,
                reason,
            });
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_bytes(), Cmp::Equal, 0)])
            .and_then([Op::put_with_lease(
                key.as_bytes(),
                candidate.as_bytes(),
                Some(lease.id()),
            )])
            .or_else([Op::get(key.as_bytes())]);
        let resp = match etcd.txn(txn).await {
            Ok(resp) => resp,
            Err(e) if e.is_retryable() => {
                tracing::warn!("campaign for {key}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if resp.succeeded {
            break resp.revision;
        }
        match resp.responses.first().and_then(|r| r.kvs().first()) {
            // Ours already: a retry after a lost answer, or a new campaign
            // on the lease of an abandoned one.
            Some(kv) if kv.lease == lease.id().0 => break kv.create_revision,
            Some(_) => wait_for_delete(etcd, &key, resp.revision + 1, lease).await?,
            None => {}
        }
    };
    Ok(Leadership::start(etcd, key, candidate, term, lease))
}

/// Waits until `key` is deleted at or after `from`, or the lease is lost.
async fn wait_for_delete(etcd: &Etcd, key: &str, from: i64, lease: &Lease) -> Result<()> {
    let opts = WatchOptions {
        start_revision: from,
        prev_kv: false,
    };
    let mut events = etcd.watch_key(key.as_bytes(), opts);
    loop {
        tokio::select! {
            reason = lease.lost() => {
                return Err(Error::LeaseLost { id: lease.id().0, reason });
            }
            event = events.next() => match event {
                Some(Ok(e)) if e.kind == EventKind::Delete => return Ok(()),
                Some(Ok(_)) => {}
                // Compacted or ended: the caller's txn looks again.
                Some(Err(_)) | None => return Ok(()),
            }
        }
    }
}

/// This process's term as master.
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    etcd: Etcd,
    key: String,
    candidate: String,
    term: i64,
    status: watch::Sender<Option<LeadershipLoss>>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leadership {
    fn start(etcd: &Etcd, key: String, candidate: &str, term: i64, lease: &Lease) -> Leadership {
        let (status, _) = watch::channel(None);
        let task = tokio::spawn(monitor(
            etcd.clone(),
            key.clone(),
            term,
            lease.clone(),
            status.clone(),
        ));
        Leadership {
            inner: Arc::new(Inner {
                etcd: etcd.clone(),
                key,
                candidate: candidate.to_string(),
                term,
                status,
                task,
            }),
        }
    }

    /// The term: the master key's create_revision. Use it as the fencing
    /// token of everything the master writes.
    pub fn term(&self) -> i64 {
        self.inner.term
    }

    /// The id this master campaigned with.
    pub fn candidate(&self) -> &str {
        &self.inner.candidate
    }

    /// Whether this process still believes it is master. A belief only:
    /// see the module docs.
    pub fn is_leader(&self) -> bool {
        self.inner.status.borrow().is_none()
    }

    /// Waits until the leadership is lost, and says why.
    pub async fn lost(&self) -> LeadershipLoss {
        let mut rx = self.inner.status.subscribe();
        match rx.wait_for(Option::is_some).await.map(|s| *s) {
            Ok(Some(why)) => why,
            _ => LeadershipLoss::KeyGone,
        }
    }

    /// `txn` with the added compare "master key's create_revision == my
    /// term": it applies only while this term lasts.
    pub fn guard(&self, txn: Txn) -> Txn {
        let key = self.inner.key.as_bytes();
        txn.when([Compare::create_revision(key, Cmp::Equal, self.inner.term)])
    }

    /// Runs `txn` guarded by this term. Fails with [`Error::NotLeader`] if
    /// the term is over in etcd (and then marks the leadership lost);
    /// otherwise returns the txn's response (`succeeded` false: one of
    /// `txn`'s own compares failed).
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let key = self.inner.key.as_bytes();
        let guarded = self.guard(txn).or_else([Op::get(key)]);
        let mut resp = self.inner.etcd.txn(guarded).await?;
        if resp.succeeded {
            return Ok(resp);
        }
        let current = match resp.responses.pop() {
            Some(OpResponse::Get(kvs)) => kvs.first().map_or(0, |kv| kv.create_revision),
            _ => return Err(Error::Protocol("guarded txn lost its get".into())),
        };
        if current != self.inner.term {
            lose(&self.inner.status, LeadershipLoss::KeyGone);
            return Err(Error::NotLeader {
                term: self.inner.term,
                current,
            });
        }
        Ok(resp)
    }

    /// Gives up the role: deletes the master key if this term still holds
    /// it, so a waiting candidate takes over at once. The lease is left
    /// alone (it is usually the server's membership lease).
    pub async fn resign(self) -> Result<()> {
        lose(&self.inner.status, LeadershipLoss::Resigned);
        let key = self.inner.key.as_bytes();
        let txn = Txn::new()
            .when([Compare::create_revision(key, Cmp::Equal, self.inner.term)])
            .and_then([Op::delete(key)]);
        self.inner.etcd.txn(txn).await?;
        Ok(())
    }
}

fn lose(status: &watch::Sender<Option<LeadershipLoss>>, why: LeadershipLoss) {
    status.send_if_modified(|s| {
        let first = s.is_none();
        if first {
            *s = Some(why);
        }
        first
    });
}

/// Marks the leadership lost when the lease is, or when the master key is
/// deleted or no longer of this term.
async fn monitor(
    etcd: Etcd,
    key: String,
    term: i64,
    lease: Lease,
    status: watch::Sender<Option<LeadershipLoss>>,
) {
    let mut from = term + 1;
    loop {
        let opts = WatchOptions {
            start_revision: from,
            prev_kv: false,
        };
        let mut events = etcd.watch_key(key.as_bytes(), opts);
        let gone = loop {
            tokio::select! {
                reason = lease.lost() => return lose(&status, LeadershipLoss::Lease(reason)),
                event = events.next() => match event {
                    Some(Ok(e)) => {
                        from = e.revision() + 1;
                        if e.kind == EventKind::Delete || e.kv.create_revision != term {
                            break true;
                        }
                    }
                    // Compacted or ended: check the key itself, then watch
                    // again from the revision read.
                    Some(Err(_)) | None => break false,
                }
            }
        };
        if gone {
            return lose(&status, LeadershipLoss::KeyGone);
        }
        match etcd.get_with_revision(key.as_bytes()).await {
            Ok((kv, revision)) => {
                if kv.is_none_or(|kv| kv.create_revision != term) {
                    return lose(&status, LeadershipLoss::KeyGone);
                }
                from = revision + 1;
            }
            Err(e) => {
                tracing::warn!("master key check failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
