//! google.bigtable.v2.Bigtable over a `Database`. Engine calls block
//! (reads, and writes waiting for their log sync), so each runs on tokio's
//! blocking pool; ReadRows streams its responses (small at first, see
//! `chunks`) from a blocking producer through a bounded channel, so a slow
//! client holds back the scan, not memory.

use crate::chunks::ChunkWriter;
use crate::convert::{self, invalid, status};
use crate::data_pb as v2;
use crate::observe::{DataRpc, RequestNote, RequestPaths, TableCounters, TableMetrics, TableTally};
use crate::pb::bigtable_server::Bigtable;
use crate::reply;
use prost::Message;
use std::sync::Arc;
use std::time::Instant;
use strata_table::database::validate_table_name;
use strata_table::{Database, ReadRequest, RmwRule, RowReader, TableError};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Responses buffered ahead of a ReadRows client, and the most the first
/// part of a read produces (the first four responses of a read hold
/// 4 + 8 + 16 + 32 rows at most: see `chunks`).
const READ_AHEAD_RESPONSES: usize = 4;

/// Data blocks the first part of a read may take from the block cache on
/// the request's own (async) thread; past them, or at a block not cached,
/// it starts again on the blocking pool.
const INLINE_BLOCKS_MAX: usize = 64;

/// Responses ready to send, and the reader to go on with if the read is
/// not done.
type Produced = (
    Vec<Result<v2::ReadRowsResponse, Status>>,
    Option<(RowReader, ChunkWriter)>,
);

/// How the first part of a ReadRows is produced.
#[derive(Clone, Copy)]
struct First {
    repeat_key_on_split: bool,
    full_stats: bool,
    started: Instant,
}

impl First {
    /// Opens the read and produces up to READ_AHEAD_RESPONSES responses.
    /// An error that ends the read after some rows is the last response;
    /// a memory-only read that needs storage is `Err` (nothing sent yet).
    fn produce(self, db: &Database, table: &str, req: ReadRequest) -> Result<Produced, TableError> {
        let mut reader = db.read_rows(table, req)?;
        let mut w = ChunkWriter::new(self.repeat_key_on_split);
        let mut out = Vec::new();
        while out.len() < READ_AHEAD_RESPONSES {
            match reader.next() {
                Some(Ok(row)) => {
                    w.row(row);
                    out.extend(w.take_ready().into_iter().map(Ok));
                }
                Some(Err(e)) if e.is_would_block() => return Err(e),
                Some(Err(e)) => {
                    out.push(Err(status(e)));
                    return Ok((out, None));
                }
                None => {
                    out.extend(w.finish().into_iter().map(Ok));
                    if self.full_stats {
                        out.push(Ok(stats_response(&reader.stats, self.started)));
                    }
                    return Ok((out, None));
                }
            }
        }
        Ok((out, Some((reader, w))))
    }
}

pub struct DataService {
    pub(crate) db: Arc<Database>,
    /// Per-table counters, when the server keeps metrics.
    pub(crate) tables: Option<Arc<TableMetrics>>,
    /// Where requests ran, when the server keeps metrics.
    pub(crate) paths: Option<Arc<RequestPaths>>,
}

/// Counts a ReadRows response: its rows (committed rows) for the
/// slow-request note, its rows and bytes for the table's counters.
fn count_read(
    resp: &v2::ReadRowsResponse,
    counters: Option<&TableCounters>,
    note: Option<&RequestNote>,
) {
    use v2::read_rows_response::cell_chunk::RowStatus;
    if counters.is_none() && note.is_none() {
        return;
    }
    let rows = resp
        .chunks
        .iter()
        .filter(|c| matches!(c.row_status, Some(RowStatus::CommitRow(true))))
        .count() as u64;
    if let Some(c) = counters {
        c.read(rows, resp.encoded_len() as u64);
    }
    if let Some(n) = note {
        n.rows(rows);
    }
}

/// Bytes of mutations as sent.
fn mutation_bytes(m: &[v2::Mutation]) -> u64 {
    m.iter().map(|m| m.encoded_len() as u64).sum()
}

/// Runs blocking database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("request task failed: {e}")))?
}

/// The answer to a one-row write queued from the request's thread.
type Queued<T> = reply::Answer<strata_table::Result<T>>;

