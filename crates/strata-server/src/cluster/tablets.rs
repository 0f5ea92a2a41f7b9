//! StrataAdmin on a cluster. ListTablets: a table's tablets from the
//! tablet map, each with its owner, epoch and state, and its sizes as its
//! owner reports them (a forwarded ListTablets naming the tablet: the
//! owner sums the engine's own tablets inside it). CompactTable: every
//! owner compacts its tablets of the table (forwarded the same way).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::host::Hosted;
use super::route::{Target, TABLET_HEADER};
use super::Cluster;
use crate::convert::status;
use crate::data::blocking;
use crate::pb::strata_admin_client::StrataAdminClient;
use crate::pb::strata_admin_server::StrataAdmin;
use crate::tablets::{
    count, CompactTableRequest, CompactTableResponse, ListTabletsRequest, ListTabletsResponse,
    Tablet,
};
use strata_table::database::validate_table_name;

pub struct ClusterTablets {
    pub(crate) cluster: Arc<Cluster>,
}

/// A major compaction of a served tablet (its database holds the table's
/// rows of the tablet's range only).
async fn compact_hosted(h: &Hosted) -> Result<CompactTableResponse, Status> {
    let db = h.db.clone();
    let table = h.record.table.clone();
    blocking(move || crate::tablets::compact_here(&db, &table)).await
}

/// A served tablet's sizes: its engine's tablets added up.
async fn sizes(h: &Hosted) -> Result<Tablet, Status> {
    let db = h.db.clone();
    let table = h.record.table.clone();
    let inner = blocking(move || db.tablets(&table).map_err(status)).await?;
    let mut t = Tablet::default();
    for i in inner {
        t.size_bytes += i.size_bytes;
        t.memtable_bytes += i.memtable_bytes;
        t.shared_files += count(i.shared_files);
        if t.files_per_level.len() < i.files_per_level.len() {
            t.files_per_level.resize(i.files_per_level.len(), 0);
        }
        for (sum, n) in t.files_per_level.iter_mut().zip(i.files_per_level) {
            *sum += count(n);
        }
    }
    Ok(t)
}

impl ClusterTablets {
    /// A client of the owner at `addr` and `msg` as a request naming the
    /// tablet (`id.epoch`) it is for.
    fn forward<T>(
        &self,
        addr: &str,
        tablet: &str,
        msg: T,
    ) -> Result<(StrataAdminClient<tonic::transport::Channel>, Request<T>), Status> {
        let mut req = Request::new(msg);
        req.metadata_mut().insert(
            TABLET_HEADER,
            tablet
                .parse()
                .map_err(|_| Status::internal("tablet header"))?,
        );
        let channel = self.cluster.pool.channel(addr)?;
        Ok((StrataAdminClient::new(channel), req))
    }
}

#[tonic::async_trait]
impl StrataAdmin for ClusterTablets {
    async fn list_tablets(
        &self,
        request: Request<ListTabletsRequest>,
    ) -> Result<Response<ListTabletsResponse>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            return Ok(Response::new(ListTabletsResponse {
                tablets: vec![sizes(&h).await?],
            }));
        }
        let r = request.into_inner();
        validate_table_name(&r.table_name).map_err(status)?;
        let records = self.cluster.tablets_of(&r.table_name).await?;
        let mut tablets = Vec::with_capacity(records.len());
        for rec in records {
            // Sizes from the owner; a tablet not served now shows none.
            let measured = match self.cluster.target(&rec) {
                Ok(Target::Local(h)) => sizes(&h).await.ok(),
                Ok(Target::Remote { addr, tablet }) => {
                    let (mut client, req) = self.forward(
                        &addr,
                        &tablet,
                        ListTabletsRequest {
                            table_name: r.table_name.clone(),
                        },
                    )?;
                    client
                        .list_tablets(req)
                        .await
                        .ok()
                        .and_then(|resp| resp.into_inner().tablets.into_iter().next())
                }
                Err(_) => None,
            };
            let mut t = measured.unwrap_or_default();
            t.id = u32::try_from(rec.id).unwrap_or(u32::MAX);
            t.cluster_id = rec.id;
            t.start_row = rec.start.clone();
            t.has_end = rec.end.is_some();
            t.end_row = rec.end.clone().unwrap_or_default();
            t.owner = rec.owner.clone().unwrap_or_default();
            t.epoch = rec.epoch;
            t.state = rec.state.name().to_string();
            tablets.push(t);
        }
        Ok(Response::new(ListTabletsResponse { tablets }))
    }

    /// A major compaction of every tablet of a table: each owner compacts
    /// the tablets it serves (a forwarded CompactTable naming the tablet),
    /// one tablet at a time; the reply adds up their sizes and files. A
    /// tablet not served now (moving, recovering) fails the call
    /// UNAVAILABLE, and the tablets compacted before it stay compacted.
    async fn compact_table(
        &self,
        request: Request<CompactTableRequest>,
    ) -> Result<Response<CompactTableResponse>, Status> {
        if let Some(h) = self.cluster.hosted_for(request.metadata())? {
            return Ok(Response::new(compact_hosted(&h).await?));
        }
        let r = request.into_inner();
        validate_table_name(&r.table_name).map_err(status)?;
        let records = self.cluster.tablets_of(&r.table_name).await?;
        let mut total = CompactTableResponse::default();
        for rec in records {
            let one = match self.cluster.target(&rec)? {
                Target::Local(h) => compact_hosted(&h).await?,
                Target::Remote { addr, tablet } => {
                    let (mut client, req) = self.forward(
                        &addr,
                        &tablet,
                        CompactTableRequest {
                            table_name: r.table_name.clone(),
                        },
                    )?;
                    client.compact_table(req).await?.into_inner()
                }
            };
            total.size_bytes_before += one.size_bytes_before;
            total.size_bytes_after += one.size_bytes_after;
            total.files_before = total.files_before.saturating_add(one.files_before);
            total.files_after = total.files_after.saturating_add(one.files_after);
        }
        Ok(Response::new(total))
    }
}
