//! Write batches: atomic groups of operations on one or more trees.
//!
//! A batch keeps its operations already encoded in the commit-log payload
//! format (docs/formats/commit-log.md), so logging a batch copies its bytes
//! once and re-encodes nothing:
//!
//! ```text
//! payload := count varint, op*
//! op      := kind u8, tree varint, key len-prefixed, [value len-prefixed]
//! ```
//!
//! The value is absent for `Delete`. Operation `i` of a batch logged with
//! first sequence number `s` gets sequence number `s + i`.

use crate::coding::{get_varint, put_len_prefixed, put_varint, varint_len};
use crate::error::{Error, Result};
use crate::key::ValueKind;

/// Identifies one tree (tablet) of the engine inside a shared log record.
pub type TreeId = u32;

/// One operation of a batch, borrowing its key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOp<'a> {
    /// The tree the operation applies to.
    pub tree: TreeId,
    /// Put, Delete or Merge.
    pub kind: ValueKind,
    /// The user key.
    pub key: &'a [u8],
    /// The value or merge operand; empty for `Delete`.
    pub value: &'a [u8],
}

/// An ordered group of operations, applied atomically.
#[derive(Clone, Debug)]
pub struct WriteBatch {
    /// The encoded payload: the count varint, then the operations.
    rep: Vec<u8>,
    count: u32,
    /// The first tree touched (None while the batch is empty): most
    /// batches touch one, and then need no allocation for it.
    first_tree: Option<TreeId>,
    /// The other distinct trees touched, in first-touch order.
    more_trees: Vec<TreeId>,
}

impl Default for WriteBatch {
    fn default() -> Self {
        WriteBatch::new()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0],
            count: 0,
            first_tree: None,
            more_trees: Vec::new(),
        }
    }

    /// An empty batch with room for `bytes` of encoded operations.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut rep = Vec::with_capacity(bytes.saturating_add(1));
        rep.push(0);
        WriteBatch {
            rep,
            count: 0,
            first_tree: None,
            more_trees: Vec::new(),
        }
    }

    /// Makes room for at least `bytes` more of encoded operations.
    pub fn reserve(&mut self, bytes: usize) {
        self.rep.reserve(bytes);
    }

    /// Sets `key` to `value` in `tree`.
    pub fn put(&mut self, tree: TreeId, key: &[u8], value: &[u8]) {
        self.push(tree, ValueKind::Put, key, Some(value));
    }

    /// Deletes `key` from `tree`.
    pub fn delete(&mut self, tree: TreeId, key: &[u8]) {
        self.push(tree, ValueKind::Delete, key, None);
    }

    /// Adds a merge operand for `key` in `tree`.
    pub fn merge(&mut self, tree: TreeId, key: &[u8], operand: &[u8]) {
        self.push(tree, ValueKind::Merge, key, Some(operand));
    }

    fn push(&mut self, tree: TreeId, kind: ValueKind, key: &[u8], value: Option<&[u8]>) {
        debug_assert_eq!(value.is_none(), kind == ValueKind::Delete);
        debug_assert!(
            self.count < u32::MAX,
            "write batch holds too many operations"
        );
        self.set_count(self.count + 1);
        self.rep.push(kind as u8);
        put_varint(&mut self.rep, u64::from(tree));
        put_len_prefixed(&mut self.rep, key);
        if let Some(v) = value {
            put_len_prefixed(&mut self.rep, v);
        }
        match self.first_tree {
            None => self.first_tree = Some(tree),
            Some(first) if first == tree => {}
            Some(_) => {
                if self.more_trees.last() != Some(&tree) && !self.more_trees.contains(&tree) {
                    self.more_trees.push(tree);
                }
            }
        }
    }

    /// Rewrites the leading count varint. It grows by one byte only when the
    /// count crosses 2^7, 2^14, 2^21 or 2^28, so the shift is amortized away.
    fn set_count(&mut self, count: u32) {
        let old_len = varint_len(u64::from(self.count));
        let new_len = varint_len(u64::from(count));
        let mut head = [0u8; 5];
        let mut n = 0;
        let mut v = count;
        while v >= 0x80 {
            head[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        head[n] = v as u8;
        debug_assert_eq!(n + 1, new_len);
        if old_len == new_len {
            self.rep[..new_len].copy_from_slice(&head[..new_len]);
        } else {
            self.rep.splice(..old_len, head[..new_len].iter().copied());
        }
        self.count = count;
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the encoded payload in bytes.
    pub fn size_bytes(&self) -> usize {
        self.rep.len()
    }

    /// Removes every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.push(0);
        self.count = 0;
        self.first_tree = None;
        self.more_trees.clear();
    }

    /// The encoded form, as written in a commit-log record.
    pub fn payload(&self) -> &[u8] {
        &self.rep
    }

    /// The operations in order.
    pub fn iter(&self) -> BatchIter<'_> {
        let skip = varint_len(u64::from(self.count));
        BatchIter {
            ops: Cursor {
                buf: &self.rep,
                pos: skip,
            },
            remaining: self.count,
        }
    }

    /// The distinct trees the batch touches, in order of first use.
    pub fn trees(&self) -> impl Iterator<Item = TreeId> + '_ {
        self.first_tree
            .into_iter()
            .chain(self.more_trees.iter().copied())
    }
}

