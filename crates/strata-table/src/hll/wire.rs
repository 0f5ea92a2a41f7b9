//! A sketch's bytes: ZetaSketch's `AggregatorStateProto` carrying a
//! `HyperLogLogPlusUniqueStateProto` (encoding version 2), the form
//! BigQuery's HLL_COUNT functions read and write. Specified in
//! docs/formats/hll.md.

use super::sketch::{sparse_bytes, Registers, Sketch, SparseCoding};
use super::{HllError, PRECISION_MAX, PRECISION_MIN, SPARSE_PRECISION_MAX};
use strata_engine::coding::{get_varint, put_len_prefixed, put_varint};

/// `AggregatorType.HYPERLOGLOG_PLUS_UNIQUE`, also the state's field number.
const HLL_TYPE: u64 = 112;
/// The only encoding version read and written.
const ENCODING_VERSION: u64 = 2;

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

fn put_field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3 | WIRE_VARINT);
    put_varint(out, v);
}

fn put_field_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_varint(out, field << 3 | WIRE_LEN);
    put_len_prefixed(out, b);
}

/// Serializes a sketch, compacting it first.
pub fn encode(sketch: &mut Sketch) -> Vec<u8> {
    sketch.compact();
    let mut hll = Vec::new();
    match &sketch.registers {
        Registers::Sparse(entries) => {
            if !entries.is_empty() {
                put_field_varint(&mut hll, 2, entries.len() as u64);
            }
        }
        Registers::Dense(_) => {}
    }
    put_field_varint(&mut hll, 3, u64::from(sketch.precision));
    if sketch.sparse_precision != 0 {
        put_field_varint(&mut hll, 4, u64::from(sketch.sparse_precision));
    }
    match &sketch.registers {
        Registers::Dense(regs) => put_field_bytes(&mut hll, 5, regs),
        Registers::Sparse(entries) => {
            let mut data = Vec::with_capacity(sparse_bytes(entries));
            let mut prev = 0u32;
            for &x in entries {
                put_varint(&mut data, u64::from(x - prev));
                prev = x;
            }
            put_field_bytes(&mut hll, 6, &data);
        }
    }
    let mut out = Vec::with_capacity(hll.len() + 16);
    put_field_varint(&mut out, 1, HLL_TYPE);
    // int64 fields are varints of the two's complement.
    put_field_varint(&mut out, 2, sketch.num_values as u64);
    put_field_varint(&mut out, 3, ENCODING_VERSION);
    if sketch.value_type != 0 {
        put_field_varint(&mut out, 4, i64::from(sketch.value_type) as u64);
    }
    put_field_bytes(&mut out, HLL_TYPE, &hll);
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, HllError> {
        let (v, n) =
            get_varint(self.buf).ok_or_else(|| HllError::new("truncated or overlong varint"))?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], HllError> {
        let n = usize::try_from(n).map_err(|_| HllError::new("length out of range"))?;
        if n > self.buf.len() {
            return Err(HllError::new("truncated field"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next field number and value, or None at the end.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, HllError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            WIRE_VARINT => Field::Varint(self.varint()?),
            WIRE_LEN => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            WIRE_FIXED64 => {
                self.take(8)?;
                Field::Fixed
            }
            WIRE_FIXED32 => {
                self.take(4)?;
                Field::Fixed
            }
            w => return Err(HllError::new(format!("unsupported wire type {w}"))),
        };
        Ok(Some((tag >> 3, value)))
    }
}

fn varint_of(f: Field<'_>, name: &str) -> Result<u64, HllError> {
    match f {
        Field::Varint(v) => Ok(v),
        _ => Err(HllError::new(format!("{name} is not a varint"))),
    }
}

fn bytes_of<'a>(f: Field<'a>, name: &str) -> Result<&'a [u8], HllError> {
    match f {
        Field::Bytes(b) => Ok(b),
        _ => Err(HllError::new(format!("{name} is not length-delimited"))),
    }
}