/// Queues a one-row write from the request's own thread if `queue` can
/// (it returns true; its callback is answered when the batch commits, so
/// no thread waits for the log): the answer's receiver, else None (make
/// the blocking call).
fn queue_row_write<T: Send + 'static>(
    queue: impl FnOnce(Box<dyn FnOnce(strata_table::Result<T>) + Send>) -> strata_table::Result<bool>,
) -> Result<Option<Queued<T>>, Status> {
    let (tx, rx) = reply::channel();
    let queued = queue(Box::new(move |res| tx.send(res))).map_err(status)?;
    Ok(queued.then_some(rx))
}

/// The answer of a write `queue_row_write` queued, or, if it did not,
/// that of `fallback` (the blocking call) on the blocking pool.
async fn answer<T: Send + 'static>(
    queued: Option<Queued<T>>,
    fallback: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    match queued {
        Some(rx) => rx
            .await
            .map_err(|_| Status::internal("write dropped without an answer"))?
            .map_err(status),
        None => blocking(fallback).await,
    }
}

impl DataService {
    /// Counts where a request of `rpc` ran.
    fn ran(&self, rpc: DataRpc, in_place: bool) {
        if let Some(p) = &self.paths {
            p.count(rpc, in_place);
        }
    }

    /// The way to `table`'s counters.
    fn tally(&self, table: &str) -> TableTally {
        self.tables
            .as_ref()
            .map_or(TableTally::Off, |t| t.tally(table))
    }

    /// UNAVAILABLE once another server has taken the storage over: this
    /// one's data may be stale.
    fn check_owner(&self) -> Result<(), Status> {
        self.db
            .engine()
            .check_owner()
            .map_err(|e| status(TableError::Engine(e)))
    }
}

/// Checks the table name and rejects views Strata does not have.
pub(crate) fn target(
    table_name: &str,
    authorized_view: &str,
    materialized_view: &str,
) -> Result<String, Status> {
    if !authorized_view.is_empty() || !materialized_view.is_empty() {
        return Err(Status::unimplemented(
            "authorized and materialized views are not implemented by Strata; name the table",
        ));
    }
    if table_name.is_empty() {
        return Err(invalid("table_name is required"));
    }
    validate_table_name(table_name).map_err(status)?;
    Ok(table_name.to_string())
}

