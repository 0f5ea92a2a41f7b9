//! The ReadRows response protocol: rows as cell chunks, batched into
//! responses of about `RESPONSE_BYTES_TARGET`, with values larger than
//! `CHUNK_VALUE_BYTES_MAX` split across chunks (and responses), so no
//! message approaches a client's 4 MiB default receive limit.
//!
//! Rules followed (docs/notes/bigtable-api.md §2): every cell chunk sets
//! row key, family, qualifier, timestamp and labels; a split value's first
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

/// Responses are sent once they hold about this many bytes.
pub const RESPONSE_BYTES_TARGET: usize = 1 << 20;
/// Values longer than this are split across chunks.
pub const CHUNK_VALUE_BYTES_MAX: usize = 1 << 20;

/// Accumulates chunks into responses.
#[derive(Default)]
pub struct ChunkWriter {
    /// Repeat the row key on a continuation chunk that begins a response.
    pub repeat_key_on_split: bool,
    chunks: Vec<CellChunk>,
    bytes: usize,
    ready: Vec<ReadRowsResponse>,
}

impl ChunkWriter {
    /// A writer; `repeat_key_on_split` as described in the module docs.
    pub fn new(repeat_key_on_split: bool) -> ChunkWriter {
        ChunkWriter {
            repeat_key_on_split,
            ..ChunkWriter::default()
        }
    }

    fn push(&mut self, c: CellChunk) {
        self.bytes +=
            c.value.len() + c.row_key.len() + c.qualifier.as_ref().map_or(0, |q| q.len()) + 32;
        self.chunks.push(c);
        if self.bytes >= RESPONSE_BYTES_TARGET {
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
        }
    }

    /// Appends one row (which has at least one cell).
    pub fn row(&mut self, row: Row) {
        debug_assert!(!row.cells.is_empty());
        let n = row.cells.len();
        for (i, cell) in row.cells.into_iter().enumerate() {
            let last_cell = i + 1 == n;
            let header = CellChunk {
                row_key: row.key.clone(),
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
            assert!(size <= RESPONSE_BYTES_TARGET + CHUNK_VALUE_BYTES_MAX);
        }
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