/// Parses and checks a serialized sketch; anything that is not a
/// well-formed v2 HLL++ sketch is an error, never a guess.
pub fn decode(bytes: &[u8]) -> Result<Sketch, HllError> {
    let mut r = Reader { buf: bytes };
    let (mut kind, mut num_values, mut version, mut value_type) = (None, None, 1u64, 0i32);
    let mut hll = None;
    while let Some((field, v)) = r.field()? {
        match field {
            1 => kind = Some(varint_of(v, "type")?),
            2 => num_values = Some(varint_of(v, "num_values")? as i64),
            3 => version = varint_of(v, "encoding_version")?,
            4 => {
                value_type = i32::try_from(varint_of(v, "value_type")? as i64)
                    .map_err(|_| HllError::new("value_type out of range"))?
            }
            HLL_TYPE => hll = Some(bytes_of(v, "hyperloglogplus_unique_state")?),
            _ => {}
        }
    }
    if kind != Some(HLL_TYPE) {
        return Err(HllError::new(format!(
            "not an HLL++ sketch: aggregator type {kind:?}, expected {HLL_TYPE}"
        )));
    }
    if version != ENCODING_VERSION {
        return Err(HllError::new(format!(
            "sketch encoding version {version} is not supported (only 2)"
        )));
    }
    let num_values = num_values.ok_or_else(|| HllError::new("num_values is missing"))?;
    if num_values < 0 {
        return Err(HllError::new("num_values is negative"));
    }
    let hll = hll.ok_or_else(|| HllError::new("the HLL++ state is missing"))?;
    let mut r = Reader { buf: hll };
    let (mut sparse_size, mut p, mut sp) = (0u64, 0u64, 0u64);
    let (mut data, mut sparse_data) = (None, None);
    while let Some((field, v)) = r.field()? {
        match field {
            2 => sparse_size = varint_of(v, "sparse_size")?,
            3 => p = varint_of(v, "precision")?,
            4 => sp = varint_of(v, "sparse_precision")?,
            5 => data = Some(bytes_of(v, "data")?),
            6 => sparse_data = Some(bytes_of(v, "sparse_data")?),
            _ => {}
        }
    }
    let (lo, hi) = (u64::from(PRECISION_MIN), u64::from(PRECISION_MAX));
    if !(lo..=hi).contains(&p) {
        return Err(HllError::new(format!(
            "precision {p} is outside {lo}..={hi}"
        )));
    }
    if sp != 0 && !(p..=u64::from(SPARSE_PRECISION_MAX)).contains(&sp) {
        return Err(HllError::new(format!(
            "sparse precision {sp} is outside {p}..={SPARSE_PRECISION_MAX}"
        )));
    }
    let (p, sp) = (p as u32, sp as u32);
    let registers = match (data, sparse_data) {
        (Some(_), Some(_)) => {
            return Err(HllError::new(
                "a sketch has both dense and sparse data; it must have one",
            ))
        }
        (Some(regs), None) => {
            if regs.len() != 1 << p {
                return Err(HllError::new(format!(
                    "dense data is {} bytes; precision {p} needs {}",
                    regs.len(),
                    1u64 << p
                )));
            }
            let rho_max = 64 - p + 1;
            if let Some(bad) = regs.iter().find(|&&r| u32::from(r) > rho_max) {
                return Err(HllError::new(format!(
                    "register value {bad} is above {rho_max}"
                )));
            }
            Registers::Dense(regs.to_vec())
        }
        (None, sparse) => {
            if sp == 0 {
                if sparse.is_some_and(|s| !s.is_empty()) {
                    return Err(HllError::new("sparse data without a sparse precision"));
                }
                Registers::Dense(vec![0; 1 << p])
            } else {
                Registers::Sparse(decode_sparse(sparse.unwrap_or(&[]), p, sp, sparse_size)?)
            }
        }
    };
    Ok(Sketch {
        num_values,
        value_type,
        precision: p,
        sparse_precision: sp,
        registers,
    })
}

fn decode_sparse(data: &[u8], p: u32, sp: u32, size: u64) -> Result<Vec<u32>, HllError> {
    if data.len() > 1 << p {
        return Err(HllError::new(format!(
            "sparse data is {} bytes, above the dense size {}",
            data.len(),
            1u64 << p
        )));
    }
    let coding = SparseCoding::new(p, sp);
    let mut r = Reader { buf: data };
    let mut entries = Vec::new();
    let mut prev = 0u64;
    while !r.buf.is_empty() {
        let d = r.varint()?;
        if d == 0 && !entries.is_empty() {
            return Err(HllError::new("sparse entries are not strictly increasing"));
        }
        prev += d;
        let v = u32::try_from(prev)
            .ok()
            .filter(|&v| coding.is_valid(v))
            .ok_or_else(|| HllError::new(format!("invalid sparse entry {prev:#x}")))?;
        entries.push(v);
    }
    if entries.len() as u64 != size {
        return Err(HllError::new(format!(
            "sparse_size says {size} entries; the data holds {}",
            entries.len()
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hll::fingerprint::fingerprint2011_i64;

    fn sketch(n: i64) -> Sketch {
        let mut s = Sketch::new(15, 20, 4);
        for i in 0..n {
            s.add_hash(fingerprint2011_i64(i));
        }
        s
    }

    #[test]
    fn round_trips_sparse_dense_and_empty() {
        for n in [0, 1, 500, 100_000] {
            let mut s = sketch(n);
            let bytes = encode(&mut s);
            assert_eq!(decode(&bytes).unwrap(), s, "n={n}");
        }
    }

    #[test]
    fn empty_sketch_bytes() {
        // type 112, num_values 0, version 2, value type 4, then the state:
        // precision 15, sparse precision 20, empty sparse data.
        let bytes = encode(&mut Sketch::new(15, 20, 4));
        assert_eq!(
            bytes,
            [
                0x08, 0x70, 0x10, 0x00, 0x18, 0x02, 0x20, 0x04, 0x82, 0x07, 0x06, 0x18, 0x0f, 0x20,
                0x14, 0x32, 0x00
            ]
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_a_valid_sketch() {
        let bytes = encode(&mut sketch(300));
        for n in 0..bytes.len() {
            if let Ok(s) = decode(&bytes[..n]) {
                panic!("prefix of {n} bytes decoded to {s:?}");
            }
        }
    }

    #[test]
    fn rejects_bad_sketches() {
        let mut s = sketch(10);
        let good = encode(&mut s);
        assert!(decode(b"").is_err());
        assert!(decode(b"not a sketch").is_err());
        // Version 1.
        let mut v1 = good.clone();
        v1[5] = 0x01;
        assert!(decode(&v1).unwrap_err().to_string().contains("version 1"));
        // Precision 9.
        let mut low = Sketch::new(10, 15, 4);
        let mut b = encode(&mut low);
        let i = b.windows(2).rposition(|w| w == [0x18, 10]).unwrap();
        b[i + 1] = 9;
        assert!(decode(&b).unwrap_err().to_string().contains("precision 9"));
    }
}