impl<'a> IntoIterator for &'a WriteBatch {
    type Item = BatchOp<'a>;
    type IntoIter = BatchIter<'a>;

    fn into_iter(self) -> BatchIter<'a> {
        self.iter()
    }
}

/// Iterator over the operations of a `WriteBatch`.
pub struct BatchIter<'a> {
    ops: Cursor<'a>,
    remaining: u32,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchOp<'a>;

    fn next(&mut self) -> Option<BatchOp<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.ops.op("write batch") {
            Ok(op) => Some(op),
            Err(e) => {
                // A WriteBatch only ever holds what it encoded itself.
                debug_assert!(false, "write batch failed to decode itself: {e}");
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Exact: both constructors guarantee `remaining` valid operations.
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

/// Smallest encoding of one operation: kind, tree, empty key.
const OP_BYTES_MIN: usize = 3;

/// A decoding position in a payload. (Unlike `coding::Reader`, the file
/// name used in errors need not live as long as the payload.)
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[cold]
    #[inline(never)]
    fn err(&self, file: &str, what: &str) -> Error {
        Error::corruption(
            file,
            format!("write batch: truncated or bad {what} at byte {}", self.pos),
        )
    }

    #[inline]
    fn varint(&mut self, file: &str, what: &str) -> Result<u64> {
        // One byte: a tree id, and the length of any key or value under
        // 128 bytes (nearly every varint a batch holds).
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let (v, n) = get_varint(rest).ok_or_else(|| self.err(file, what))?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn len_prefixed(&mut self, file: &str, what: &str) -> Result<&'a [u8]> {
        let len = self.varint(file, what)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.err(file, what))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn op(&mut self, file: &str) -> Result<BatchOp<'a>> {
        let at = self.pos;
        let kind_byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err(file, "operation kind"))?;
        self.pos += 1;
        let kind = ValueKind::from_u8(kind_byte).ok_or_else(|| {
            Error::corruption(
                file,
                format!("write batch: unknown operation kind {kind_byte} at byte {at}"),
            )
        })?;
        let tree = self.varint(file, "tree id")?;
        let tree = TreeId::try_from(tree).map_err(|_| {
            Error::corruption(
                file,
                format!("write batch: tree id {tree} out of range at byte {at}"),
            )
        })?;
        let key = self.len_prefixed(file, "key")?;
        let value = match kind {
            ValueKind::Delete => &[][..],
            ValueKind::Put | ValueKind::Merge => self.len_prefixed(file, "value")?,
        };
        Ok(BatchOp {
            tree,
            kind,
            key,
            value,
        })
    }
}

/// Reads the operation count at the front of a payload.
pub fn payload_count(payload: &[u8], file: &str) -> Result<u32> {
    let count = Cursor {
        buf: payload,
        pos: 0,
    }
    .varint(file, "operation count")?;
    u32::try_from(count).map_err(|_| {
        Error::corruption(
            file,
            format!("write batch: operation count {count} out of range"),
        )
    })
}

/// Checks a whole payload read back from the log and returns its operation
/// count: Corruption (naming `file`) on a truncated field, an unknown kind,
/// a tree id above u32, a count that does not match the operations, or
/// trailing bytes. Allocates nothing.
pub fn validate_payload(payload: &[u8], file: &str) -> Result<u32> {
    let mut cur = Cursor {
        buf: payload,
        pos: 0,
    };
    let count = cur.varint(file, "operation count")?;
    if count > (payload.len() / OP_BYTES_MIN) as u64 {
        return Err(Error::corruption(
            file,
            format!(
                "write batch: {} bytes cannot hold {count} operations",
                payload.len()
            ),
        ));
    }
    for _ in 0..count {
        cur.op(file)?;
    }
    if cur.pos != payload.len() {
        return Err(Error::corruption(
            file,
            format!(
                "write batch: {} trailing bytes after {count} operations",
                payload.len() - cur.pos
            ),
        ));
    }
    u32::try_from(count).map_err(|_| {
        Error::corruption(
            file,
            format!("write batch: operation count {count} out of range"),
        )
    })
}

