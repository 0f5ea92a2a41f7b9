//! Cell keys: `(row, family, qualifier, timestamp)` encoded into one engine
//! key whose bytewise order is row ascending, family ascending, qualifier
//! ascending, timestamp descending (docs/formats/cell-key.md).
//!
//! ```text
//! key        = escaped(row) 00 01 | family 00 | escaped(qualifier) 00 01 | ts_desc:u64 BE
//! escaped(b) = b with every 00 byte written as 00 FF
//! ts_desc    = u64::MAX - timestamp_micros        (timestamps are >= 0)
//! ```
//!
//! Escaping keeps the order of the raw bytes and makes the `00 01`
//! terminator impossible inside a field, so every row's cells are one
//! contiguous key range starting with `row_prefix(row)`, and a column's
//! versions come newest first.

/// A family name is at most this long (Bigtable's limit).
pub const FAMILY_NAME_BYTES_MAX: usize = 64;

const ESCAPE: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
/// Sorts after every key of a row that ends with the row's terminator.
const PAST_TERMINATOR: u8 = 0x02;

/// A decoded cell key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellKey {
    pub row: Vec<u8>,
    pub family: String,
    pub qualifier: Vec<u8>,
    pub timestamp_micros: i64,
}

/// Why bytes are not a cell key, or a coordinate cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("malformed cell key: {0}")]
    Malformed(&'static str),
    #[error("invalid family name {0:?}: must match [-_.a-zA-Z0-9]+, not start with '-' or '.', and be at most 64 bytes")]
    BadFamily(String),
    #[error("timestamp {0} is negative")]
    NegativeTimestamp(i64),
}

/// Whether `name` is a valid column family name
/// (`[_a-zA-Z0-9][-_.a-zA-Z0-9]*`, at most 64 bytes).
pub fn is_valid_family(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: u8, first: bool| {
        c.is_ascii_alphanumeric() || c == b'_' || (!first && (c == b'-' || c == b'.'))
    };
    !b.is_empty()
        && b.len() <= FAMILY_NAME_BYTES_MAX
        && ok(b[0], true)
        && b[1..].iter().all(|&c| ok(c, false))
}

fn put_escaped(dst: &mut Vec<u8>, bytes: &[u8]) {
    for &c in bytes {
        dst.push(c);
        if c == 0 {
            dst.push(ESCAPE);
        }
    }
    dst.extend_from_slice(&[0, TERMINATOR]);
}

/// Reads an escaped, terminated field; returns it and the bytes after it.
fn take_escaped(src: &[u8]) -> Result<(Vec<u8>, &[u8]), KeyError> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c != 0 {
            out.push(c);
            i += 1;
            continue;
        }
        match src.get(i + 1) {
            Some(&ESCAPE) => {
                out.push(0);
                i += 2;
            }
            Some(&TERMINATOR) => return Ok((out, &src[i + 2..])),
            _ => return Err(KeyError::Malformed("bad escape after a 00 byte")),
        }
    }
    Err(KeyError::Malformed("unterminated field"))
}

/// The prefix shared by every cell of `row`.
pub fn row_prefix(row: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(row.len() + 2);
    put_escaped(&mut k, row);
    k
}

/// The smallest key greater than every cell key of `row` and not greater
/// than any key of a later row: the exclusive end of a range that includes
/// `row`.
pub fn row_end(row: &[u8]) -> Vec<u8> {
    let mut k = row_prefix(row);
    *k.last_mut().expect("terminator") = PAST_TERMINATOR;
    k
}

/// The prefix shared by every cell of one family in a row.
pub fn family_prefix(row: &[u8], family: &str) -> Result<Vec<u8>, KeyError> {
    if !is_valid_family(family) {
        return Err(KeyError::BadFamily(family.to_string()));
    }
    let mut k = row_prefix(row);
    k.extend_from_slice(family.as_bytes());
    k.push(0);
    Ok(k)
}

/// The prefix shared by every version of one column.
pub fn column_prefix(row: &[u8], family: &str, qualifier: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut k = family_prefix(row, family)?;
    put_escaped(&mut k, qualifier);
    Ok(k)
}

/// Encodes a cell's coordinates.
pub fn encode(
    row: &[u8],
    family: &str,
    qualifier: &[u8],
    timestamp_micros: i64,
) -> Result<Vec<u8>, KeyError> {
    let mut k = row_prefix(row);
    push_cell(&mut k, family, qualifier, timestamp_micros)?;
    Ok(k)
}

