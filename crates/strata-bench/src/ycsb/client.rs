//! The Bigtable API requests of the benchmark, over tonic's generated clients
//! (plain HTTP/2, no TLS), shaped like YCSB's `googlebigtable` binding.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use tonic::transport::{Channel, Endpoint};

use admin::bigtable_table_admin_client::BigtableTableAdminClient;
use v2::bigtable_client::BigtableClient;
use v2::mutate_rows_request::Entry;
use v2::read_rows_response::cell_chunk::RowStatus;

/// gRPC message size limit in both directions (tonic's default receive limit is 4 MiB).
const MAX_MESSAGE: usize = 256 << 20;

pub const FAMILY: &str = "cf";

/// The (qualifier, value) cells written to one row.
pub type Cells = Vec<(Vec<u8>, Vec<u8>)>;

/// The server and table a benchmark runs against.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Server address, HOST:PORT (plain HTTP/2, no TLS).
    #[arg(long)]
    pub addr: String,

    /// Table id.
    #[arg(long, default_value = "usertable")]
    pub table: String,

    /// Project and instance of the table's resource name.
    #[arg(long, default_value = "strata-bench")]
    pub project: String,
    #[arg(long, default_value = "bench")]
    pub instance: String,

    /// Keep retrying to connect for this many seconds (the server may be starting).
    #[arg(long, default_value_t = 30)]
    pub connect_wait_secs: u64,
}

impl Target {
    pub fn instance_name(&self) -> String {
        format!("projects/{}/instances/{}", self.project, self.instance)
    }

    pub fn table_name(&self) -> String {
        format!("{}/tables/{}", self.instance_name(), self.table)
    }

    /// A new connection to the server (see [`connect`]).
    pub async fn connect(&self) -> Result<Channel> {
        connect(&self.addr, Duration::from_secs(self.connect_wait_secs)).await
    }
}

/// Opens a channel (one HTTP/2 connection), retrying until `wait` has passed, so the
/// benchmark can be started right after the server process.
pub async fn connect(addr: &str, wait: Duration) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .context("bad --addr")?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + wait;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(anyhow!("cannot connect to {addr}: {e:?}")),
        }
    }
}

pub fn data_client(channel: Channel) -> BigtableClient<Channel> {
    BigtableClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Creates the table with family `cf` (at most one version per cell) unless it exists.
pub async fn create_table(channel: Channel, instance: &str, table_id: &str) -> Result<()> {
    let mut client = BigtableTableAdminClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let family = admin::ColumnFamily {
        gc_rule: Some(admin::GcRule {
            rule: Some(admin::gc_rule::Rule::MaxNumVersions(1)),
        }),
        ..Default::default()
    };
    let table = admin::Table {
        column_families: [(FAMILY.to_string(), family)].into_iter().collect(),
        ..Default::default()
    };
    let request = admin::CreateTableRequest {
        parent: instance.to_string(),
        table_id: table_id.to_string(),
        table: Some(table),
        initial_splits: Vec::new(),
    };
    match client.create_table(request).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => bail!("CreateTable {table_id}: {s}"),
    }
}

/// How a read request filters the row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadFilter {
    /// The newest cell of each column (`cells_per_column_limit: 1`), as clients read a row.
    Latest,
    /// No filter: every stored version.
    None,
}

impl ReadFilter {
    /// The request's filter.
    pub fn row_filter(self) -> Option<v2::RowFilter> {
        match self {
            ReadFilter::Latest => Some(v2::RowFilter {
                filter: Some(v2::row_filter::Filter::CellsPerColumnLimitFilter(1)),
            }),
            ReadFilter::None => None,
        }
    }
}

/// What a single-row read returned.
pub enum ReadOutcome {
    Found { cells: usize },
    Missing,
}

/// One connection's data client plus the request fields every call repeats.
#[derive(Clone)]
pub struct Ops {
    client: BigtableClient<Channel>,
    table_name: String,
    filter: Option<v2::RowFilter>,
}

impl Ops {
    pub fn new(channel: Channel, table_name: String, filter: ReadFilter) -> Self {
        Self {
            client: data_client(channel),
            table_name,
            filter: filter.row_filter(),
        }
    }