/// Validates a payload fully (as `validate_payload`), then iterates over
/// its operations without allocating.
pub fn iter_payload<'a>(payload: &'a [u8], file: &str) -> Result<BatchIter<'a>> {
    let count = validate_payload(payload, file)?;
    let skip = get_varint(payload).map_or(0, |(_, n)| n);
    Ok(BatchIter {
        ops: Cursor {
            buf: payload,
            pos: skip,
        },
        remaining: count,
    })
}

/// Decodes a payload read back from the log into its operations,
/// validating all of it (as `validate_payload`).
pub fn decode_payload<'a>(payload: &'a [u8], file: &str) -> Result<Vec<BatchOp<'a>>> {
    Ok(iter_payload(payload, file)?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(1, b"k1", b"v1");
        b.delete(7, b"k2");
        b.merge(1, b"", b"operand");
        b.put(u32::MAX, b"k3", b"");
        b
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(b.len(), 4);
        assert_eq!(b.trees().collect::<Vec<_>>(), [1, 7, u32::MAX]);
        let want = vec![
            BatchOp {
                tree: 1,
                kind: ValueKind::Put,
                key: b"k1",
                value: b"v1",
            },
            BatchOp {
                tree: 7,
                kind: ValueKind::Delete,
                key: b"k2",
                value: b"",
            },
            BatchOp {
                tree: 1,
                kind: ValueKind::Merge,
                key: b"",
                value: b"operand",
            },
            BatchOp {
                tree: u32::MAX,
                kind: ValueKind::Put,
                key: b"k3",
                value: b"",
            },
        ];
        assert_eq!(b.iter().collect::<Vec<_>>(), want);
        assert_eq!(decode_payload(b.payload(), "f").unwrap(), want);
        assert_eq!(payload_count(b.payload(), "f").unwrap(), 4);
        assert_eq!(validate_payload(b.payload(), "f").unwrap(), 4);
        assert!(iter_payload(b.payload(), "f")
            .unwrap()
            .eq(want.iter().copied()));
        assert_eq!(b.iter().len(), 4);
        assert_eq!(b.size_bytes(), b.payload().len());
    }

    #[test]
    fn empty_and_clear() {
        let mut b = sample();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.trees().count(), 0);
        assert_eq!(b.payload(), &[0]);
        assert!(decode_payload(b.payload(), "f").unwrap().is_empty());
        assert_eq!(b.iter().count(), 0);
        assert_eq!(WriteBatch::default().payload(), &[0]);
    }

    #[test]
    fn count_varint_grows() {
        let mut b = WriteBatch::with_capacity(64);
        for i in 0..20_000u32 {
            b.put(i % 3, &i.to_le_bytes(), b"v");
        }
        assert_eq!(b.len(), 20_000);
        let ops = decode_payload(b.payload(), "f").unwrap();
        assert_eq!(ops.len(), 20_000);
        assert_eq!(ops[19_999].key, &19_999u32.to_le_bytes());
        assert!(b.iter().eq(ops.into_iter()));
        assert_eq!(b.trees().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn malformed_payloads_are_corruption() {
        let good = sample().payload().to_vec();
        // Every strict prefix is truncated (or has a count mismatch).
        for cut in 0..good.len() {
            let e = decode_payload(&good[..cut], "seg").unwrap_err();
            assert!(e.is_corruption(), "prefix {cut}: {e}");
            assert!(validate_payload(&good[..cut], "seg").is_err());
            assert!(iter_payload(&good[..cut], "seg").is_err());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_payload(&trailing, "seg")
            .unwrap_err()
            .is_corruption());
        let mut bad_kind = good.clone();
        bad_kind[1] = 9;
        assert!(decode_payload(&bad_kind, "seg")
            .unwrap_err()
            .is_corruption());
        let mut big_count = good.clone();
        big_count[0] = 5;
        assert!(decode_payload(&big_count, "seg")
            .unwrap_err()
            .is_corruption());
        // A huge count must not allocate.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode_payload(&huge, "seg").unwrap_err().is_corruption());
        assert!(payload_count(&huge, "seg").unwrap_err().is_corruption());
        // Tree id beyond u32.
        let mut wide_tree = vec![1, 1];
        put_varint(&mut wide_tree, u64::from(u32::MAX) + 1);
        wide_tree.extend_from_slice(&[0, 0]);
        let e = decode_payload(&wide_tree, "seg").unwrap_err();
        assert!(e.to_string().contains("seg"), "{e}");
    }
}
