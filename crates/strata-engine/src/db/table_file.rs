//! Writing one new table file, for flushes and compactions alike.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::{Inner, TreeOptions};
use crate::error::Result;
use crate::manifest::{table_file_name, FileMeta};
use crate::sst::{Table, TableBuilder};

/// A table being written under a fresh file number.
pub(crate) struct TableFile {
    number: u64,
    name: String,
    builder: TableBuilder,
}

impl TableFile {
    pub fn create(inner: &Inner, opts: &TreeOptions) -> Result<TableFile> {
        let number = inner.versions.lock().new_file_number();
        let name = table_file_name(number);
        let file = inner.storage.create(&name)?;
        Ok(TableFile {
            number,
            builder: TableBuilder::new(opts.table_builder_options(), file, name.clone()),
            name,
        })
    }

    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.builder.add(ikey, value)
    }

    pub fn estimated_size_bytes(&self) -> u64 {
        self.builder.estimated_size_bytes()
    }

    /// Finishes and fsyncs the table, counts its bytes in `written`, and
    /// opens it. The caller fsyncs the directory before naming the file in
    /// a manifest edit.
    pub fn finish(self, inner: &Inner, written: &AtomicU64) -> Result<Arc<FileMeta>> {
        let props = self.builder.finish()?;
        written.fetch_add(props.file_size_bytes, std::sync::atomic::Ordering::Relaxed);
        let table = Table::open(
            inner.storage.open(&self.name)?,
            self.number,
            self.name,
            Some(inner.cache.clone()),
        )?;
        Ok(FileMeta::new(
            self.number,
            props.file_size_bytes,
            props.smallest_key.clone(),
            props.largest_key.clone(),
            props.smallest_seq,
            props.largest_seq,
            table,
            inner.storage.clone(),
            inner.cache.clone(),
        ))
    }
}
