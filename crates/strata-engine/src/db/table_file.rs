//! Writing one new table file, for flushes and compactions alike.
//!
//! A table file that is dropped before it is finished (an error, or a
//! compaction cut short by shutdown) removes itself, so failed work leaves
//! no file behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Inner, TreeOptions};
use crate::error::Result;
use crate::manifest::{table_file_name, FileMeta};
use crate::sst::TableBuilder;
use crate::storage::Storage;

/// A table being written under a fresh file number.
pub(crate) struct TableFile {
    number: u64,
    name: String,
    /// None once finished, successfully or not.
    builder: Option<TableBuilder>,
    /// Set when the table is finished and opened: from then on its file
    /// belongs to the returned `FileMeta`.
    handed_over: bool,
    storage: Arc<dyn Storage>,
}

impl TableFile {
    pub fn create(inner: &Inner, opts: &TreeOptions) -> Result<TableFile> {
        let number = inner.versions.lock().new_file_number()?;
        let name = table_file_name(number);
        let file = inner.storage.create(&name)?;
        Ok(TableFile {
            number,
            builder: Some(TableBuilder::new(
                opts.table_builder_options(),
                file,
                name.clone(),
            )),
            name,
            handed_over: false,
            storage: inner.storage.clone(),
        })
    }

    fn builder(&mut self) -> &mut TableBuilder {
        self.builder
            .as_mut()
            .expect("a table file is used only until finished")
    }

    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.builder().add(ikey, value)
    }

    pub fn estimated_size_bytes(&self) -> u64 {
        self.builder
            .as_ref()
            .map_or(0, |b| b.estimated_size_bytes())
    }

    /// Finishes and fsyncs the table, counts its bytes in `written`, and
    /// opens it. The caller fsyncs the directory before naming the file in
    /// a manifest edit.
    pub fn finish(mut self, inner: &Inner, written: &AtomicU64) -> Result<Arc<FileMeta>> {
        let builder = self.builder.take().expect("finished once");
        let props = builder.finish()?;
        written.fetch_add(props.file_size_bytes, Ordering::Relaxed);
        let meta = FileMeta::open(
            &inner.storage,
            &inner.cache,
            self.number,
            props.file_size_bytes,
            props.smallest_key,
            props.largest_key,
            props.smallest_seq,
            props.largest_seq,
        )?;
        self.handed_over = true;
        Ok(meta)
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        if !self.handed_over {
            drop(self.builder.take()); // closes the file first
            if let Err(e) = self.storage.remove(&self.name) {
                tracing::warn!("could not remove unfinished table {}: {e}", self.name);
            }
        }
    }
}