#[tonic::async_trait]
impl Bigtable for DataService {
    async fn read_rows(
        &self,
        request: Request<v2::ReadRowsRequest>,
    ) -> Result<Response<BoxStream<v2::ReadRowsResponse>>, Status> {
        let started = Instant::now();
        let note = RequestNote::of(&request);
        let repeat_key_on_split = request
            .metadata()
            .get("x-goog-api-client")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gl-python/"));
        let r = request.into_inner();
        let table = target(
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
        if r.rows
            .as_ref()
            .is_some_and(|rs| rs.row_keys.iter().any(|k| k.is_empty()))
        {
            return Err(invalid("row keys must be non-empty"));
        }
        let filter = convert::filter(r.filter.as_ref())?;
        self.check_owner()?;
        let req = ReadRequest {
            rows: convert::row_set(r.rows.as_ref())?,
            filter,
            rows_limit: r.rows_limit as u64,
            reversed: r.reversed,
        };
        let full_stats = r.request_stats_view
            == v2::read_rows_request::RequestStatsView::RequestStatsFull as i32;
        // A read whose blocks are all in memory (a row or a short range,
        // cached) is answered on this thread; one that needs storage, or
        // more than INLINE_BLOCKS_MAX blocks, starts again on the blocking
        // pool. Either opens the read and produces its first responses;
        // most reads end there. Longer ones continue on a producer that
        // stays READ_AHEAD_RESPONSES ahead of the client.
        let first = First {
            repeat_key_on_split,
            full_stats,
            started,
        };
        let tally = self.tally(&table);
        if let Some(n) = &note {
            n.table(&table);
        }
        let inline = strata_engine::sst::memory_only(INLINE_BLOCKS_MAX, || {
            first.produce(&self.db, &table, req.clone())
        });
        self.ran(
            DataRpc::ReadRows,
            !inline.as_ref().is_err_and(|e| e.is_would_block()),
        );
        let first = match inline {
            Ok(done) => done,
            Err(e) if e.is_would_block() => {
                let db = self.db.clone();
                blocking(move || first.produce(&db, &table, req).map_err(status)).await?
            }
            Err(e) => return Err(status(e)),
        };
        let (ready, rest) = first;
        let counters = tally.counters();
        let Some((mut reader, mut w)) = rest else {
            for resp in ready.iter().flatten() {
                count_read(resp, counters.as_deref(), note.as_ref());
            }
            return Ok(Response::new(Box::pin(tokio_stream::iter(ready))));
        };
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_RESPONSES);
        tokio::task::spawn_blocking(move || {
            let send = |r: Result<v2::ReadRowsResponse, Status>| {
                if let Ok(resp) = &r {
                    count_read(resp, counters.as_deref(), note.as_ref());
                }
                tx.blocking_send(r).is_ok()
            };
            for r in ready {
                if !send(r) {
                    return; // the client went away
                }
            }
            for row in reader.by_ref() {
                match row {
                    Ok(row) => w.row(row),
                    Err(e) => {
                        send(Err(status(e)));
                        return;
                    }
                }
                for resp in w.take_ready() {
                    if !send(Ok(resp)) {
                        return;
                    }
                }
            }
            let mut out = w.finish();
            if full_stats {
                out.push(stats_response(&reader.stats, started));
            }
            for resp in out {
                if !send(Ok(resp)) {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn sample_row_keys(
        &self,
        request: Request<v2::SampleRowKeysRequest>,
    ) -> Result<Response<BoxStream<v2::SampleRowKeysResponse>>, Status> {
        let r = request.into_inner();
        let table = target(
            &r.table_name,
            &r.authorized_view_name,
            &r.materialized_view_name,
        )?;
        self.check_owner()?;
        let db = self.db.clone();
        let samples = blocking(move || db.sample_row_keys(&table).map_err(status)).await?;
        let out: Vec<Result<v2::SampleRowKeysResponse, Status>> = samples
            .into_iter()
            .map(|(row_key, offset_bytes)| {
                Ok(v2::SampleRowKeysResponse {
                    row_key,
                    offset_bytes,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(out))))
    }

    async fn mutate_row(
        &self,
        request: Request<v2::MutateRowRequest>,
    ) -> Result<Response<v2::MutateRowResponse>, Status> {
        let note = RequestNote::of(&request);
        let r = request.into_inner();
        let table = target(&r.table_name, &r.authorized_view_name, "")?;
        if let Some(n) = &note {
            n.table(&table);
        }
        let tally = self.tally(&table);
        let bytes = if tally.is_on() {
            mutation_bytes(&r.mutations)
        } else {
            0
        };
        let muts = convert::mutations(r.mutations)?;
        // Writes whose locks are free (and deletes whose row is in memory)
        // are queued from this thread; the rest take the blocking path.
        let queued = queue_row_write(|done| {
            self.db
                .try_mutate_row_async(&table, &r.row_key, &muts, done)
        })?;
        self.ran(DataRpc::MutateRow, queued.is_some());
        let db = self.db.clone();
        answer(queued, move || {
            db.mutate_row(&table, &r.row_key, &muts).map_err(status)
        })
        .await?;
        if let Some(c) = tally.counters() {
            c.written(1, bytes);
        }
        if let Some(n) = &note {
            n.rows(1);
        }
        Ok(Response::new(v2::MutateRowResponse {}))
    }

    async fn mutate_rows(
        &self,
        request: Request<v2::MutateRowsRequest>,
    ) -> Result<Response<BoxStream<v2::MutateRowsResponse>>, Status> {
        let note = RequestNote::of(&request);
        let r = request.into_inner();
        let table = target(&r.table_name, &r.authorized_view_name, "")?;
        if let Some(n) = &note {
            n.table(&table);
        }
        if r.entries.is_empty() {
            return Err(invalid("no entries provided"));
        }
        // An entry whose mutations do not convert fails alone.
        let tally = self.tally(&table);
        // `converted`: each entry's conversion error, if any; the entries
        // that converted are moved into `good`, in order.
        let mut converted: Vec<Result<(), Status>> = Vec::with_capacity(r.entries.len());
        let mut good: Vec<(Vec<u8>, Vec<strata_table::Mutation>)> =
            Vec::with_capacity(r.entries.len());
        let mut entry_bytes = Vec::new();
        for e in r.entries {
            if tally.is_on() {
                entry_bytes.push(mutation_bytes(&e.mutations));
            }
            match convert::mutations(e.mutations) {
                Ok(m) => {
                    good.push((e.row_key, m));
                    converted.push(Ok(()));
                }
                Err(s) => converted.push(Err(s)),
            }
        }
        // Blind writes go straight to the commit queue (as in MutateRow).
        let (tx, rx) = reply::channel();
        let queued = self
            .db
            .try_mutate_rows_async(&table, &good, move |res| tx.send(res))
            .map_err(status)?;
        self.ran(DataRpc::MutateRows, queued);
        let applied = if queued {
            rx.await
                .map_err(|_| Status::internal("write dropped without an answer"))?
        } else {
            let db = self.db.clone();
            blocking(move || db.mutate_rows(&table, &good).map_err(status)).await?
        };
        let mut applied = applied.into_iter();
        let results: Vec<Result<(), TableError>> = converted
            .into_iter()
            .map(|c| match c {
                Ok(_) => applied.next().expect("one result per good entry"),
                Err(s) => Err(TableError::InvalidArgument(s.message().to_string())),
            })
            .collect();
        if let Some(n) = &note {
            n.rows(results.iter().filter(|r| r.is_ok()).count() as u64);
        }
        if let Some(c) = tally.counters() {
            let (rows, bytes) = results
                .iter()
                .zip(&entry_bytes)
                .filter(|(res, _)| res.is_ok())
                .fold((0, 0), |a, (_, b)| (a.0 + 1, a.1 + b));
            c.written(rows, bytes);
        }
        let entries = results
            .iter()
            .enumerate()
            .map(|(i, res)| v2::mutate_rows_response::Entry {
                index: i as i64,
                status: Some(convert::rpc_status(res)),
            })
            .collect();
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
        let note = RequestNote::of(&request);
        let r = request.into_inner();
        let table = target(&r.table_name, &r.authorized_view_name, "")?;
        if let Some(n) = &note {
            n.table(&table);
        }
        let predicate = convert::filter(r.predicate_filter.as_ref())?;
        let tally = self.tally(&table);
        let (true_bytes, false_bytes) = if tally.is_on() {
            (
                mutation_bytes(&r.true_mutations),
                mutation_bytes(&r.false_mutations),
            )
        } else {
            (0, 0)
        };
        let t = convert::mutations(r.true_mutations)?;
        let f = convert::mutations(r.false_mutations)?;
        if t.is_empty() && f.is_empty() {
            return Err(invalid(
                "no mutations provided: set true_mutations or false_mutations",
            ));
        }
        // On this thread when the row's lock is free and its read needs no
        // storage.
        let queued = queue_row_write(|done| {
            let p = predicate.clone();
            self.db
                .try_check_and_mutate_async(&table, &r.row_key, p, &t, &f, done)
        })?;
        self.ran(DataRpc::CheckAndMutateRow, queued.is_some());
        let db = self.db.clone();
        let (t_len, f_len) = (t.len(), f.len());
        let matched = answer(queued, move || {
            db.check_and_mutate(&table, &r.row_key, predicate, &t, &f)
                .map_err(status)
        })
        .await?;
        if let Some(c) = tally.counters() {
            let (applied, bytes) = if matched {
                (t_len, true_bytes)
            } else {
                (f_len, false_bytes)
            };
            if applied > 0 {
                c.written(1, bytes);
            }
        }
        Ok(Response::new(v2::CheckAndMutateRowResponse {
            predicate_matched: matched,
        }))
    }

    async fn ping_and_warm(
        &self,
        request: Request<v2::PingAndWarmRequest>,
    ) -> Result<Response<v2::PingAndWarmResponse>, Status> {
        check_instance_name(&request.into_inner().name)?;
        Ok(Response::new(v2::PingAndWarmResponse {}))
    }

    async fn read_modify_write_row(
        &self,
        request: Request<v2::ReadModifyWriteRowRequest>,
    ) -> Result<Response<v2::ReadModifyWriteRowResponse>, Status> {
        use v2::read_modify_write_rule::Rule;
        let note = RequestNote::of(&request);
        let r = request.into_inner();
        let table = target(&r.table_name, &r.authorized_view_name, "")?;
        if let Some(n) = &note {
            n.table(&table);
        }
        let rules = r
            .rules
            .iter()
            .map(|rule| match &rule.rule {
                Some(Rule::AppendValue(v)) => Ok(RmwRule::Append {
                    family: rule.family_name.clone(),
                    qualifier: rule.column_qualifier.clone(),
                    value: v.clone(),
                }),
                Some(Rule::IncrementAmount(n)) => Ok(RmwRule::Increment {
                    family: rule.family_name.clone(),
                    qualifier: rule.column_qualifier.clone(),
                    amount: *n,
                }),
                None => Err(invalid("a ReadModifyWriteRule has no rule set")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // On this thread when the row's lock is free and its read needs no
        // storage.
        let queued = queue_row_write(|done| {
            self.db
                .try_read_modify_write_async(&table, &r.row_key, &rules, done)
        })?;
        self.ran(DataRpc::ReadModifyWriteRow, queued.is_some());
        let db = self.db.clone();
        let tally = self.tally(&table);
        let bytes: u64 = if tally.is_on() {
            r.rules.iter().map(|x| x.encoded_len() as u64).sum()
        } else {
            0
        };
        let row = answer(queued, move || {
            db.read_modify_write(&table, &r.row_key, &rules)
                .map_err(status)
        })
        .await?;
        if let Some(c) = tally.counters() {
            c.written(1, bytes);
        }
        Ok(Response::new(v2::ReadModifyWriteRowResponse {
            row: Some(row_pb(row)),
        }))
    }
}

/// INVALID_ARGUMENT unless `name` is `projects/<project>/instances/<instance>`.
pub(crate) fn check_instance_name(name: &str) -> Result<(), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = parts.len() == 4 && parts[0] == "projects" && parts[2] == "instances";
    if !ok || parts[1].is_empty() || parts[3].is_empty() {
        return Err(invalid(format!(
            "invalid instance name {name:?}: want projects/<project>/instances/<instance>"
        )));
    }
    Ok(())
}

/// A row as a `google.bigtable.v2.Row` (families, then columns, in order).
fn row_pb(row: strata_table::Row) -> v2::Row {
    let mut families: Vec<v2::Family> = Vec::new();
    for c in row.cells {
        if families.last().is_none_or(|f| f.name != c.family) {
            families.push(v2::Family {
                name: c.family.clone(),
                columns: vec![],
            });
        }
        let fam = families.last_mut().expect("pushed above");
        if fam
            .columns
            .last()
            .is_none_or(|col| col.qualifier != c.qualifier)
        {
            fam.columns.push(v2::Column {
                qualifier: c.qualifier.clone(),
                cells: vec![],
            });
        }
        fam.columns
            .last_mut()
            .expect("pushed above")
            .cells
            .push(v2::Cell {
                timestamp_micros: c.timestamp_micros,
                value: c.value,
                labels: c.labels,
            });
    }
    v2::Row {
        key: row.key,
        families,
    }
}

fn stats_response(s: &strata_table::ReadStats, started: Instant) -> v2::ReadRowsResponse {
    use v2::request_stats::StatsView;
    let elapsed = started.elapsed();
    v2::ReadRowsResponse {
        request_stats: Some(v2::RequestStats {
            stats_view: Some(StatsView::FullReadStatsView(v2::FullReadStatsView {
                read_iteration_stats: Some(v2::ReadIterationStats {
                    rows_seen_count: s.rows_seen as i64,
                    rows_returned_count: s.rows_returned as i64,
                    cells_seen_count: s.cells_seen as i64,
                    cells_returned_count: s.cells_returned as i64,
                }),
                request_latency_stats: Some(v2::RequestLatencyStats {
                    frontend_server_latency: Some(prost_types::Duration {
                        seconds: elapsed.as_secs() as i64,
                        nanos: elapsed.subsec_nanos() as i32,
                    }),
                }),
            })),
        }),
        ..Default::default()
    }
}
