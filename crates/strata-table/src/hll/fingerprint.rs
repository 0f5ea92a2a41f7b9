//! Geoff Pike's Fingerprint2011, the 64-bit hash ZetaSketch (and so
//! BigQuery's and Bigtable's HLL++ sketches) applies to raw values.
//!
//! Sketches only merge meaningfully when both sides hashed their values
//! the same way, so this must match the reference bit for bit; the tests
//! hold the published test vectors.

const K0: u64 = 0xa5b8_5c5e_198e_d849;
const K1: u64 = 0x8d58_ac26_afe1_2e47;
const K2: u64 = 0xc47b_6e9e_3a97_0ed3;
const K3: u64 = 0xc6a4_a793_5bd1_e995;

/// The 64-bit fingerprint of `bytes`.
pub fn fingerprint2011(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let body = if len <= 32 {
        murmur64_seeded(bytes, K0 ^ K1 ^ K2)
    } else if len <= 64 {
        hash_33_to_64(bytes)
    } else {
        hash_over_64(bytes)
    };
    let u = if len >= 8 { load64(bytes, 0) } else { K0 };
    let v = if len >= 9 { load64(bytes, len - 8) } else { K0 };
    let h = hash128_to_64(body.wrapping_add(v), u);
    // 0 and 1 are reserved fingerprints: they map to -2 and -1.
    if h < 2 {
        h.wrapping_add(!1)
    } else {
        h
    }
}

/// The fingerprint of an int64 as Guava's `hashLong` feeds it: its eight
/// little-endian bytes.
pub fn fingerprint2011_i64(x: i64) -> u64 {
    fingerprint2011(&x.to_le_bytes())
}

fn load64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Loads up to 8 bytes little-endian, the missing high bytes zero.
fn load64_partial(b: &[u8]) -> u64 {
    debug_assert!(b.len() < 8);
    b.iter()
        .enumerate()
        .fold(0u64, |acc, (i, &x)| acc | (u64::from(x) << (8 * i)))
}

fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

fn hash128_to_64(high: u64, low: u64) -> u64 {
    let mut a = (low ^ high).wrapping_mul(K3);
    a ^= a >> 47;
    let mut b = (high ^ a).wrapping_mul(K3);
    b ^= b >> 47;
    b.wrapping_mul(K3)
}

fn murmur64_seeded(bytes: &[u8], seed: u64) -> u64 {
    let mul = K3;
    let len = bytes.len();
    let aligned = len & !7;
    let mut h = seed ^ (len as u64).wrapping_mul(mul);
    for i in (0..aligned).step_by(8) {
        let d = shift_mix(load64(bytes, i).wrapping_mul(mul)).wrapping_mul(mul);
        h ^= d;
        h = h.wrapping_mul(mul);
    }
    if len > aligned {
        h ^= load64_partial(&bytes[aligned..]);
        h = h.wrapping_mul(mul);
    }
    shift_mix(shift_mix(h).wrapping_mul(mul))
}

fn hash_33_to_64(b: &[u8]) -> u64 {
    let len = b.len();
    let mut z = load64(b, 24);
    let mut a = load64(b, 0).wrapping_add(
        (len as u64)
            .wrapping_add(load64(b, len - 16))
            .wrapping_mul(K0),
    );
    let mut bb = a.wrapping_add(z).rotate_right(52);
    let mut c = a.rotate_right(37);
    a = a.wrapping_add(load64(b, 8));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(load64(b, 16));
    let vf = a.wrapping_add(z);
    let vs = bb.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    a = load64(b, 16).wrapping_add(load64(b, len - 32));
    z = load64(b, len - 8);
    bb = a.wrapping_add(z).rotate_right(52);
    c = a.rotate_right(37);
    a = a.wrapping_add(load64(b, len - 24));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(load64(b, len - 16));
    let wf = a.wrapping_add(z);
    let ws = bb.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    let r = shift_mix(
        vf.wrapping_add(ws)
            .wrapping_mul(K2)
            .wrapping_add(wf.wrapping_add(vs).wrapping_mul(K0)),
    );
    shift_mix(r.wrapping_mul(K0).wrapping_add(vs)).wrapping_mul(K2)
}

/// Two 64-bit lanes from 32 bytes and two seeds.
fn weak_hash_32(b: &[u8], at: usize, mut a: u64, mut s: u64) -> (u64, u64) {
    let p1 = load64(b, at);
    let p2 = load64(b, at + 8);
    let p3 = load64(b, at + 16);
    let p4 = load64(b, at + 24);
    a = a.wrapping_add(p1);
    s = s.wrapping_add(a).wrapping_add(p4).rotate_right(51);
    let c = a;
    a = a.wrapping_add(p2).wrapping_add(p3);
    s = s.wrapping_add(a.rotate_right(23));
    (a.wrapping_add(p4), s.wrapping_add(c))
}

