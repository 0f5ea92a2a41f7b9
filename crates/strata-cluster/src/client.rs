//! [`Etcd`]: the connection to an etcd cluster and its key-value calls.
//!
//! One lazy gRPC channel per endpoint; calls go to a preferred endpoint and
//! move on to the next one when it is unreachable (reads, lease calls and
//! streams are retried there within the call's bound; writes are not
//! retried: the caller decides, see [`Error::is_retryable`]). Every unary
//! call is bounded by [`EtcdOptions::rpc_timeout`], both as the gRPC
//! deadline sent to etcd and as a local timeout.

use crate::error::{Error, Result};
use crate::pb::{self, k_v_client::KVClient as KvClient};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

pub use crate::pb::KeyValue;

/// Largest message accepted from etcd (tonic's default is 4 MiB; prefix
/// listings are paged well below this).
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Keys per page of a prefix listing.
const PAGE: i64 = 1000;

/// Bounds of the client's calls.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Bound of every unary RPC, retries across endpoints included.
    pub rpc_timeout: Duration,
    /// Bound of a TCP + HTTP/2 connect to one endpoint.
    pub connect_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            rpc_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// A lease's id, as etcd assigns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The keys of a prefix at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// In key order.
    pub kvs: Vec<KeyValue>,
    /// The store's revision the listing was read at: a watch from
    /// `revision + 1` sees every change after it.
    pub revision: i64,
}

/// A handle on an etcd cluster; cheap to clone (clones share the channels).
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.inner.endpoints)
            .field("options", &self.inner.opts)
            .finish()
    }
}

struct Inner {
    endpoints: Vec<String>,
    channels: Vec<Channel>,
    preferred: AtomicUsize,
    opts: EtcdOptions,
}

/// What an error refers to, to name it precisely.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ctx {
    pub lease: i64,
    pub revision: i64,
}

impl Etcd {
    /// Connects to `endpoints`, a comma-separated list of `http://host:port`
    /// (the scheme may be left out), as `--etcd` takes it, and checks that
    /// etcd answers (a linearizable read, so it has a leader).
    pub async fn connect(endpoints: &str) -> Result<Etcd> {
        Etcd::connect_with(endpoints, EtcdOptions::default()).await
    }

    /// [`Etcd::connect`] with explicit bounds.
    pub async fn connect_with(endpoints: &str, opts: EtcdOptions) -> Result<Etcd> {
        let etcd = Etcd::lazy(endpoints, opts)?;
        etcd.get(b"\0").await?;
        Ok(etcd)
    }

