//! google.bigtable.v2.Bigtable on a cluster server (docs/cluster.md,
//! "Routing"): any server takes any request, cuts it by tablet with the
//! tablet map, and sends each part to the tablet's owner: this server's
//! own tablets directly, another server's over gRPC with the tablet and
//! its epoch in the `x-strata-tablet` header. A request carrying that
//! header is a forwarded part: it is served from the named tablet, at
//! that epoch, or refused with UNAVAILABLE "not served here", which the
//! forwarding server retries after its map changes (a tablet moving, a
//! server failing over). Clients see at most UNAVAILABLE, which they
//! retry.

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::codegen::BoxStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::host::Hosted;
use super::route::{
    not_served, retryable, transport_failed, unknown_outcome, Target, ROUTE_POLL, ROUTE_WAIT,
    TABLET_HEADER,
};
use super::rows::{covers, restrict, row_set_pb, tablet_bounds};
use super::Cluster;
use crate::convert::{self, invalid};
use crate::data::DataService;
use crate::data_pb as v2;
use crate::observe::TableMetrics;
use crate::pb::bigtable_server::Bigtable;
use std::collections::VecDeque;
use strata_cluster::tablet_map::{TabletMap, TabletRecord};
use strata_table::{RowBound, RowSet};

/// Responses buffered ahead of a ReadRows client.
const READ_AHEAD_RESPONSES: usize = 4;

/// The client's headers a forwarded part carries (the client library's
/// identity changes how rows are cut into chunks), and the tablet's.
fn forwarded<T>(msg: T, from: &MetadataMap, tablet: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(v) = from.get("x-goog-api-client") {
        req.metadata_mut().insert("x-goog-api-client", v.clone());
    }
    if let Some(t) = tablet.and_then(|t| t.parse().ok()) {
        req.metadata_mut().insert(TABLET_HEADER, t);
    }
    req
}

pub struct ClusterData {
    pub(crate) cluster: Arc<Cluster>,
    /// Per-table counters, when the server keeps metrics: a request
    /// counts on the server that applies it.
    pub(crate) tables: Option<Arc<TableMetrics>>,
    /// Where requests ran, counted on the server that applies them.
    pub(crate) paths: Option<Arc<crate::observe::RequestPaths>>,
}

impl ClusterData {
    /// A served tablet's own service, for a part already routed to it.
    fn local(&self, h: &Hosted) -> DataService {
        DataService {
            db: h.db.clone(),
            tables: self.tables.clone(),
            paths: self.paths.clone(),
        }
    }
}

fn check_row(h: &Hosted, row: &[u8]) -> Result<(), Status> {
    if h.record.contains(row) {
        Ok(())
    } else {
        Err(not_served(format!(
            "the row is not in tablet {}",
            h.record.id
        )))
    }
}

/// The tablets of `map` that now hold the rows of `gone` (a tablet that
/// split), each with its part of `part`, in the read's order.
fn pieces_of(
    map: &TabletMap,
    gone: &TabletRecord,
    part: &RowSet,
    reversed: bool,
) -> Vec<(TabletRecord, Option<RowSet>)> {
    let now: Vec<&TabletRecord> = map
        .tablets(&gone.table)
        .filter(|c| {
            gone.end.as_deref().is_none_or(|e| c.start.as_slice() < e)
                && c.end.as_deref().is_none_or(|e| e > gone.start.as_slice())
        })
        .collect();
    // Only a map that covers the gone tablet's rows whole (else: wait).
    if !covers(&now, &gone.start, gone.end.as_deref()) {
        return Vec::new();
    }
    let mut out: Vec<(TabletRecord, Option<RowSet>)> = now
        .into_iter()
        .filter_map(|c| {
            let (lo, hi) = tablet_bounds(&c.start, c.end.as_deref());
            Some((c.clone(), Some(restrict(part, &lo, &hi)?)))
        })
        .collect();
    if reversed {
        out.reverse();
    }
    out
}

/// Rows committed in a ReadRows response, and where the last one ended.
struct RowProgress {
    rows: u64,
    last_key: Option<Vec<u8>>,
    current: Vec<u8>,
    in_row: bool,
}

impl RowProgress {
    fn new() -> RowProgress {
        RowProgress {
            rows: 0,
            last_key: None,
            current: Vec::new(),
            in_row: false,
        }
    }

    fn see(&mut self, resp: &v2::ReadRowsResponse) {
        use v2::read_rows_response::cell_chunk::RowStatus;
        for c in &resp.chunks {
            if !c.row_key.is_empty() {
                self.current = c.row_key.clone();
            }
            match c.row_status {
                Some(RowStatus::CommitRow(true)) => {
                    self.rows += 1;
                    self.last_key = Some(self.current.clone());
                    self.in_row = false;
                }
                Some(RowStatus::ResetRow(true)) => self.in_row = false,
                _ => self.in_row = true,
            }
        }
    }
}