/// The bytes `push_cell` appends for a cell of `family` and `qualifier`
/// whose qualifier needs no escape (more if it does): the family, its
/// terminator, the qualifier, its terminator and the timestamp.
pub fn cell_suffix_bytes(family: &str, qualifier: &[u8]) -> usize {
    family.len() + 1 + qualifier.len() + 2 + 8
}

/// Appends a cell's family, qualifier and timestamp to a row's prefix
/// (`row_prefix`), making its key; on an error `dst` may hold part of it.
pub fn push_cell(
    dst: &mut Vec<u8>,
    family: &str,
    qualifier: &[u8],
    timestamp_micros: i64,
) -> Result<(), KeyError> {
    if timestamp_micros < 0 {
        return Err(KeyError::NegativeTimestamp(timestamp_micros));
    }
    if !is_valid_family(family) {
        return Err(KeyError::BadFamily(family.to_string()));
    }
    dst.extend_from_slice(family.as_bytes());
    dst.push(0);
    put_escaped(dst, qualifier);
    dst.extend_from_slice(&(u64::MAX - timestamp_micros as u64).to_be_bytes());
    Ok(())
}

/// The row key a cell-key prefix starts with: the unescaped bytes up to
/// the row terminator, or all of them if the prefix ends inside the row (as
/// a shortened index separator can). A malformed escape ends the row there.
pub fn row_of_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        match (key[i], key.get(i + 1)) {
            (0, Some(&ESCAPE)) => {
                out.push(0);
                i += 2;
            }
            (0, _) => break,
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Decodes a cell key.
pub fn decode(key: &[u8]) -> Result<CellKey, KeyError> {
    let (row, rest) = take_escaped(key)?;
    let c = decode_column(rest)?;
    Ok(CellKey {
        row,
        family: c.family,
        qualifier: c.qualifier,
        timestamp_micros: c.timestamp_micros,
    })
}

/// The part of a cell key after its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnKey {
    pub family: String,
    pub qualifier: Vec<u8>,
    pub timestamp_micros: i64,
}

/// The length of a cell key's row as stored (escaped, with its
/// terminator): the cells of one row are the keys whose first `len` bytes
/// are equal, so a scan tells rows apart without decoding each cell's row.
pub fn row_part_len(key: &[u8]) -> Result<usize, KeyError> {
    let mut i = 0;
    while i < key.len() {
        if key[i] != 0 {
            i += 1;
            continue;
        }
        match key.get(i + 1) {
            Some(&ESCAPE) => i += 2,
            Some(&TERMINATOR) => return Ok(i + 2),
            _ => return Err(KeyError::Malformed("bad escape after a 00 byte")),
        }
    }
    Err(KeyError::Malformed("unterminated field"))
}

/// The row of a cell key's first `row_part_len(key)` bytes.
pub fn decode_row(row_part: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (row, rest) = take_escaped(row_part)?;
    debug_assert!(rest.is_empty(), "a row part ends with its terminator");
    Ok(row)
}

