//! Routing a request's part to its tablet's owner, and recognising a part
//! forwarded here (docs/cluster.md, "Routing").

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::tablet_map::TabletRecord;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::host::Hosted;
use super::view::Placement;
use super::Cluster;
use crate::convert::invalid;

/// The header naming the tablet (`<id>.<epoch>`) a forwarded part is for.
pub const TABLET_HEADER: &str = "x-strata-tablet";

/// How an owner that does not serve a tablet starts its UNAVAILABLE.
const NOT_SERVED: &str = "not served here: ";

/// How long a request waits for a tablet to be served again (a move, a
/// failover, a new table's first assignment) before it answers
/// UNAVAILABLE.
pub const ROUTE_WAIT: Duration = Duration::from_secs(20);

/// The longest single wait for the map to change before routing again.
pub const ROUTE_POLL: Duration = Duration::from_millis(100);

pub(crate) fn not_served(why: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("{NOT_SERVED}{why}"))
}

pub(crate) fn is_not_served(s: &Status) -> bool {
    s.code() == tonic::Code::Unavailable && s.message().starts_with(NOT_SERVED)
}

/// Whether a forwarded call failed before the owner could have seen it:
/// the connection was refused (the owner's process is gone). Safe to
/// send again elsewhere, even a write.
pub(crate) fn never_sent(s: &Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// Whether a forwarded call failed in transport (the owner's process
/// died or stopped answering mid-call): the client library's own status
/// for it carries the transport error as its source. Its outcome is
/// unknown.
pub(crate) fn transport_failed(s: &Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
    ) && std::error::Error::source(s).is_some()
}

/// What a client sees of a forwarded call's transport failure: a read is
/// routed again; a write's outcome is unknown, and UNAVAILABLE (which
/// clients retry when the write is idempotent) says so rather than
/// UNKNOWN.
pub(crate) fn unknown_outcome(s: Status) -> Status {
    if transport_failed(&s) && s.code() != tonic::Code::Unavailable {
        Status::unavailable(format!(
            "the tablet's server failed during the request ({}); it may or may not have been applied",
            s.message()
        ))
    } else {
        s
    }
}

/// Where one part of a request goes.
pub(crate) enum Target {
    /// A tablet this server serves.
    Local(Arc<Hosted>),
    /// Another server's, at `addr`, with `tablet` (`<id>.<epoch>`) for the
    /// header.
    Remote { addr: String, tablet: String },
}

impl Target {
    /// The id of the tablet this part goes to.
    pub(crate) fn tablet_id(&self) -> Option<u64> {
        match self {
            Target::Local(h) => Some(h.record.id),
            Target::Remote { tablet, .. } => tablet.split_once('.')?.0.parse().ok(),
        }
    }
}

impl Cluster {
    /// The tablet a forwarded part names, if the request is one: served
    /// here at that epoch, with the lease held, or UNAVAILABLE.
    pub(crate) fn hosted_for(&self, md: &MetadataMap) -> Result<Option<Arc<Hosted>>, Status> {
        let Some(v) = md.get(TABLET_HEADER) else {
            return Ok(None);
        };
        let parsed = v.to_str().ok().and_then(|s| {
            let (id, epoch) = s.split_once('.')?;
            Some((id.parse::<u64>().ok()?, epoch.parse::<u64>().ok()?))
        });
        let Some((id, epoch)) = parsed else {
            return Err(invalid(format!("bad {TABLET_HEADER} header")));
        };
        if !self.view.serving() {
            return Err(not_served("this server's lease is not held"));
        }
        match self.host.get(id) {
            Some(h) if h.record.epoch == epoch => {
                h.requests.fetch_add(1, Ordering::Relaxed);
                Ok(Some(h))
            }
            _ => Err(not_served(format!("tablet {id} at epoch {epoch}"))),
        }
    }

    /// Where tablet `t` is served, seen from here.
    pub(crate) fn target(&self, t: &TabletRecord) -> Result<Target, Status> {
        match self.view.placement(t) {
            Placement::Unavailable(why) => Err(not_served(why)),
            Placement::Serving { owner, addr } => {
                if !self.view.is_me(&owner) {
                    return Ok(Target::Remote {
                        addr,
                        tablet: format!("{}.{}", t.id, t.epoch),
                    });
                }
                if !self.view.serving() {
                    return Err(not_served("this server's lease is not held"));
                }
                match self.host.get(t.id) {
                    Some(h) if h.record.epoch == t.epoch => {
                        h.requests.fetch_add(1, Ordering::Relaxed);
                        Ok(Target::Local(h))
                    }
                    _ => Err(not_served(format!("tablet {} is still opening", t.id))),
                }
            }
        }
    }

    /// The tablet of `table` holding `row`, after checking the table
    /// exists.
    pub(crate) async fn route(&self, table: &str, row: &[u8]) -> Result<TabletRecord, Status> {
        self.ensure_table(table).await?;
        self.view
            .map()
            .route(table, row)
            .cloned()
            .ok_or_else(|| not_served(format!("no tablet of {table} holds the row yet")))
    }

    /// Calls `call` once on the owner of `row`'s tablet, as the view has
    /// it now.
    pub(crate) async fn attempt<T, F, Fut>(
        &self,
        table: &str,
        row: &[u8],
        call: F,
    ) -> Result<T, Status>
    where
        F: FnOnce(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let t = self.route(table, row).await?;
        call(self.target(&t)?).await
    }

    /// Calls `call` on the owner of `row`'s tablet, and again while the
    /// owner does not serve it (and, if `idempotent`, on any
    /// UNAVAILABLE), for up to `ROUTE_WAIT`.
    pub(crate) async fn routed<T, F, Fut>(
        &self,
        table: &str,
        row: &[u8],
        idempotent: bool,
        mut call: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + ROUTE_WAIT;
        loop {
            let err = match self.attempt(table, row, &mut call).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let now = Instant::now();
            if !retryable(&err, idempotent) || now >= deadline {
                return Err(unknown_outcome(err));
            }
            self.view.changed(ROUTE_POLL.min(deadline - now)).await;
        }
    }
}

impl Cluster {
    /// [`Cluster::routed`] for an idempotent call, also returning the end
    /// row of the tablet it reached (None: the table's end). Walking a
    /// table from each such end to the next covers it whole, even when a
    /// tablet splits meanwhile: a tablet id's rows never change (a split
    /// makes new ids), so the end is the map's for that id.
    pub(crate) async fn routed_to_end<T, F, Fut>(
        &self,
        table: &str,
        row: &[u8],
        call: F,
    ) -> Result<(T, Option<Vec<u8>>), Status>
    where
        F: Fn(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        self.routed(table, row, true, |target| {
            let end = target
                .tablet_id()
                .and_then(|id| self.view.map().get(id).map(|t| t.end.clone()));
            let call = &call;
            async move {
                let end = end.ok_or_else(|| not_served("the tablet left the map"))?;
                Ok((call(target).await?, end))
            }
        })
        .await
    }
}

/// Whether a failed attempt may be made again: the owner did not serve
/// the tablet, or the call was never sent; or, for an idempotent call,
/// any UNAVAILABLE or transport failure.
pub(crate) fn retryable(err: &Status, idempotent: bool) -> bool {
    is_not_served(err)
        || never_sent(err)
        || (idempotent && (err.code() == tonic::Code::Unavailable || transport_failed(err)))
}