    /// Like [`Etcd::connect_with`] but connects on first use.
    pub fn lazy(endpoints: &str, opts: EtcdOptions) -> Result<Etcd> {
        let mut urls = Vec::new();
        let mut channels = Vec::new();
        for raw in endpoints
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let bad = |reason: &str| Error::InvalidEndpoint {
                endpoint: raw.to_string(),
                reason: reason.to_string(),
            };
            let url = if raw.contains("://") {
                raw.to_string()
            } else {
                format!("http://{raw}")
            };
            if !url.starts_with("http://") {
                return Err(bad("only http:// is supported (no TLS)"));
            }
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| bad(&e.to_string()))?
                .connect_timeout(opts.connect_timeout)
                .tcp_nodelay(true)
                // etcd's default --grpc-keepalive-min-time is 5 s: ping no
                // more often, and only while streams are open.
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            urls.push(url);
            channels.push(endpoint.connect_lazy());
        }
        if urls.is_empty() {
            return Err(Error::InvalidEndpoint {
                endpoint: endpoints.to_string(),
                reason: "no endpoint given".into(),
            });
        }
        Ok(Etcd {
            inner: Arc::new(Inner {
                endpoints: urls,
                channels,
                preferred: AtomicUsize::new(0),
                opts,
            }),
        })
    }

    /// The endpoints, as URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The client's bounds.
    pub fn options(&self) -> &EtcdOptions {
        &self.inner.opts
    }

    /// The preferred endpoint's channel and its index.
    pub(crate) fn channel(&self) -> (usize, Channel) {
        let i = self.inner.preferred.load(Ordering::Relaxed) % self.inner.channels.len();
        (i, self.inner.channels[i].clone())
    }

    /// Endpoint `i` failed: prefer the next one (unless another caller
    /// already moved on).
    pub(crate) fn endpoint_failed(&self, i: usize) {
        let next = (i + 1) % self.inner.channels.len();
        let _ =
            self.inner
                .preferred
                .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// One unary RPC, bounded by the rpc timeout; tried on each endpoint in
    /// turn while they are unreachable when `retry` (idempotent calls).
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        what: &'static str,
        retry: bool,
        ctx: Ctx,
        req: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let after = self.inner.opts.rpc_timeout;
        let deadline = Instant::now() + after;
        let attempts = if retry { self.inner.channels.len() } else { 1 };
        let work = async {
            let mut last = None;
            for _ in 0..attempts {
                let (i, channel) = self.channel();
                let mut request = tonic::Request::new(req.clone());
                request.set_timeout(deadline.saturating_duration_since(Instant::now()));
                match call(channel, request).await {
                    Ok(resp) => return Ok(resp.into_inner()),
                    Err(status) if status.code() == tonic::Code::Unavailable => {
                        self.endpoint_failed(i);
                        last = Some(status);
                    }
                    Err(status) => return Err(Error::from_status(status, ctx.lease, ctx.revision)),
                }
            }
            let status = last.unwrap_or_else(|| tonic::Status::unavailable("no endpoint"));
            Err(Error::from_status(status, ctx.lease, ctx.revision))
        };
        match tokio::time::timeout(after, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { what, after }),
        }
    }

    async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse> {
        let ctx = Ctx {
            revision: req.revision,
            ..Ctx::default()
        };
        self.unary("range", true, ctx, req, |ch, r| async move {
            kv(ch).range(r).await
        })
        .await
    }

    /// The key's current value and revisions, if it exists.
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        Ok(self.get_with_revision(key).await?.0)
    }

    /// [`Etcd::get`], and the store's revision it was read at (a watch
    /// from `revision + 1` sees every later change of the key).
    pub async fn get_with_revision(&self, key: &[u8]) -> Result<(Option<KeyValue>, i64)> {
        let resp = self
            .range(pb::RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await?;
        let revision = header_revision(resp.header.as_ref())?;
        Ok((resp.kvs.into_iter().next(), revision))
    }

    /// Every key starting with `prefix`, read at one revision (paged, so
    /// any number of keys fits).
    pub async fn get_prefix(&self, prefix: &[u8]) -> Result<Listing> {
        self.get_prefix_at(prefix, 0).await
    }

    /// [`Etcd::get_prefix`] at an older `revision` (0: the newest);
    /// [`Error::Compacted`] if etcd no longer has it.
    pub async fn get_prefix_at(&self, prefix: &[u8], revision: i64) -> Result<Listing> {
        let end = pb::prefix_end(prefix);
        let mut listing = Listing {
            kvs: Vec::new(),
            revision,
        };
        let mut from = prefix.to_vec();
        loop {
            let resp = self
                .range(pb::RangeRequest {
                    key: from,
                    range_end: end.clone(),
                    limit: PAGE,
                    revision: listing.revision,
                    ..Default::default()
                })
                .await?;
            if listing.revision == 0 {
                listing.revision = header_revision(resp.header.as_ref())?;
            }
            let Some(last) = resp.kvs.last() else { break };
            from = last.key.clone();
            from.push(0);
            listing.kvs.extend(resp.kvs);
            if !resp.more {
                break;
            }
        }
        Ok(listing)
    }

    /// Puts `value` at `key`, attached to `lease` if given; returns the
    /// revision of the write.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<crate::LeaseId>,
    ) -> Result<i64> {
        let lease = lease.map_or(0, |l| l.0);
        let req = pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: false,
        };
        let ctx = Ctx {
            lease,
            ..Ctx::default()
        };
        let resp = self
            .unary("put", false, ctx, req, |ch, r| async move {
                kv(ch).put(r).await
            })
            .await?;
        header_revision(resp.header.as_ref())
    }

    /// Deletes `key`; returns how many keys were deleted (0 or 1).
    pub async fn delete(&self, key: &[u8]) -> Result<i64> {
        self.delete_range(key.to_vec(), Vec::new()).await
    }

    /// Deletes every key starting with `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &[u8]) -> Result<i64> {
        self.delete_range(prefix.to_vec(), pb::prefix_end(prefix))
            .await
    }

    async fn delete_range(&self, key: Vec<u8>, range_end: Vec<u8>) -> Result<i64> {
        let req = pb::DeleteRangeRequest {
            key,
            range_end,
            prev_kv: false,
        };
        let resp = self
            .unary("delete", false, Ctx::default(), req, |ch, r| async move {
                kv(ch).delete_range(r).await
            })
            .await?;
        Ok(resp.deleted)
    }

    /// Compacts etcd's history up to `revision`: reads and watches at older
    /// revisions fail with [`Error::Compacted`] from then on.
    pub async fn compact(&self, revision: i64) -> Result<()> {
        let req = pb::CompactionRequest {
            revision,
            physical: true,
        };
        let ctx = Ctx {
            revision,
            ..Ctx::default()
        };
        self.unary("compact", true, ctx, req, |ch, r| async move {
            kv(ch).compact(r).await
        })
        .await?;
        Ok(())
    }
}

/// A KV client on `channel`.
pub(crate) fn kv(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The revision of a response's header, which etcd always sends.
pub(crate) fn header_revision(header: Option<&pb::ResponseHeader>) -> Result<i64> {
    header
        .map(|h| h.revision)
        .ok_or_else(|| Error::Protocol("response without a header".into()))
}
