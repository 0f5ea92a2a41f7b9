//! strata.admin.v1.StrataAdmin: Strata's own operator RPCs, beside the
//! Bigtable APIs. `ListTablets` lists a table's tablets with their row
//! ranges and storage; `CompactTable` runs a major compaction. The
//! messages are written by hand here; their wire format is specified in
//! docs/formats/admin-rpc.md, and proto/strata/admin/v1/strata_admin.proto
//! describes it for gRPC reflection.

use crate::convert::status;
use crate::data::blocking;
use crate::pb::strata_admin_server::StrataAdmin;
use std::sync::Arc;
use strata_table::database::validate_table_name;
use strata_table::{Database, TabletInfo};
use tonic::{Request, Response, Status};

/// Asks for the tablets of one table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTabletsRequest {
    /// `projects/P/instances/I/tables/T`.
    #[prost(string, tag = "1")]
    pub table_name: String,
}

/// The tablets of a table, in row order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTabletsResponse {
    #[prost(message, repeated, tag = "1")]
    pub tablets: Vec<Tablet>,
}

/// One tablet: rows `[start_row, end_row)`, or `[start_row, end of table)`
/// when `has_end` is false.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tablet {
    /// The tablet's id, unique in the server (a split, merge or whole-tablet
    /// drop makes new ones).
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// First row of the tablet; empty for the table's first tablet.
    #[prost(bytes = "vec", tag = "2")]
    pub start_row: Vec<u8>,
    /// First row past the tablet; meaningful only when `has_end`.
    #[prost(bytes = "vec", tag = "3")]
    pub end_row: Vec<u8>,
    /// False for the last tablet, which runs to the end of the table.
    #[prost(bool, tag = "4")]
    pub has_end: bool,
    /// Approximate bytes on disk of the tablet's own cells.
    #[prost(uint64, tag = "5")]
    pub size_bytes: u64,
    /// Bytes in the tablet's memtables (active and sealed).
    #[prost(uint64, tag = "6")]
    pub memtable_bytes: u64,
    /// Files at each level, L0 first.
    #[prost(uint32, repeated, tag = "7")]
    pub files_per_level: Vec<u32>,
    /// Files shared with a neighbour since a split, not yet rewritten.
    #[prost(uint32, tag = "8")]
    pub shared_files: u32,
    /// On a cluster: the server serving it (`id@incarnation`; empty when
    /// none does), its assignment epoch, its state and its cluster-wide id.
    #[prost(string, tag = "9")]
    pub owner: String,
    #[prost(uint64, tag = "10")]
    pub epoch: u64,
    #[prost(string, tag = "11")]
    pub state: String,
    #[prost(uint64, tag = "12")]
    pub cluster_id: u64,
}

/// Asks for a major compaction of one table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompactTableRequest {
    #[prost(string, tag = "1")]
    pub table_name: String,
}

/// The table's size and files before and after the compaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompactTableResponse {
    #[prost(uint64, tag = "1")]
    pub size_bytes_before: u64,
    #[prost(uint64, tag = "2")]
    pub size_bytes_after: u64,
    #[prost(uint32, tag = "3")]
    pub files_before: u32,
    #[prost(uint32, tag = "4")]
    pub files_after: u32,
}

/// A count on the wire: counts past `u32::MAX` saturate.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<TabletInfo> for Tablet {
    fn from(t: TabletInfo) -> Tablet {
        Tablet {
            id: t.id,
            start_row: t.start_row,
            has_end: t.end_row.is_some(),
            end_row: t.end_row.unwrap_or_default(),
            size_bytes: t.size_bytes,
            memtable_bytes: t.memtable_bytes,
            files_per_level: t.files_per_level.into_iter().map(count).collect(),
            shared_files: count(t.shared_files),
            ..Tablet::default()
        }
    }
}

/// Serves strata.admin.v1.StrataAdmin over a `Database`.
pub struct StrataAdminService {
    pub(crate) db: Arc<Database>,
}

/// A major compaction of `table` in `db`, with its size and files before
/// and after. Blocks until it is done.
pub(crate) fn compact_here(db: &Database, table: &str) -> Result<CompactTableResponse, Status> {
    let measure = |db: &Database| -> Result<(u64, u32), Status> {
        let tablets = db.tablets(table).map_err(status)?;
        let size = tablets.iter().map(|t| t.size_bytes).sum();
        let files = tablets
            .iter()
            .map(|t| t.files_per_level.iter().sum::<usize>())
            .sum();
        Ok((size, count(files)))
    };
    let (size_bytes_before, files_before) = measure(db)?;
    db.compact_table(table).map_err(status)?;
    let (size_bytes_after, files_after) = measure(db)?;
    Ok(CompactTableResponse {
        size_bytes_before,
        size_bytes_after,
        files_before,
        files_after,
    })
}

#[tonic::async_trait]
impl StrataAdmin for StrataAdminService {
    async fn list_tablets(
        &self,
        request: Request<ListTabletsRequest>,
    ) -> Result<Response<ListTabletsResponse>, Status> {
        let r = request.into_inner();
        validate_table_name(&r.table_name).map_err(status)?;
        let db = self.db.clone();
        let tablets = blocking(move || db.tablets(&r.table_name).map_err(status)).await?;
        Ok(Response::new(ListTabletsResponse {
            tablets: tablets.into_iter().map(Tablet::from).collect(),
        }))
    }

    async fn compact_table(
        &self,
        request: Request<CompactTableRequest>,
    ) -> Result<Response<CompactTableResponse>, Status> {
        let r = request.into_inner();
        validate_table_name(&r.table_name).map_err(status)?;
        let db = self.db.clone();
        let reply = blocking(move || compact_here(&db, &r.table_name)).await?;
        Ok(Response::new(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn tablet_round_trips_and_keeps_its_field_numbers() {
        let t = Tablet {
            id: 7,
            start_row: b"g".to_vec(),
            end_row: b"p".to_vec(),
            has_end: true,
            size_bytes: 1 << 20,
            memtable_bytes: 300,
            files_per_level: vec![2, 0, 3],
            shared_files: 1,
            owner: "s1@42".into(),
            epoch: 3,
            state: "serving".into(),
            cluster_id: 1 << 40,
        };
        let bytes = t.encode_to_vec();
        assert_eq!(Tablet::decode(bytes.as_slice()).unwrap(), t);
        // Field 1 (id), varint: tag byte 0x08; field 2 (start_row), length
        // delimited: 0x12; field 7 (files_per_level), packed: 0x3a.
        assert_eq!(&bytes[..4], &[0x08, 7, 0x12, 1]);
        assert!(bytes.windows(5).any(|w| w == [0x3a, 3, 2, 0, 3]));
    }

    #[test]
    fn last_tablet_has_no_end() {
        let t = Tablet::from(TabletInfo {
            id: 1,
            start_row: b"p".to_vec(),
            end_row: None,
            size_bytes: 0,
            memtable_bytes: 0,
            files_per_level: vec![0; 7],
            shared_files: 0,
        });
        assert!(!t.has_end);
        assert!(t.end_row.is_empty());
        assert_eq!(t.files_per_level, vec![0; 7]);
    }
}
