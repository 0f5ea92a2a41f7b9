//! Corrupt tables must give errors, never panics and never wrong data.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::tests::{build, gen_entries, open, opts, scan_backward, scan_forward, Entries};
use super::*;
use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{internal_key, ValueKind};
use crate::storage::{read_file, MemStorage, Storage};

/// Opens, scans both ways and seeks; returns the forward scan.
fn read_all(bytes: Vec<u8>) -> Result<Entries> {
    let t = open(bytes, Some(BlockCache::new(1 << 20)))?;
    let fwd = scan_forward(&t)?;
    let bwd = scan_backward(&t)?;
    assert_eq!(fwd, bwd, "directions disagree without an error");
    let mut it = t.iter(false);
    for k in [&b"key000300"[..], b"key000301", b""] {
        it.seek(&internal_key(k, 5, ValueKind::Put))?;
        it.seek_for_prev(&internal_key(k, 5, ValueKind::Put))?;
    }
    t.verify_checksums()?;
    Ok(fwd)
}

#[test]
fn every_byte_flip_is_detected() {
    let entries = gen_entries(60, 11);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let (bytes, props) = build(&entries, opts(compression, 256));
        assert!(props.data_blocks >= 3);
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                match read_all(bad) {
                    Ok(got) => {
                        assert_eq!(got, entries, "byte {i} flip returned different data");
                        panic!("flip of byte {i} ({compression:?}) went unnoticed");
                    }
                    Err(e) => assert!(e.is_corruption(), "byte {i}: {e}"),
                }
            }
        }
    }
}

#[test]
fn data_block_flip_fails_the_scan_after_open() {
    let entries = gen_entries(60, 12);
    let (bytes, props) = build(&entries, opts(Compression::Lz4, 256));
    for i in (0..props.data_bytes as usize).step_by(7) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let t = open(bad, None).expect("metadata is intact");
        assert!(scan_forward(&t).unwrap_err().is_corruption());
        assert!(t.verify_checksums().unwrap_err().is_corruption());
    }
}

#[test]
fn corrupt_byte_in_storage() {
    let entries = gen_entries(40, 13);
    let (bytes, props) = build(&entries, opts(Compression::None, 256));
    let storage = MemStorage::new();
    crate::storage::write_file_durably(&*storage, "c.sst", &bytes).unwrap();
    storage
        .corrupt_byte("c.sst", props.data_bytes as usize / 2)
        .unwrap();
    let t = Table::open(storage.open("c.sst").unwrap(), 1, "c.sst".into(), None).unwrap();
    let err = scan_forward(&t).unwrap_err();
    assert!(
        matches!(&err, crate::Error::Corruption { file, .. } if file == "c.sst"),
        "{err}"
    );
    assert_eq!(read_file(&*storage, "c.sst").unwrap().len(), bytes.len());
}

#[test]
fn truncations_and_garbage_are_corruption() {
    let entries = gen_entries(30, 14);
    let (bytes, _) = build(&entries, opts(Compression::Zstd, 256));
    for len in 0..bytes.len() {
        let err = open(bytes[..len].to_vec(), None).unwrap_err();
        assert!(err.is_corruption(), "len {len}: {err}");
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(open(extended, None).unwrap_err().is_corruption());
    let mut rng = SmallRng::seed_from_u64(15);
    for _ in 0..2000 {
        let len = rng.gen_range(0..300);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(read_all(junk).is_err());
    }
}

#[test]
fn random_multi_byte_damage_never_returns_wrong_data() {
    let entries = gen_entries(80, 16);
    let mut rng = SmallRng::seed_from_u64(17);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let (bytes, _) = build(&entries, opts(compression, 512));
        for _ in 0..500 {
            let mut bad = bytes.clone();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..bad.len());
                bad[i] = rng.gen();
            }
            if let Ok(got) = read_all(bad.clone()) {
                assert_eq!(got, entries);
                assert_eq!(bad, bytes, "damage went unnoticed");
            }
        }
    }
}

#[test]
fn iterator_error_leaves_it_invalid_and_reusable() {
    let entries = gen_entries(60, 18);
    let (bytes, props) = build(&entries, opts(Compression::None, 256));
    let mut bad = bytes;
    let last_block = props.data_bytes as usize - 10;
    bad[last_block] ^= 1;
    let t: Arc<Table> = open(bad, None).unwrap();
    let mut it = t.iter(true);
    it.seek_to_first().unwrap();
    let mut r = Ok(());
    while it.valid() {
        r = it.next();
    }
    assert!(r.unwrap_err().is_corruption());
    assert!(!it.valid());
    it.seek_to_first().unwrap();
    assert_eq!(it.key(), &entries[0].0[..]);
    assert!(it.seek_to_last().is_err());
}