/// A single-row RPC (MutateRow, CheckAndMutateRow, ReadModifyWriteRow):
/// served here if it is a forwarded part, else sent to the owner of its
/// row's tablet; routed again only when it cannot have been applied.
macro_rules! single_row {
    ($self:ident, $request:ident, $method:ident) => {{
        if let Some(h) = $self.cluster.hosted_for($request.metadata())? {
            check_row(&h, &$request.get_ref().row_key)?;
            return $self.local(&h).$method($request).await;
        }
        let md = $request.metadata().clone();
        let r = $request.into_inner();
        crate::data::target(&r.table_name, &r.authorized_view_name, "")?;
        $self
            .cluster
            .routed(&r.table_name, &r.row_key, false, |target| {
                let sub = r.clone();
                let md = &md;
                async move {
                    match target {
                        Target::Local(h) => $self.local(&h).$method(forwarded(sub, md, None)).await,
                        Target::Remote { addr, tablet } => {
                            $self
                                .cluster
                                .pool
                                .data(&addr)?
                                .$method(forwarded(sub, md, Some(&tablet)))
                                .await
                        }
                    }
                }
            })
            .await
    }};
}

#[tonic::async_trait]
impl Bigtable for ClusterData {
    async fn read_rows(
        &self,
        request: Request<v2::ReadRowsRequest>,
    ) -> Result<Response<BoxStream<v2::ReadRowsResponse>>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            return self.local(&h).read_rows(request).await;
        }
        let md = request.metadata().clone();
        let r = request.into_inner();
        crate::data::target(
            &r.table_name,
            &r.authorized_view_name,
            &r.materialized_view_name,
        )?;
        if r.rows_limit < 0 {
            return Err(invalid(format!(
                "rows_limit must not be negative, got {}",
                r.rows_limit
            )));
        }
        let rows = convert::row_set(r.rows.as_ref())?;
        // The table's tablets, once the map covers all its rows (a new
        // table's records may not have arrived yet).
        let deadline = Instant::now() + ROUTE_WAIT;
        let all = loop {
            let all = self.cluster.tablets_of(&r.table_name).await?;
            if covers(&all.iter().collect::<Vec<_>>(), b"", None) {
                break all;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(not_served(format!(
                    "the tablets of {} are not all known yet",
                    r.table_name
                )));
            }
            self.cluster
                .view
                .changed(ROUTE_POLL.min(deadline - now))
                .await;
        };
        let mut tablets: VecDeque<(TabletRecord, Option<RowSet>)> =
            all.into_iter().map(|t| (t, None)).collect();
        if r.reversed {
            tablets.make_contiguous().reverse();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_RESPONSES);
        let me = ClusterData {
            cluster: self.cluster.clone(),
            tables: self.tables.clone(),
            paths: self.paths.clone(),
        };
        tokio::spawn(async move {
            let mut remaining = (r.rows_limit > 0).then_some(r.rows_limit as u64);
            'tablets: while let Some((t, part)) = tablets.pop_front() {
                if remaining == Some(0) {
                    return;
                }
                let (lo, hi) = tablet_bounds(&t.start, t.end.as_deref());
                let Some(mut part) = part.or_else(|| restrict(&rows, &lo, &hi)) else {
                    continue;
                };
                let deadline = Instant::now() + ROUTE_WAIT;
                loop {
                    // A tablet that split meanwhile: its children, in order.
                    let map = me.cluster.view.map();
                    if map.get(t.id).is_none() {
                        let pieces = pieces_of(&map, &t, &part, r.reversed);
                        if !pieces.is_empty() {
                            for p in pieces.into_iter().rev() {
                                tablets.push_front(p);
                            }
                            continue 'tablets;
                        }
                    }
                    let mut sub = r.clone();
                    sub.rows = Some(row_set_pb(&part));
                    sub.rows_limit = remaining.map_or(0, |n| n as i64);
                    sub.request_stats_view = 0;
                    let mut progress = RowProgress::new();
                    // The tablet as the map has it now (its owner changes
                    // in a move or a failover).
                    let now_t = map.get(t.id).cloned();
                    let target = match now_t {
                        Some(now_t) => me.cluster.target(&now_t),
                        None => Err(not_served(format!("tablet {} is gone", t.id))),
                    };
                    let stream: Result<BoxStream<v2::ReadRowsResponse>, Status> = match target {
                        Ok(Target::Local(h)) => me
                            .local(&h)
                            .read_rows(forwarded(sub, &md, None))
                            .await
                            .map(Response::into_inner),
                        Ok(Target::Remote { addr, tablet }) => match me.cluster.pool.data(&addr) {
                            Ok(mut client) => client
                                .read_rows(forwarded(sub, &md, Some(&tablet)))
                                .await
                                .map(|s| Box::pin(s.into_inner()) as BoxStream<_>),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    };
                    let err = match stream {
                        Ok(mut s) => loop {
                            match s.next().await {
                                None => break None,
                                Some(Ok(resp)) => {
                                    progress.see(&resp);
                                    if tx.send(Ok(resp)).await.is_err() {
                                        return; // the client went away
                                    }
                                }
                                Some(Err(e)) => break Some(e),
                            }
                        },
                        Err(e) => Some(e),
                    };
                    if let Some(n) = remaining.as_mut() {
                        *n = n.saturating_sub(progress.rows);
                    }
                    let Some(err) = err else { break };
                    let retry = err.code() == tonic::Code::Unavailable || transport_failed(&err);
                    let now = Instant::now();
                    if !retry || now >= deadline {
                        let _ = tx.send(Err(unknown_outcome(err))).await;
                        return;
                    }
                    // Resume after the last row delivered; a row cut off
                    // half-way is dropped by the client first.
                    if progress.in_row {
                        let reset = v2::ReadRowsResponse {
                            chunks: vec![v2::read_rows_response::CellChunk {
                                row_status: Some(
                                    v2::read_rows_response::cell_chunk::RowStatus::ResetRow(true),
                                ),
                                ..Default::default()
                            }],
                            ..Default::default()
                        };
                        if tx.send(Ok(reset)).await.is_err() {
                            return;
                        }
                    }
                    if let Some(last) = progress.last_key {
                        let rest = if r.reversed {
                            restrict(&part, &RowBound::Unbounded, &RowBound::Excluded(last))
                        } else {
                            restrict(&part, &RowBound::Excluded(last), &RowBound::Unbounded)
                        };
                        match rest {
                            Some(rest) => part = rest,
                            None => break,
                        }
                    }
                    if remaining == Some(0) {
                        return;
                    }
                    me.cluster
                        .view
                        .changed(ROUTE_POLL.min(deadline - now))
                        .await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn sample_row_keys(
        &self,
        request: Request<v2::SampleRowKeysRequest>,
    ) -> Result<Response<BoxStream<v2::SampleRowKeysResponse>>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            return self.local(&h).sample_row_keys(request).await;
        }
        let md = request.metadata().clone();
        let r = request.into_inner();
        crate::data::target(
            &r.table_name,
            &r.authorized_view_name,
            &r.materialized_view_name,
        )?;
        self.cluster.ensure_table(&r.table_name).await?;
        // Tablet by tablet in row order, each next one the tablet holding
        // the row where the last ended (`Cluster::routed_to_end`).
        let mut out = Vec::new();
        let mut base = 0i64;
        let mut start: Vec<u8> = Vec::new();
        loop {
            let (samples, end) = self
                .cluster
                .routed_to_end(&r.table_name, &start, |target| {
                    let sub = r.clone();
                    let md = &md;
                    async move {
                        let mut s: BoxStream<v2::SampleRowKeysResponse> = match target {
                            Target::Local(h) => self
                                .local(&h)
                                .sample_row_keys(forwarded(sub, md, None))
                                .await?
                                .into_inner(),
                            Target::Remote { addr, tablet } => Box::pin(
                                self.cluster
                                    .pool
                                    .data(&addr)?
                                    .sample_row_keys(forwarded(sub, md, Some(&tablet)))
                                    .await?
                                    .into_inner(),
                            ),
                        };
                        let mut v = Vec::new();
                        while let Some(x) = s.next().await {
                            v.push(x?);
                        }
                        Ok(v)
                    }
                })
                .await?;
            for s in samples {
                if s.row_key.is_empty() {
                    // The tablet's end: its size.
                    let at = base + s.offset_bytes;
                    out.push(Ok(v2::SampleRowKeysResponse {
                        row_key: end.clone().unwrap_or_default(),
                        offset_bytes: at,
                    }));
                    base = at;
                } else if s.row_key > start && end.as_ref().is_none_or(|e| s.row_key < *e) {
                    out.push(Ok(v2::SampleRowKeysResponse {
                        row_key: s.row_key,
                        offset_bytes: base + s.offset_bytes,
                    }));
                }
            }
            match end {
                Some(end) => start = end,
                None => break,
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(out))))
    }

    async fn mutate_row(
        &self,
        request: Request<v2::MutateRowRequest>,
    ) -> Result<Response<v2::MutateRowResponse>, Status> {
        single_row!(self, request, mutate_row)
    }

    async fn mutate_rows(
        &self,
        request: Request<v2::MutateRowsRequest>,
    ) -> Result<Response<BoxStream<v2::MutateRowsResponse>>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            for e in &request.get_ref().entries {
                check_row(&h, &e.row_key)?;
            }
            return self.local(&h).mutate_rows(request).await;
        }
        let md = request.metadata().clone();
        let r = request.into_inner();
        crate::data::target(&r.table_name, &r.authorized_view_name, "")?;
        if r.entries.is_empty() {
            return Err(invalid("no entries provided"));
        }
        self.cluster.ensure_table(&r.table_name).await?;
        // Entries grouped by the tablet holding their rows, each group
        // sent to its owner. A group its owner refused whole (it does not
        // serve the tablet, or no longer all of those rows: a split) is
        // grouped again from the map as it is then, until `ROUTE_WAIT`.
        let r = &r;
        let md = &md;
        let deadline = Instant::now() + ROUTE_WAIT;
        let mut pending: Vec<usize> = (0..r.entries.len()).collect();
        let mut entries = Vec::with_capacity(r.entries.len());
        loop {
            let map = self.cluster.view.map();
            let mut groups: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
            for i in std::mem::take(&mut pending) {
                let id = map
                    .route(&r.table_name, &r.entries[i].row_key)
                    .map_or(0, |t| t.id);
                groups.entry(id).or_default().push(i);
            }
            let calls = groups.into_values().map(|indices| {
                let first = r.entries[indices[0]].row_key.clone();
                let sub = v2::MutateRowsRequest {
                    entries: indices.iter().map(|&i| r.entries[i].clone()).collect(),
                    ..r.clone()
                };
                async move {
                    let got = self
                        .cluster
                        .attempt(&r.table_name, &first, |target| async move {
                            let mut s: BoxStream<v2::MutateRowsResponse> = match target {
                                Target::Local(h) => self
                                    .local(&h)
                                    .mutate_rows(forwarded(sub, md, None))
                                    .await?
                                    .into_inner(),
                                Target::Remote { addr, tablet } => Box::pin(
                                    self.cluster
                                        .pool
                                        .data(&addr)?
                                        .mutate_rows(forwarded(sub, md, Some(&tablet)))
                                        .await?
                                        .into_inner(),
                                ),
                            };
                            let mut entries = Vec::new();
                            while let Some(x) = s.next().await {
                                entries.extend(x?.entries);
                            }
                            Ok(entries)
                        })
                        .await;
                    (indices, got)
                }
            });
            let out_of_time = Instant::now() >= deadline;
            for (indices, got) in join_all(calls).await {
                match got {
                    Ok(sub_entries) => {
                        for e in sub_entries {
                            let Some(&i) =
                                usize::try_from(e.index).ok().and_then(|k| indices.get(k))
                            else {
                                return Err(Status::internal("an owner answered an unknown entry"));
                            };
                            entries.push(v2::mutate_rows_response::Entry {
                                index: i as i64,
                                status: e.status,
                            });
                        }
                    }
                    Err(s) if retryable(&s, false) && !out_of_time => pending.extend(indices),
                    // The whole part failed: each of its entries with that
                    // status (clients retry the retryable ones).
                    Err(s) => {
                        let s = unknown_outcome(s);
                        for i in indices {
                            entries.push(v2::mutate_rows_response::Entry {
                                index: i as i64,
                                status: Some(crate::RpcStatus {
                                    code: s.code() as i32,
                                    message: s.message().to_string(),
                                    details: vec![],
                                }),
                            });
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            let now = Instant::now();
            self.cluster
                .view
                .changed(ROUTE_POLL.min(deadline.saturating_duration_since(now)))
                .await;
        }
        entries.sort_by_key(|e| e.index);
        let resp = v2::MutateRowsResponse {
            entries,
            rate_limit_info: None,
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(vec![Ok(resp)]))))
    }

    async fn check_and_mutate_row(
        &self,
        request: Request<v2::CheckAndMutateRowRequest>,
    ) -> Result<Response<v2::CheckAndMutateRowResponse>, Status> {
        single_row!(self, request, check_and_mutate_row)
    }

    async fn ping_and_warm(
        &self,
        request: Request<v2::PingAndWarmRequest>,
    ) -> Result<Response<v2::PingAndWarmResponse>, Status> {
        crate::data::check_instance_name(&request.into_inner().name)?;
        Ok(Response::new(v2::PingAndWarmResponse {}))
    }

    async fn read_modify_write_row(
        &self,
        request: Request<v2::ReadModifyWriteRowRequest>,
    ) -> Result<Response<v2::ReadModifyWriteRowResponse>, Status> {
        single_row!(self, request, read_modify_write_row)
    }
}
