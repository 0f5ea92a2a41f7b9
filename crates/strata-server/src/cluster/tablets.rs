//! StrataAdmin's ListTablets on a cluster: a table's tablets from the
//! tablet map, each with its owner, epoch and state, and its sizes as its
//! owner reports them (a forwarded ListTablets naming the tablet: the
//! owner sums the engine's own tablets inside it).

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
                    let mut req = Request::new(ListTabletsRequest {
                        table_name: r.table_name.clone(),
                    });
                    req.metadata_mut().insert(
                        TABLET_HEADER,
                        tablet
                            .parse()
                            .map_err(|_| Status::internal("tablet header"))?,
                    );
                    let channel = self.cluster.pool.channel(&addr)?;
                    StrataAdminClient::new(channel)
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

    /// A cluster's tablets live on several servers, each an engine of its
    /// own: compacting a whole table would have to reach every owner.
    async fn compact_table(
        &self,
        _request: Request<CompactTableRequest>,
    ) -> Result<Response<CompactTableResponse>, Status> {
        Err(Status::unimplemented(
            "strata.admin.v1.StrataAdmin/CompactTable is not implemented by Strata on a cluster yet \
             (a single-process server serves it)",
        ))
    }
}
