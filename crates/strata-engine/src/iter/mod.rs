//! Iterators over internal keys, and the merge of many into one.
//!
//! Every source of entries (memtable, SSTable block, SSTable, level) exposes
//! `InternalIterator`. An iterator is used in one direction at a time: after
//! `seek`/`seek_to_first` only `next`, after `seek_for_prev`/`seek_to_last`
//! only `prev`; a new seek may change the direction. Errors (I/O,
//! corruption) are returned from the positioning call that met them.

/// A cursor over internal keys (user key + trailer) in internal order.
pub trait InternalIterator: Send {
    /// Whether the cursor is on an entry.
    fn valid(&self) -> bool;
    /// Moves to the first entry.
    fn seek_to_first(&mut self) -> crate::Result<()>;
    /// Moves to the last entry.
    fn seek_to_last(&mut self) -> crate::Result<()>;
    /// Moves to the first entry whose key is >= `target` (internal order).
    fn seek(&mut self, target: &[u8]) -> crate::Result<()>;
    /// Moves to the last entry whose key is <= `target` (internal order).
    fn seek_for_prev(&mut self, target: &[u8]) -> crate::Result<()>;
    /// Advances forward; requires `valid()`.
    fn next(&mut self) -> crate::Result<()>;
    /// Steps backward; requires `valid()`.
    fn prev(&mut self) -> crate::Result<()>;
    /// The current internal key; requires `valid()`.
    fn key(&self) -> &[u8];
    /// The current value; requires `valid()`.
    fn value(&self) -> &[u8];
}

impl<T: InternalIterator + ?Sized> InternalIterator for Box<T> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn seek_to_first(&mut self) -> crate::Result<()> {
        (**self).seek_to_first()
    }
    fn seek_to_last(&mut self) -> crate::Result<()> {
        (**self).seek_to_last()
    }
    fn seek(&mut self, target: &[u8]) -> crate::Result<()> {
        (**self).seek(target)
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> crate::Result<()> {
        (**self).seek_for_prev(target)
    }
    fn next(&mut self) -> crate::Result<()> {
        (**self).next()
    }
    fn prev(&mut self) -> crate::Result<()> {
        (**self).prev()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn value(&self) -> &[u8] {
        (**self).value()
    }
}
pub mod merge;
