//! A strict reassembler of ReadRows responses: it checks the chunk
//! protocol (docs/notes/bigtable-api.md §2) and returns rows.

use super::{Cell, Row};
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;

/// Everything a ReadRows stream returned.
#[derive(Debug, Default)]
pub struct ReadOut {
    pub rows: Vec<Row>,
    pub stats: Option<v2::RequestStats>,
    pub responses: usize,
}

/// Reassembles ReadRows responses, checking the chunk protocol strictly.
pub struct Reassembler {
    reversed: bool,
    out: ReadOut,
    last_key: Option<Vec<u8>>,
    row: Option<Row>,
    family: Option<String>,
    qualifier: Option<Vec<u8>>,
    /// A split value in progress: the cell header, the bytes so far, the
    /// announced total.
    partial: Option<(Cell, usize)>,
}

impl Reassembler {
    pub fn new(reversed: bool) -> Reassembler {
        Reassembler {
            reversed,
            out: ReadOut::default(),
            last_key: None,
            row: None,
            family: None,
            qualifier: None,
            partial: None,
        }
    }

    fn key_after_last(&self, key: &[u8]) -> bool {
        match &self.last_key {
            None => true,
            Some(l) if self.reversed => key < l.as_slice(),
            Some(l) => key > l.as_slice(),
        }
    }

    pub fn response(&mut self, r: v2::ReadRowsResponse) {
        assert!(
            self.out.stats.is_none(),
            "a response came after the request stats"
        );
        self.out.responses += 1;
        if let Some(stats) = r.request_stats {
            assert!(
                r.chunks.is_empty(),
                "request stats ride a response with no chunks"
            );
            self.out.stats = Some(stats);
        }
        if !r.last_scanned_row_key.is_empty() {
            assert!(r.chunks.is_empty(), "last_scanned_row_key with chunks");
            assert!(self.row.is_none(), "last_scanned_row_key inside a row");
            assert!(self.key_after_last(&r.last_scanned_row_key));
            self.last_key = Some(r.last_scanned_row_key);
        }
        for c in r.chunks {
            self.chunk(c);
        }
    }

    fn chunk(&mut self, c: v2::read_rows_response::CellChunk) {
        use v2::read_rows_response::cell_chunk::RowStatus;
        let commit = match c.row_status {
            None => false,
            Some(RowStatus::CommitRow(b)) => {
                assert!(b, "commit_row=false is set explicitly");
                true
            }
            Some(RowStatus::ResetRow(_)) => panic!("reset_row is never sent"),
        };
        assert!(c.value_size >= 0, "negative value_size");
        if let Some((mut cell, total)) = self.partial.take() {
            // A continuation: only the value (and value_size while not final).
            assert!(c.row_key.is_empty(), "row key on a continuation chunk");
            assert!(c.family_name.is_none(), "family on a continuation chunk");
            assert!(c.qualifier.is_none(), "qualifier on a continuation chunk");
            assert_eq!(c.timestamp_micros, 0, "timestamp on a continuation chunk");
            assert!(c.labels.is_empty(), "labels on a continuation chunk");
            cell.3.extend_from_slice(&c.value);
            assert!(cell.3.len() <= total, "value longer than its value_size");
            if c.value_size > 0 {
                assert_eq!(c.value_size as usize, total, "value_size changed");
                assert!(!commit, "commit_row on a chunk with value_size > 0");
                self.partial = Some((cell, total));
                return;
            }
            assert_eq!(cell.3.len(), total, "split value length != value_size");
            self.finish_cell(cell, commit);
            return;
        }
        match &mut self.row {
            None => {
                assert!(!c.row_key.is_empty(), "a row's first chunk has no key");
                assert!(
                    c.family_name.as_ref().is_some_and(|f| !f.is_empty()),
                    "a row's first chunk has no family"
                );
                assert!(
                    c.qualifier.is_some(),
                    "a row's first chunk has no qualifier"
                );
                assert!(
                    self.key_after_last(&c.row_key),
                    "row keys out of order: {:?} after {:?}",
                    c.row_key,
                    self.last_key
                );
                self.row = Some((c.row_key.clone(), Vec::new()));
            }
            Some((key, _)) => {
                assert!(
                    c.row_key.is_empty() || c.row_key == *key,
                    "row key changed inside a row"
                );
            }
        }
        if let Some(f) = &c.family_name {
            assert!(!f.is_empty(), "empty family name");
            assert!(c.qualifier.is_some(), "a new family without a qualifier");
            self.family = Some(f.clone());
        }
        if let Some(q) = &c.qualifier {
            self.qualifier = Some(q.clone());
        }
        let cell: Cell = (
            self.family.clone().expect("family known"),
            self.qualifier.clone().expect("qualifier known"),
            c.timestamp_micros,
            c.value,
            c.labels,
        );
        if c.value_size > 0 {
            assert!(!commit, "commit_row on a chunk with value_size > 0");
            assert!(
                cell.3.len() < c.value_size as usize,
                "first piece is the whole value"
            );
            self.partial = Some((cell, c.value_size as usize));
            return;
        }
        self.finish_cell(cell, commit);
    }

    fn finish_cell(&mut self, cell: Cell, commit: bool) {
        let (key, cells) = self.row.as_mut().expect("a row is in progress");
        if let Some(prev) = cells.last() {
            // Standard order: families contiguous, qualifiers ascending,
            // timestamps descending (equal allowed: interleave duplicates).
            if prev.0 == cell.0 {
                assert!(
                    prev.1 < cell.1 || (prev.1 == cell.1 && prev.2 >= cell.2),
                    "cells out of order in row {key:?}: {prev:?} then {cell:?}"
                );
            } else {
                assert!(
                    !cells.iter().any(|c| c.0 == cell.0),
                    "family {} not contiguous in row {key:?}",
                    cell.0
                );
            }
        }
        cells.push(cell);
        if commit {
            let row = self.row.take().expect("row");
            self.last_key = Some(row.0.clone());
            self.family = None;
            self.qualifier = None;
            self.out.rows.push(row);
        }
    }

    pub fn finish(self) -> ReadOut {
        assert!(self.partial.is_none(), "stream ended inside a split value");
        assert!(self.row.is_none(), "stream ended with a row in progress");
        self.out
    }
}