/// Decodes the bytes of a cell key after its row (`row_part_len`).
pub fn decode_column(rest: &[u8]) -> Result<ColumnKey, KeyError> {
    let fam_len = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or(KeyError::Malformed("unterminated family"))?;
    let family = std::str::from_utf8(&rest[..fam_len])
        .map_err(|_| KeyError::Malformed("family is not UTF-8"))?
        .to_string();
    if !is_valid_family(&family) {
        return Err(KeyError::BadFamily(family));
    }
    let (qualifier, rest) = take_escaped(&rest[fam_len + 1..])?;
    let ts: [u8; 8] = rest
        .try_into()
        .map_err(|_| KeyError::Malformed("timestamp is not 8 bytes"))?;
    let ts = u64::MAX - u64::from_be_bytes(ts);
    let timestamp_micros =
        i64::try_from(ts).map_err(|_| KeyError::Malformed("timestamp out of range"))?;
    Ok(ColumnKey {
        family,
        qualifier,
        timestamp_micros,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::cmp::Reverse;

    fn bytes(rng: &mut impl Rng) -> Vec<u8> {
        // Small alphabet with 00, 01, 02 and FF so escapes and terminators collide.
        const ALPHABET: [u8; 6] = [0x00, 0x01, 0x02, b'a', b'b', 0xFF];
        (0..rng.gen_range(0..5))
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect()
    }

    #[test]
    fn cell_suffix_bytes_is_what_push_cell_appends_without_escapes() {
        for (family, qualifier) in [("cf", &b""[..]), ("family-1", b"col"), ("f", b"\x01\xff")] {
            let mut k = row_prefix(b"row");
            let before = k.len();
            push_cell(&mut k, family, qualifier, 7).expect("valid cell");
            assert_eq!(k.len() - before, cell_suffix_bytes(family, qualifier));
        }
        // An escaped 00 in the qualifier takes one byte more.
        let mut k = Vec::new();
        push_cell(&mut k, "f", b"a\x00b", 7).expect("valid cell");
        assert_eq!(k.len(), cell_suffix_bytes("f", b"a\x00b") + 1);
    }

    #[test]
    fn order_and_round_trip_match_the_tuple_order() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let families = ["a", "a-b", "a.b", "ab", "b", "_x", "Z9"];
        let mut cells: Vec<(Vec<u8>, String, Vec<u8>, i64)> = (0..3000)
            .map(|_| {
                let ts = match rng.gen_range(0..4) {
                    0 => 0,
                    1 => i64::MAX,
                    _ => rng.gen_range(0..5) * 1000,
                };
                (
                    bytes(&mut rng),
                    families[rng.gen_range(0..families.len())].to_string(),
                    bytes(&mut rng),
                    ts,
                )
            })
            .collect();
        cells.sort_by(|a, b| {
            (&a.0, &a.1, &a.2, Reverse(a.3)).cmp(&(&b.0, &b.1, &b.2, Reverse(b.3)))
        });
        cells.dedup();
        let keys: Vec<Vec<u8>> = cells
            .iter()
            .map(|c| encode(&c.0, &c.1, &c.2, c.3).unwrap())
            .collect();
        for (w, c) in keys.windows(2).zip(cells.windows(2)) {
            assert!(w[0] < w[1], "{:?} !< {:?}", c[0], c[1]);
        }
        for (k, c) in keys.iter().zip(&cells) {
            let d = decode(k).unwrap();
            assert_eq!(
                (d.row, d.family, d.qualifier, d.timestamp_micros),
                c.clone()
            );
            // The row's part of the key, and what follows it, decode alike.
            let len = row_part_len(k).unwrap();
            assert_eq!(&k[..len], row_prefix(&c.0).as_slice());
            assert_eq!(decode_row(&k[..len]).unwrap(), c.0);
            let col = decode_column(&k[len..]).unwrap();
            assert_eq!(
                (&col.family, &col.qualifier, col.timestamp_micros),
                (&c.1, &c.2, c.3)
            );
            assert!(k.starts_with(&row_prefix(&c.0)));
            assert!(k.as_slice() < row_end(&c.0).as_slice());
            assert!(k.starts_with(&column_prefix(&c.0, &c.1, &c.2).unwrap()));
        }
        // A row's range holds exactly its cells.
        for c in cells.iter().step_by(37) {
            let (lo, hi) = (row_prefix(&c.0), row_end(&c.0));
            for (k, other) in keys.iter().zip(&cells) {
                let inside = k.as_slice() >= lo.as_slice() && k.as_slice() < hi.as_slice();
                assert_eq!(
                    inside,
                    other.0 == c.0,
                    "row {:?} range vs cell {:?}",
                    c.0,
                    other
                );
            }
        }
    }

    #[test]
    fn rows_that_extend_each_other_stay_apart() {
        for (a, b) in [
            (&b""[..], &b"\x00"[..]),
            (b"a", b"a\x00"),
            (b"a\x00", b"a\x01"),
            (b"a", b"ab"),
        ] {
            assert!(row_end(a) <= row_prefix(b), "{a:?} {b:?}");
            assert!(row_prefix(a) < row_prefix(b));
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            encode(b"r", "f", b"q", -1),
            Err(KeyError::NegativeTimestamp(-1))
        );
        for bad in ["", "-a", ".a", "a b", "a\0", &"x".repeat(65)] {
            assert!(
                matches!(encode(b"r", bad, b"q", 0), Err(KeyError::BadFamily(_))),
                "{bad:?}"
            );
        }
        let good = encode(b"r\x00w", "fam", b"q", 42).unwrap();
        for cut in 0..good.len() {
            assert!(
                decode(&good[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        assert!(decode(b"r\x00\x07").is_err());
        // A key cut inside its row, or with a bad escape there, has no row part.
        let row_len = row_part_len(&good).unwrap();
        for cut in 0..row_len {
            assert!(row_part_len(&good[..cut]).is_err(), "row of {cut} bytes");
        }
        assert!(row_part_len(b"r\x00\x07").is_err());
    }
}
