//! A cursor over all entries of a table: the in-memory index picks the
//! data block, a `BlockIter` walks it.

use std::sync::Arc;

use super::block::BlockCorrupt;
use super::block_iter::BlockIter;
use super::reader::Table;
use crate::error::Result;
use crate::iter::InternalIterator;

/// Iterates a table's entries in internal order; cheap to create.
pub struct TableIterator {
    table: Arc<Table>,
    fill_cache: bool,
    /// Index of the data block loaded in `data` (if it has one).
    block_idx: usize,
    data: BlockIter,
}

impl std::fmt::Debug for TableIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableIterator")
            .field("table", &self.table.file_number())
            .field("block_idx", &self.block_idx)
            .field("valid", &self.data.valid())
            .finish()
    }
}

impl TableIterator {
    pub(crate) fn new(table: Arc<Table>, fill_cache: bool) -> TableIterator {
        TableIterator {
            table,
            fill_cache,
            block_idx: 0,
            data: BlockIter::new(),
        }
    }

    /// The table iterated.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// Makes data block `i` current (unpositioned); reuses it if loaded.
    fn load_block(&mut self, i: usize) -> Result<()> {
        if self.data.has_block() && self.block_idx == i {
            self.data.invalidate();
            return Ok(());
        }
        match self.table.data_block(i, self.fill_cache) {
            Ok(block) => {
                self.data.set_block(block);
                self.block_idx = i;
                Ok(())
            }
            Err(e) => {
                self.data.invalidate();
                Err(e)
            }
        }
    }

    /// Maps a block decoding failure to a corruption error naming the file.
    fn check(&mut self, r: Result<(), BlockCorrupt>) -> Result<()> {
        r.map_err(|e| {
            self.data.invalidate();
            self.table.block_corruption(self.block_idx, e.0)
        })
    }

    /// Moves forward over exhausted blocks to the next entry.
    fn skip_forward(&mut self) -> Result<()> {
        while !self.data.valid() {
            let next = self.block_idx + 1;
            if !self.data.has_block() || next >= self.table.num_data_blocks() {
                return Ok(());
            }
            self.load_block(next)?;
            let r = self.data.seek_to_first();
            self.check(r)?;
        }
        Ok(())
    }

    /// Moves backward over exhausted blocks to the previous entry.
    fn skip_backward(&mut self) -> Result<()> {
        while !self.data.valid() {
            if !self.data.has_block() || self.block_idx == 0 {
                return Ok(());
            }
            self.load_block(self.block_idx - 1)?;
            let r = self.data.seek_to_last();
            self.check(r)?;
        }
        Ok(())
    }
}

impl InternalIterator for TableIterator {
    #[inline]
    fn valid(&self) -> bool {
        self.data.valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.load_block(0)?;
        let r = self.data.seek_to_first();
        self.check(r)?;
        self.skip_forward()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let n = self.table.num_data_blocks();
        self.load_block(n - 1)?;
        let r = self.data.seek_to_last();
        self.check(r)?;
        self.skip_backward()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self.table.find_block(target);
        if i >= self.table.num_data_blocks() {
            self.data.invalidate();
            return Ok(());
        }
        self.load_block(i)?;
        let r = self.data.seek(target);
        self.check(r)?;
        self.skip_forward()
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        // Every key of later blocks is > target: the answer is in block i
        // (the first whose separator is >= target) or before it.
        let n = self.table.num_data_blocks();
        let i = self.table.find_block(target).min(n - 1);
        self.load_block(i)?;
        let r = self.data.seek_for_prev(target);
        self.check(r)?;
        self.skip_backward()
    }

    #[inline]
    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        let r = self.data.next();
        self.check(r)?;
        if !self.data.valid() {
            return self.skip_forward();
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid());
        let r = self.data.prev();
        self.check(r)?;
        if !self.data.valid() {
            return self.skip_backward();
        }
        Ok(())
    }

    #[inline]
    fn key(&self) -> &[u8] {
        self.data.key()
    }

    #[inline]
    fn value(&self) -> &[u8] {
        self.data.value()
    }
}
