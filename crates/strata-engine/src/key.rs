//! Internal keys: a user key followed by an 8-byte trailer that packs the
//! sequence number and the value kind. Specified in docs/formats/keys.md.
//!
//! Order: user key ascending (bytewise), then trailer descending, so the
//! newest version of a key comes first.

use std::cmp::Ordering;

/// A sequence number: every operation written to the engine gets one.
pub type SeqNo = u64;

/// Largest sequence number that fits in the trailer (56 bits).
pub const SEQ_MAX: SeqNo = (1 << 56) - 1;

/// Length of the trailer appended to every user key.
pub const TRAILER_LEN: usize = 8;

/// What an entry is. Stored on disk in log records and SSTables:
/// NEVER renumber these tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: hides every older version of the key.
    Delete = 0,
    /// A full value.
    Put = 1,
    /// A merge operand, combined with older versions by the tree's merge operator.
    Merge = 2,
}

impl ValueKind {
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::Merge),
            _ => None,
        }
    }
}

pub fn pack_trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    debug_assert!(seq <= SEQ_MAX, "sequence number {seq} exceeds 56 bits");
    (seq << 8) | kind as u64
}

/// Appends the internal key for (user_key, seq, kind) to `dst`.
pub fn append_internal_key(dst: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut v, user_key, seq, kind);
    v
}

/// The smallest internal key for `user_key` visible at `seq`: seeking to it
/// lands on the newest version with sequence <= `seq`.
/// Its kind byte is 0xff, above every real kind, so it sorts first among
/// entries of the same sequence number; it is never stored.
pub fn lookup_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    debug_assert!(seq <= SEQ_MAX);
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    v.extend_from_slice(user_key);
    v.extend_from_slice(&((seq << 8) | 0xff).to_le_bytes());
    v
}

/// A decoded view of an internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    pub kind: ValueKind,
}

/// Splits an internal key; `None` if it is too short or has an unknown kind.
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    if ikey.len() < TRAILER_LEN {
        return None;
    }
    let (user_key, trailer) = ikey.split_at(ikey.len() - TRAILER_LEN);
    let t = u64::from_le_bytes(trailer.try_into().ok()?);
    let kind = ValueKind::from_u8((t & 0xff) as u8)?;
    Some(ParsedKey {
        user_key,
        seq: t >> 8,
        kind,
    })
}

/// The user-key part of an internal key (panics on keys shorter than the
/// trailer, which never pass decoding).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len() - TRAILER_LEN]
}

fn trailer(ikey: &[u8]) -> u64 {
    let t = &ikey[ikey.len() - TRAILER_LEN..];
    u64::from_le_bytes(t.try_into().expect("8-byte trailer"))
}

/// Bytewise order, comparing 8 bytes at a time: short keys are the common
/// case and a libc memcmp call costs more than the comparison itself.
#[inline]
pub fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

/// The sequence number in an internal (or lookup) key's trailer.
pub fn seq_of(ikey: &[u8]) -> SeqNo {
    trailer(ikey) >> 8
}

/// Total order of internal keys: user key ascending, trailer descending.
#[inline]
pub fn cmp_internal(a: &[u8], b: &[u8]) -> Ordering {
    match cmp_bytes(user_key(a), user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        o => o,
    }
}

/// An unsized internal key with the internal order, so ordered maps keyed by
/// owned internal keys can be searched with borrowed ones.
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct IKey(pub [u8]);

impl IKey {
    pub fn new(bytes: &[u8]) -> &IKey {
        // SAFETY: IKey is repr(transparent) over [u8].
        unsafe { &*(bytes as *const [u8] as *const IKey) }
    }
}

impl Ord for IKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_internal(&self.0, &other.0)
    }
}

impl PartialOrd for IKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_bytes_is_bytewise_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefghi",
            b"abcdefgi",
            b"b",
            b"\xff\x00",
            b"\xff",
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn order_newest_first_and_user_key_major() {
        let a5 = internal_key(b"a", 5, ValueKind::Put);
        let a9 = internal_key(b"a", 9, ValueKind::Put);
        let ab1 = internal_key(b"ab", 1, ValueKind::Put);
        assert_eq!(cmp_internal(&a9, &a5), Ordering::Less);
        assert_eq!(cmp_internal(&a5, &ab1), Ordering::Less);
        assert_eq!(cmp_internal(&lookup_key(b"a", 9), &a9), Ordering::Less);
        assert_eq!(cmp_internal(&lookup_key(b"a", 7), &a5), Ordering::Less);
        let p = parse_internal_key(&a9).unwrap();
        assert_eq!((p.user_key, p.seq, p.kind), (&b"a"[..], 9, ValueKind::Put));
    }
}
