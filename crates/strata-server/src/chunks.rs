//! The ReadRows response protocol: rows as cell chunks, in responses that
//! start small and grow. A read's first response is cut once it holds
//! `FIRST_RESPONSE_ROWS_TARGET` whole rows or about
//! `FIRST_RESPONSE_BYTES_TARGET` bytes, whichever comes first; each later
//! one may hold twice as many rows and bytes as the one before it, up to
//! `RESPONSE_BYTES_TARGET_MAX`. So a client sees a scan's first rows at once,
//! a short scan arrives as several messages (a client resumes a failed
//! stream from the last row it received), a long one soon moves in large
//! messages, and no message approaches a client's 4 MiB default receive
//! limit. Values larger than `CHUNK_VALUE_BYTES_MAX` are split across chunks
//! (and responses).
//!
//! Why not small responses throughout: a scan of 1 KB rows sent 8 rows
//! (10 KB) per response ran 15-25% slower end to end than with 1 MiB
//! responses, and 256-512 KiB responses still about 12% slower, on 2 vCPUs
//! with the Rust client (docs/benchmarks.md, "ReadRows streaming"): per
//! message, tonic cuts its HTTP/2 writes at 32 KiB, and every write is a
//! hand-off between the response's task and the connection's on tokio's
//! workers (400,000 futex calls a scan against 3,000); and response buffers
//! under glibc's 512 KiB mmap threshold are heap memory freed by another
//! thread than the one that allocated it.
//!
//! Rules followed (docs/notes/bigtable-api.md §2): a row's first chunk,
//! and a cell's first chunk that begins a response, set the row key; every
//! cell's first chunk sets family, qualifier, timestamp and labels (a
//! later cell's empty key continues the row); a split value's first
//! chunk carries `value_size` (the whole length) and its continuations only
//! `value`, the last with `value_size` 0; `commit_row` goes on the row's
//! last chunk, never on one with `value_size` > 0; `reset_row` is never
//! sent (each read is one snapshot).
//!
//! One client-specific rule: the Python client checks that the *first*
//! chunk of every response carries a row key greater than the last row it
//! yielded, even when that chunk continues a split value, while the Go
//! client rejects any key on a continuation chunk. So a continuation chunk
//! that begins a response repeats the row key only for clients that need
//! it (`repeat_key_on_split`, set from the `x-goog-api-client` header).

use crate::data_pb::read_rows_response::{cell_chunk::RowStatus, CellChunk};
use crate::data_pb::ReadRowsResponse;
use strata_table::Row;

/// A read's first response is sent once it holds this many whole rows...
pub const FIRST_RESPONSE_ROWS_TARGET: usize = 4;
/// ...or this many bytes of chunks (it may exceed it by its last chunk),
/// whichever comes first. Each later response may hold twice as many rows
/// and bytes as the one before it...
pub const FIRST_RESPONSE_BYTES_TARGET: usize = 64 << 10;
/// ...up to this many bytes (the response size before responses grew).
pub const RESPONSE_BYTES_TARGET_MAX: usize = 1 << 20;
/// Values longer than this are split across chunks.
pub const CHUNK_VALUE_BYTES_MAX: usize = 1 << 20;

/// Accumulates chunks into responses.
pub struct ChunkWriter {
    /// Repeat the row key on a continuation chunk that begins a response.
    pub repeat_key_on_split: bool,
    chunks: Vec<CellChunk>,
    bytes: usize,
    /// Rows committed in `chunks`.
    rows: usize,
    /// The bounds of the response being filled.
    rows_target: usize,
    bytes_target: usize,
    ready: Vec<ReadRowsResponse>,
}

impl Default for ChunkWriter {
    fn default() -> ChunkWriter {
        ChunkWriter::new(false)
    }
}

impl ChunkWriter {
    /// A writer; `repeat_key_on_split` as described in the module docs.
    pub fn new(repeat_key_on_split: bool) -> ChunkWriter {
        ChunkWriter {
            repeat_key_on_split,
            chunks: Vec::new(),
            bytes: 0,
            rows: 0,
            rows_target: FIRST_RESPONSE_ROWS_TARGET,
            bytes_target: FIRST_RESPONSE_BYTES_TARGET,
            ready: Vec::new(),
        }
    }

