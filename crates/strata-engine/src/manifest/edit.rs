//! Version edits: the records of the manifest (docs/formats/manifest.md).
//!
//! An edit is a list of tagged fields; the tags are stored on disk and must
//! NEVER be renumbered. An unknown tag is corruption (a newer format).

use crate::batch::TreeId;
use crate::coding::{put_len_prefixed, put_varint, Reader};
use crate::error::{Error, Result};
use crate::key::SeqNo;

// On-disk field tags: NEVER renumber.
const TAG_NEXT_FILE_NUMBER: u64 = 1;
const TAG_LAST_SEQ: u64 = 2;
const TAG_CREATE_TREE: u64 = 3;
const TAG_DROP_TREE: u64 = 4;
const TAG_ADD_FILE: u64 = 5;
const TAG_REMOVE_FILE: u64 = 6;
const TAG_FLUSHED_SEQ: u64 = 7;
const TAG_CREATE_TABLET: u64 = 8;
const TAG_DROP_TABLET: u64 = 9;

// Flags of a created tablet (on disk: NEVER renumber).
const TABLET_HAS_HI: u64 = 1;
const TABLET_PINNED_LO: u64 = 2;

/// A tablet: the part `[lo, hi)` of a tree's keys, with its own files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTablet {
    pub id: TreeId,
    pub tree: TreeId,
    pub lo: Vec<u8>,
    /// None: unbounded above.
    pub hi: Option<Vec<u8>>,
    /// The lower boundary was asked for (a table's initial split) and is
    /// never merged away.
    pub pinned_lo: bool,
}

/// A file added to a level of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub tree: TreeId,
    pub level: u32,
    pub number: u64,
    pub size_bytes: u64,
    /// Smallest and largest internal keys.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub seq_min: SeqNo,
    pub seq_max: SeqNo,
}

/// One atomic change of the engine's file set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    pub next_file_number: Option<u64>,
    pub last_seq: Option<SeqNo>,
    pub created_trees: Vec<(TreeId, String)>,
    pub dropped_trees: Vec<TreeId>,
    pub added_files: Vec<NewFile>,
    /// (tree, level, file number)
    pub removed_files: Vec<(TreeId, u32, u64)>,
    /// Every write of the tree up to this sequence number is in its files.
    pub flushed_seqs: Vec<(TreeId, SeqNo)>,
    pub created_tablets: Vec<NewTablet>,
    pub dropped_tablets: Vec<TreeId>,
}

