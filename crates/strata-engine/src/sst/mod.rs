//! Sorted string tables: immutable files of sorted internal keys (docs/formats/sstable.md).