    /// Adds a chunk; cuts a full response here only inside a row (a row's
    /// last chunk is counted and cut in `row`).
    fn push(&mut self, c: CellChunk) {
        self.bytes +=
            c.value.len() + c.row_key.len() + c.qualifier.as_ref().map_or(0, |q| q.len()) + 32;
        let inside_row = c.row_status.is_none();
        self.chunks.push(c);
        if inside_row && self.bytes >= self.bytes_target {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if !self.chunks.is_empty() {
            self.ready.push(ReadRowsResponse {
                chunks: std::mem::take(&mut self.chunks),
                ..Default::default()
            });
            self.bytes = 0;
            self.rows = 0;
            self.rows_target = self.rows_target.saturating_mul(2);
            self.bytes_target = (2 * self.bytes_target).min(RESPONSE_BYTES_TARGET_MAX);
        }
    }

    /// Appends one row (which has at least one cell).
    pub fn row(&mut self, row: Row) {
        debug_assert!(!row.cells.is_empty());
        let n = row.cells.len();
        for (i, cell) in row.cells.into_iter().enumerate() {
            let last_cell = i + 1 == n;
            let header = CellChunk {
                // On the row's first chunk, and on a cell that begins a
                // response (the Python client wants a key on every
                // response's first chunk); a later cell's empty key
                // continues the row, and the key is not copied per cell.
                row_key: if i == 0 || self.chunks.is_empty() {
                    row.key.clone()
                } else {
                    Vec::new()
                },
                family_name: Some(cell.family),
                qualifier: Some(cell.qualifier),
                timestamp_micros: cell.timestamp_micros,
                labels: cell.labels,
                ..Default::default()
            };
            let total = cell.value.len();
            if total <= CHUNK_VALUE_BYTES_MAX {
                self.push(CellChunk {
                    value: cell.value,
                    row_status: last_cell.then_some(RowStatus::CommitRow(true)),
                    ..header
                });
                continue;
            }
            let pieces: Vec<&[u8]> = cell.value.chunks(CHUNK_VALUE_BYTES_MAX).collect();
            let k = pieces.len();
            for (j, piece) in pieces.into_iter().enumerate() {
                let last_piece = j + 1 == k;
                let base = if j == 0 {
                    header.clone()
                } else if self.repeat_key_on_split && self.chunks.is_empty() {
                    CellChunk {
                        row_key: row.key.clone(),
                        ..CellChunk::default()
                    }
                } else {
                    CellChunk::default()
                };
                self.push(CellChunk {
                    value: piece.to_vec(),
                    value_size: if last_piece { 0 } else { total as i32 },
                    row_status: (last_piece && last_cell).then_some(RowStatus::CommitRow(true)),
                    ..base
                });
            }
        }
        self.rows += 1;
        if self.rows >= self.rows_target || self.bytes >= self.bytes_target {
            self.cut();
        }
    }

    /// Responses that are full.
    pub fn take_ready(&mut self) -> Vec<ReadRowsResponse> {
        std::mem::take(&mut self.ready)
    }

    /// Every remaining response.
    pub fn finish(mut self) -> Vec<ReadRowsResponse> {
        self.cut();
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_table::Cell;

    fn cell(q: &str, len: usize) -> Cell {
        Cell {
            family: "f".into(),
            qualifier: q.as_bytes().to_vec(),
            timestamp_micros: 1000,
            value: (0..len).map(|i| i as u8).collect(),
            labels: vec![],
        }
    }

    #[test]
    fn large_values_split_and_reassemble() {
        let mut w = ChunkWriter::default();
        let big = 3 * CHUNK_VALUE_BYTES_MAX + 17;
        w.row(Row {
            key: b"r".to_vec(),
            cells: vec![cell("a", 5), cell("b", big), cell("c", 0)],
        });
        let out = w.finish();
        assert!(out.len() >= 3, "responses stay near the target size");
        let chunks: Vec<&CellChunk> = out.iter().flat_map(|r| &r.chunks).collect();
        // a, b in 4 pieces, c.
        assert_eq!(chunks.len(), 6);
        assert_eq!(chunks[1].value_size as usize, big);
        assert!(chunks[2].family_name.is_none() && chunks[2].row_key.is_empty());
        assert_eq!(chunks[4].value_size, 0);
        let joined: Vec<u8> = chunks[1..5].iter().flat_map(|c| c.value.clone()).collect();
        assert_eq!(joined, cell("b", big).value);
        assert!(chunks[..5].iter().all(|c| c.row_status.is_none()));
        assert_eq!(chunks[5].row_status, Some(RowStatus::CommitRow(true)));
        for r in &out {
            let size: usize = r.chunks.iter().map(|c| c.value.len()).sum();
            assert!(size <= RESPONSE_BYTES_TARGET_MAX + CHUNK_VALUE_BYTES_MAX);
        }
    }

    fn small_row(key: &str, cells: usize, len: usize) -> Row {
        Row {
            key: key.as_bytes().to_vec(),
            cells: (0..cells).map(|i| cell(&format!("q{i}"), len)).collect(),
        }
    }

    /// (rows committed, chunk bytes) of each response.
    fn shape(out: &[ReadRowsResponse]) -> Vec<(usize, usize)> {
        out.iter()
            .map(|r| {
                let rows = r.chunks.iter().filter(|c| c.row_status.is_some()).count();
                (rows, r.chunks.iter().map(|c| c.value.len()).sum())
            })
            .collect()
    }

    #[test]
    fn responses_of_small_rows_start_at_a_few_rows_and_double() {
        let mut w = ChunkWriter::default();
        let mut sizes = Vec::new();
        let mut rows_written = 0;
        for i in 0..61 {
            w.row(small_row(&format!("r{i:03}"), 4, 10));
            rows_written += 1;
            // A response is ready as soon as its last row is written.
            for r in w.take_ready() {
                sizes.push(shape(&[r])[0].0);
                assert_eq!(sizes.iter().sum::<usize>(), rows_written);
            }
        }
        assert_eq!(sizes, [4, 8, 16, 32]);
        assert_eq!(FIRST_RESPONSE_ROWS_TARGET, 4);
        assert_eq!(shape(&w.finish()), vec![(1, 40)]);
    }

    #[test]
    fn responses_of_large_rows_are_cut_by_bytes_and_double() {
        // Rows of about a third of the first byte target: three fill the
        // first response, the third ending it; six the second.
        let mut w = ChunkWriter::default();
        for i in 0..9 {
            w.row(small_row(
                &format!("r{i}"),
                4,
                FIRST_RESPONSE_BYTES_TARGET / 12,
            ));
        }
        let sizes = shape(&w.finish());
        assert_eq!(sizes.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 6]);
        // A response crossing its target inside a row is cut there and the
        // row continues in the next one.
        let third = FIRST_RESPONSE_BYTES_TARGET / 3;
        let mut w = ChunkWriter::default();
        w.row(small_row("wide", 8, third));
        assert_eq!(shape(&w.finish()), vec![(0, 3 * third), (1, 5 * third)]);
    }

    #[test]
    fn responses_grow_to_the_maximum_and_stay_there() {
        // Rows of one 64 KiB value: the bytes bound every response, each
        // cut at the first row reaching its target.
        let mut w = ChunkWriter::default();
        let row_value = 64 << 10;
        for i in 0..100 {
            w.row(small_row(&format!("r{i:04}"), 1, row_value));
        }
        let sizes: Vec<usize> = shape(&w.finish()).iter().map(|s| s.1).collect();
        let want = |n: usize| (FIRST_RESPONSE_BYTES_TARGET << n).min(RESPONSE_BYTES_TARGET_MAX);
        let (full, last) = sizes.split_at(sizes.len() - 1);
        assert!(full.len() > 6, "{sizes:?}");
        for (n, &size) in full.iter().enumerate() {
            assert_eq!(size, want(n), "response {n}");
        }
        assert!(last[0] <= RESPONSE_BYTES_TARGET_MAX);
    }

    #[test]
    fn continuation_chunks_repeat_the_key_only_at_a_response_start_when_asked() {
        for repeat in [false, true] {
            let mut w = ChunkWriter::new(repeat);
            w.row(Row {
                key: b"r".to_vec(),
                cells: vec![cell("a", 3 * CHUNK_VALUE_BYTES_MAX)],
            });
            for (i, resp) in w.finish().iter().enumerate() {
                for (j, c) in resp.chunks.iter().enumerate() {
                    let keyed = j == 0 && (i == 0 || repeat);
                    assert_eq!(!c.row_key.is_empty(), keyed, "response {i} chunk {j}");
                }
            }
        }
    }

    #[test]
    fn only_a_rows_first_chunk_carries_its_key() {
        let mut w = ChunkWriter::default();
        w.row(small_row("r1", 3, 10));
        w.row(small_row("r2", 2, 10));
        let out = w.finish();
        let keys: Vec<&[u8]> = out
            .iter()
            .flat_map(|r| &r.chunks)
            .map(|c| c.row_key.as_slice())
            .collect();
        assert_eq!(keys, [&b"r1"[..], b"", b"", b"r2", b""]);
        // A response cut inside a row starts with a key all the same.
        let third = FIRST_RESPONSE_BYTES_TARGET / 3;
        let mut w = ChunkWriter::default();
        w.row(small_row("wide", 8, third));
        let out = w.finish();
        assert_eq!(out.len(), 2);
        for (i, r) in out.iter().enumerate() {
            let keyed: Vec<bool> = r.chunks.iter().map(|c| !c.row_key.is_empty()).collect();
            assert!(keyed[0], "response {i} starts without a key");
            assert!(keyed[1..].iter().all(|k| !k), "response {i}: {keyed:?}");
        }
        // Every cell still names its column.
        assert!(out
            .iter()
            .flat_map(|r| &r.chunks)
            .all(|c| c.family_name.is_some() && c.qualifier.is_some()));
    }

    #[test]
    fn a_split_value_ending_the_row_commits_on_its_last_piece() {
        let mut w = ChunkWriter::default();
        w.row(Row {
            key: b"r".to_vec(),
            cells: vec![cell("a", CHUNK_VALUE_BYTES_MAX + 1)],
        });
        let out = w.finish();
        let chunks: Vec<&CellChunk> = out.iter().flat_map(|r| &r.chunks).collect();
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].row_status.is_none() && chunks[0].value_size > 0);
        assert_eq!(chunks[1].row_status, Some(RowStatus::CommitRow(true)));
        assert_eq!(chunks[1].value_size, 0);
    }
}