fn hash_over_64(b: &[u8]) -> u64 {
    let len = b.len();
    let mut x = load64(b, 0);
    let mut y = load64(b, len - 16) ^ K1;
    let mut z = load64(b, len - 56) ^ K0;
    let mut v = weak_hash_32(b, len - 64, len as u64, y);
    let mut w = weak_hash_32(b, len - 32, (len as u64).wrapping_mul(K1), K0);
    z = z.wrapping_add(shift_mix(v.1).wrapping_mul(K1));
    x = z.wrapping_add(x).rotate_right(39).wrapping_mul(K1);
    y = y.rotate_right(33).wrapping_mul(K1);
    // Whole 64-byte chunks from the front; the tail was hashed above.
    let mut remaining = (len - 1) & !63;
    let mut at = 0;
    loop {
        x = x
            .wrapping_add(y)
            .wrapping_add(v.0)
            .wrapping_add(load64(b, at + 16))
            .rotate_right(37)
            .wrapping_mul(K1);
        y = y
            .wrapping_add(v.1)
            .wrapping_add(load64(b, at + 48))
            .rotate_right(42)
            .wrapping_mul(K1);
        x ^= w.1;
        y ^= v.0;
        z = (z ^ w.0).rotate_right(33);
        v = weak_hash_32(b, at, v.1.wrapping_mul(K1), x.wrapping_add(w.0));
        w = weak_hash_32(b, at + 32, z.wrapping_add(w.1), y);
        std::mem::swap(&mut z, &mut x);
        at += 64;
        remaining -= 64;
        if remaining == 0 {
            break;
        }
    }
    hash128_to_64(
        hash128_to_64(v.0, w.0)
            .wrapping_add(shift_mix(y).wrapping_mul(K1))
            .wrapping_add(z),
        hash128_to_64(v.1, w.1).wrapping_add(x),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vectors() {
        assert_eq!(fingerprint2011(b"test") as i64, 8473225671271759044);
        assert_eq!(
            fingerprint2011("test".repeat(8).as_bytes()) as i64,
            7345148637025587076
        );
        assert_eq!(
            fingerprint2011("test".repeat(64).as_bytes()) as i64,
            4904844928629814570
        );
        assert_eq!(murmur64_seeded(b"test", 1), 1618900948208871284);
        assert_eq!(murmur64_seeded(b"test test test", 1), 12313169684067793560);
        // ZetaSketch's own hash vectors (longs, bytes, UTF-8 strings).
        assert_eq!(fingerprint2011_i64(0), 0x853a_22bd_6e14_a48f);
        assert_eq!(fingerprint2011_i64(42), 0x583b_2b9d_f8e0_eb60);
        assert_eq!(fingerprint2011_i64(-15), 0x5394_14f2_87f1_1e37);
        assert_eq!(fingerprint2011(b""), 0x23ad_7c90_4aa6_65e3);
        assert_eq!(fingerprint2011(b"foobar"), 0x36a1_e57a_138e_4467);
        assert_eq!(
            fingerprint2011("Z\u{fc}rich".as_bytes()),
            0x27ef_c00f_7d2c_e548
        );
        // hashLong feeds the long's little-endian bytes.
        assert_eq!(
            fingerprint2011_i64(0x0000_0000_0100_0101),
            fingerprint2011(&[1, 1, 0, 1, 0, 0, 0, 0])
        );
    }

    /// The reference's self-checking walk over every length up to 3,200
    /// bytes, mixing each fingerprint into the next input.
    #[test]
    fn multiple_lengths() {
        fn remix(h: u64) -> u64 {
            let h = h ^ (h >> 41);
            h.wrapping_mul(949921979)
        }
        fn letter(h: u64) -> u8 {
            b'a' + ((h & 0xfffff) % 26) as u8
        }
        let iterations = 800usize;
        let mut buf = vec![0u8; iterations * 4];
        let mut n = 0usize;
        let mut h = 0u64;
        for i in 0..iterations {
            for step in 0..4 {
                let len = match step {
                    0 => i,
                    1 => i * i % n,
                    2 => i * i * i % n,
                    _ => n,
                };
                h ^= fingerprint2011(&buf[..len]);
                h = remix(h);
                buf[n] = letter(h);
                n += 1;
            }
            let x0 = usize::from(buf[n - 1]);
            let x1 = usize::from(buf[n - 2]);
            let x2 = usize::from(buf[n - 3]);
            let x3 = buf[n / 2];
            buf[((x0 << 16) + (x1 << 8) + x2) % n] ^= x3;
            buf[((x1 << 16) + (x2 << 8) + usize::from(x3)) % n] ^= (i % 256) as u8;
        }
        assert_eq!(h, 0xeaa3_b1c9_8526_1632);
    }
}