    fn set_cell(qualifier: Vec<u8>, value: Vec<u8>) -> v2::Mutation {
        v2::Mutation {
            mutation: Some(v2::mutation::Mutation::SetCell(v2::mutation::SetCell {
                family_name: FAMILY.to_string(),
                column_qualifier: qualifier,
                timestamp_micros: -1, // server time
                value,
            })),
        }
    }

    /// Writes the given (qualifier, value) cells of one row with MutateRow.
    pub async fn mutate_row(&mut self, key: Vec<u8>, cells: Cells) -> Result<()> {
        let request = v2::MutateRowRequest {
            table_name: self.table_name.clone(),
            row_key: key,
            mutations: cells
                .into_iter()
                .map(|(q, v)| Self::set_cell(q, v))
                .collect(),
            ..Default::default()
        };
        self.client.mutate_row(request).await?;
        Ok(())
    }

    /// Writes several rows with one MutateRows call; fails if any entry failed.
    pub async fn mutate_rows(&mut self, rows: Vec<(Vec<u8>, Cells)>) -> Result<()> {
        let n = rows.len();
        let entries = rows
            .into_iter()
            .map(|(key, cells)| Entry {
                row_key: key,
                mutations: cells
                    .into_iter()
                    .map(|(q, v)| Self::set_cell(q, v))
                    .collect(),
                ..Default::default()
            })
            .collect();
        let request = v2::MutateRowsRequest {
            table_name: self.table_name.clone(),
            entries,
            ..Default::default()
        };
        let mut stream = self.client.mutate_rows(request).await?.into_inner();
        let mut acknowledged = 0usize;
        while let Some(response) = stream.message().await? {
            for entry in response.entries {
                if let Some(status) = entry.status.filter(|s| s.code != 0) {
                    bail!(
                        "MutateRows entry {}: code {} {}",
                        entry.index,
                        status.code,
                        status.message
                    );
                }
                acknowledged += 1;
            }
        }
        if acknowledged != n {
            bail!("MutateRows acknowledged {acknowledged} of {n} entries");
        }
        Ok(())
    }

    /// Reads one row (ReadRows with one key and `rows_limit: 1`), consuming the whole stream.
    pub async fn read_row(&mut self, key: Vec<u8>) -> Result<ReadOutcome> {
        let request = v2::ReadRowsRequest {
            table_name: self.table_name.clone(),
            rows: Some(v2::RowSet {
                row_keys: vec![key.clone()],
                row_ranges: Vec::new(),
            }),
            filter: self.filter.clone(),
            rows_limit: 1,
            ..Default::default()
        };
        let mut stream = self.client.read_rows(request).await?.into_inner();
        let (mut rows, mut cells) = (0usize, 0usize);
        while let Some(response) = stream.message().await? {
            for chunk in response.chunks {
                if !chunk.row_key.is_empty() && chunk.row_key != key {
                    bail!(
                        "ReadRows returned row {:?}",
                        String::from_utf8_lossy(&chunk.row_key)
                    );
                }
                if chunk.value_size == 0 {
                    cells += 1; // the last (or only) chunk of a cell
                }
                match chunk.row_status {
                    Some(RowStatus::CommitRow(true)) => rows += 1,
                    Some(RowStatus::ResetRow(true)) => cells = 0,
                    _ => {}
                }
            }
        }
        match rows {
            0 => Ok(ReadOutcome::Missing),
            1 => Ok(ReadOutcome::Found { cells }),
            n => bail!("ReadRows returned {n} rows for one key"),
        }
    }

    /// ReadModifyWriteRow appending `suffix` to one cell; checks the new cell came back.
    pub async fn append(
        &mut self,
        key: Vec<u8>,
        qualifier: Vec<u8>,
        suffix: Vec<u8>,
    ) -> Result<()> {
        let request = v2::ReadModifyWriteRowRequest {
            table_name: self.table_name.clone(),
            row_key: key,
            rules: vec![v2::ReadModifyWriteRule {
                family_name: FAMILY.to_string(),
                column_qualifier: qualifier,
                rule: Some(v2::read_modify_write_rule::Rule::AppendValue(suffix)),
            }],
            ..Default::default()
        };
        let response = self
            .client
            .read_modify_write_row(request)
            .await?
            .into_inner();
        let returned = response
            .row
            .map(|r| r.families.iter().map(|f| f.columns.len()).sum::<usize>())
            .unwrap_or(0);
        if returned != 1 {
            bail!("ReadModifyWriteRow returned {returned} columns, expected 1");
        }
        Ok(())
    }
}