impl VersionEdit {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        if let Some(n) = self.next_file_number {
            put_varint(&mut b, TAG_NEXT_FILE_NUMBER);
            put_varint(&mut b, n);
        }
        if let Some(s) = self.last_seq {
            put_varint(&mut b, TAG_LAST_SEQ);
            put_varint(&mut b, s);
        }
        for (id, name) in &self.created_trees {
            put_varint(&mut b, TAG_CREATE_TREE);
            put_varint(&mut b, u64::from(*id));
            put_len_prefixed(&mut b, name.as_bytes());
        }
        for id in &self.dropped_trees {
            put_varint(&mut b, TAG_DROP_TREE);
            put_varint(&mut b, u64::from(*id));
        }
        for f in &self.added_files {
            put_varint(&mut b, TAG_ADD_FILE);
            put_varint(&mut b, u64::from(f.tree));
            put_varint(&mut b, u64::from(f.level));
            put_varint(&mut b, f.number);
            put_varint(&mut b, f.size_bytes);
            put_len_prefixed(&mut b, &f.smallest);
            put_len_prefixed(&mut b, &f.largest);
            put_varint(&mut b, f.seq_min);
            put_varint(&mut b, f.seq_max);
        }
        for (tree, level, number) in &self.removed_files {
            put_varint(&mut b, TAG_REMOVE_FILE);
            put_varint(&mut b, u64::from(*tree));
            put_varint(&mut b, u64::from(*level));
            put_varint(&mut b, *number);
        }
        for (tree, seq) in &self.flushed_seqs {
            put_varint(&mut b, TAG_FLUSHED_SEQ);
            put_varint(&mut b, u64::from(*tree));
            put_varint(&mut b, *seq);
        }
        for t in &self.created_tablets {
            put_varint(&mut b, TAG_CREATE_TABLET);
            put_varint(&mut b, u64::from(t.id));
            put_varint(&mut b, u64::from(t.tree));
            let mut flags = 0;
            if t.hi.is_some() {
                flags |= TABLET_HAS_HI;
            }
            if t.pinned_lo {
                flags |= TABLET_PINNED_LO;
            }
            put_varint(&mut b, flags);
            put_len_prefixed(&mut b, &t.lo);
            if let Some(hi) = &t.hi {
                put_len_prefixed(&mut b, hi);
            }
        }
        for id in &self.dropped_tablets {
            put_varint(&mut b, TAG_DROP_TABLET);
            put_varint(&mut b, u64::from(*id));
        }
        b
    }

    pub fn decode(bytes: &[u8], file: &str) -> Result<VersionEdit> {
        let mut r = Reader::new(bytes, file);
        let mut e = VersionEdit::default();
        let tree_id = |r: &mut Reader| -> Result<TreeId> {
            let v = r.varint()?;
            TreeId::try_from(v)
                .map_err(|_| Error::corruption(file, format!("tree id {v} out of range")))
        };
        while !r.is_empty() {
            match r.varint()? {
                TAG_NEXT_FILE_NUMBER => e.next_file_number = Some(r.varint()?),
                TAG_LAST_SEQ => e.last_seq = Some(r.varint()?),
                TAG_CREATE_TREE => {
                    let id = tree_id(&mut r)?;
                    e.created_trees.push((id, r.string()?));
                }
                TAG_DROP_TREE => e.dropped_trees.push(tree_id(&mut r)?),
                TAG_ADD_FILE => {
                    let tree = tree_id(&mut r)?;
                    let level = r.varint()?;
                    let level = u32::try_from(level).map_err(|_| {
                        Error::corruption(file, format!("level {level} out of range"))
                    })?;
                    e.added_files.push(NewFile {
                        tree,
                        level,
                        number: r.varint()?,
                        size_bytes: r.varint()?,
                        smallest: r.len_prefixed()?.to_vec(),
                        largest: r.len_prefixed()?.to_vec(),
                        seq_min: r.varint()?,
                        seq_max: r.varint()?,
                    });
                }
                TAG_REMOVE_FILE => {
                    let tree = tree_id(&mut r)?;
                    let level = r.varint()?;
                    let level = u32::try_from(level).map_err(|_| {
                        Error::corruption(file, format!("level {level} out of range"))
                    })?;
                    e.removed_files.push((tree, level, r.varint()?));
                }
                TAG_FLUSHED_SEQ => {
                    let tree = tree_id(&mut r)?;
                    e.flushed_seqs.push((tree, r.varint()?));
                }
                TAG_CREATE_TABLET => {
                    let id = tree_id(&mut r)?;
                    let tree = tree_id(&mut r)?;
                    let flags = r.varint()?;
                    if flags & !(TABLET_HAS_HI | TABLET_PINNED_LO) != 0 {
                        return Err(Error::corruption(
                            file,
                            format!("unknown tablet flags {flags:#x}"),
                        ));
                    }
                    let lo = r.len_prefixed()?.to_vec();
                    let hi = if flags & TABLET_HAS_HI != 0 {
                        Some(r.len_prefixed()?.to_vec())
                    } else {
                        None
                    };
                    if hi.as_ref().is_some_and(|hi| *hi <= lo) {
                        return Err(Error::corruption(file, format!("tablet {id} is empty")));
                    }
                    e.created_tablets.push(NewTablet {
                        id,
                        tree,
                        lo,
                        hi,
                        pinned_lo: flags & TABLET_PINNED_LO != 0,
                    });
                }
                TAG_DROP_TABLET => e.dropped_tablets.push(tree_id(&mut r)?),
                tag => {
                    return Err(Error::corruption(
                        file,
                        format!("unknown manifest tag {tag}"),
                    ))
                }
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = VersionEdit {
            next_file_number: Some(42),
            last_seq: Some(1000),
            created_trees: vec![(1, "t1".into())],
            dropped_trees: vec![3],
            added_files: vec![NewFile {
                tree: 1,
                level: 2,
                number: 7,
                size_bytes: 4096,
                smallest: b"a\0\0\0\0\0\0\0\0".to_vec(),
                largest: b"z\0\0\0\0\0\0\0\0".to_vec(),
                seq_min: 5,
                seq_max: 9,
            }],
            removed_files: vec![(1, 0, 6)],
            flushed_seqs: vec![(1, 900)],
            created_tablets: vec![
                NewTablet {
                    id: 4,
                    tree: 1,
                    lo: Vec::new(),
                    hi: Some(b"m".to_vec()),
                    pinned_lo: false,
                },
                NewTablet {
                    id: 5,
                    tree: 1,
                    lo: b"m".to_vec(),
                    hi: None,
                    pinned_lo: true,
                },
            ],
            dropped_tablets: vec![1],
        };
        assert_eq!(VersionEdit::decode(&e.encode(), "m").unwrap(), e);
        assert!(VersionEdit::decode(&[99], "m").unwrap_err().is_corruption());
        let enc = e.encode();
        assert!(VersionEdit::decode(&enc[..enc.len() - 1], "m").is_err());
    }
}
