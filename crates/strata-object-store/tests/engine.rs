//! The engine over `ObjectStorage`: the object_store crate's `InMemory` and
//! `LocalFileSystem` backends (whose create-if-absent is atomic), a local
//! cache, stateless restarts and takeovers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_engine::{Engine, EngineOptions, Error, Tree, TreeOptions};
use strata_object_store::{parse_storage_url, ObjectStorage, StorageUrl};

fn small_tree() -> TreeOptions {
    TreeOptions {
        memtable_bytes_max: 32 << 10,
        target_file_size_bytes: 32 << 10,
        level_base_bytes: 128 << 10,
        ..TreeOptions::default()
    }
}

fn open(url: StorageUrl, cache: Option<&std::path::Path>) -> (Arc<ObjectStorage>, Engine, Tree) {
    let storage = ObjectStorage::open(url, cache, 64 << 20).expect("storage");
    let engine = Engine::open(storage.clone(), EngineOptions::default()).expect("open");
    let tree = engine.open_tree("t", small_tree()).expect("tree");
    (storage, engine, tree)
}

/// The same store seen through a second URL handle (`file://` reopens the
/// directory; `memory://` shares the `InMemory` instance).
fn same(url: &StorageUrl) -> StorageUrl {
    StorageUrl {
        url: url.url.clone(),
        store: url.store.clone(),
        prefix: url.prefix.clone(),
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("value {i} {}", "v".repeat((i % 200) as usize)).into_bytes()
}

fn write_and_restart(url: StorageUrl) {
    let cache1 = tempfile::tempdir().unwrap();
    let (storage, engine, tree) = open(same(&url), Some(cache1.path()));
    for i in 0..3000 {
        tree.put(&key(i), &value(i)).unwrap();
    }
    tree.flush().unwrap();
    for i in 3000..3500 {
        tree.put(&key(i), &value(i)).unwrap();
    }
    let counters = storage.counters().to_string();
    assert!(counters.contains("PUTs"), "{counters}");
    // A crash: the engine is dropped without closing; a new one starts
    // with a fresh, empty cache directory.
    drop((tree, engine, storage));
    drop(cache1);
    let cache2 = tempfile::tempdir().unwrap();
    let (storage, engine, tree) = open(same(&url), Some(cache2.path()));
    for i in 0..3500 {
        assert_eq!(tree.get(&key(i)).unwrap(), Some(value(i)), "key {i}");
    }
    engine.close().unwrap();
    drop(storage);
    // And once more with no cache at all.
    let (_s, _e, tree) = open(same(&url), None);
    assert_eq!(tree.get(&key(3499)).unwrap(), Some(value(3499)));
}

#[test]
fn memory_store_survives_a_restart_with_a_fresh_cache() {
    write_and_restart(parse_storage_url("memory://some/prefix").unwrap());
}

#[test]
fn file_store_survives_a_restart_with_a_fresh_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    write_and_restart(parse_storage_url(&url).unwrap());
    // Objects are where the format says.
    for sub in ["manifest", "sst"] {
        assert!(
            dir.path().join(sub).is_dir(),
            "{sub}/ in {}",
            dir.path().display()
        );
    }
}

/// Two servers race on one store: writers on the first, the second takes
/// over meanwhile; everything the first acknowledged is in the second.
#[test]
fn takeover_on_a_file_store_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for round in 0..5u64 {
        let (_s1, old, old_tree) = open(parse_storage_url(&url).unwrap(), None);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let (tree, acked, stop) = (old_tree.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let k = key(round * 10_000_000 + w * 1_000_000 + i);
                        match tree.put(&k, b"x") {
                            Ok(()) => acked.lock().unwrap().push(k),
                            Err(e) => {
                                assert!(matches!(e, Error::Fenced(_)), "round {round}: {e}");
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        while acked.lock().unwrap().len() < 200 {
            std::thread::yield_now();
        }
        let (_s2, new, new_tree) = open(parse_storage_url(&url).unwrap(), None);
        stop.store(true, Ordering::Release);
        for w in writers {
            w.join().unwrap();
        }
        let fenced = old_tree.put(b"late", b"x").unwrap_err();
        assert!(matches!(fenced, Error::Fenced(_)), "{fenced}");
        for k in acked.lock().unwrap().iter() {
            assert!(
                new_tree.get(k).unwrap().is_some(),
                "round {round}: lost {k:?}"
            );
        }
        drop((old_tree, old));
        new.close().unwrap();
    }
}

/// A table whose bytes were damaged in the store reads as an error, never
/// as wrong data.
#[test]
fn damaged_bytes_in_the_store_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    {
        let (_s, engine, tree) = open(parse_storage_url(&url).unwrap(), None);
        for i in 0..2000 {
            tree.put(&key(i), &value(i)).unwrap();
        }
        tree.flush().unwrap();
        engine.close().unwrap();
    }
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir.path().join("sst")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        // A byte early in the first data block.
        bytes[100] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0);
    let cache = tempfile::tempdir().unwrap();
    let (_s, _e, tree) = open(parse_storage_url(&url).unwrap(), Some(cache.path()));
    let mut errors = 0;
    for i in 0..2000 {
        match tree.get(&key(i)) {
            Ok(Some(v)) => assert_eq!(v, value(i), "key {i}: wrong data"),
            Ok(None) => panic!("key {i} missing without an error"),
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "the damage went unnoticed");
}

#[test]
fn remove_many_deletes_in_bulk_and_ignores_names_already_gone() {
    use strata_engine::storage::Storage;
    for url in ["memory://", "file:///"] {
        let dir = tempfile::tempdir().unwrap();
        let url = if url == "file:///" {
            format!("file://{}", dir.path().display())
        } else {
            url.to_string()
        };
        let storage = ObjectStorage::open(parse_storage_url(&url).unwrap(), None, 0).unwrap();
        let names: Vec<String> = (0..2500).map(|i| format!("wal/{i:020}")).collect();
        for n in names.iter().step_by(2) {
            assert!(storage.put_if_absent(n, b"x").unwrap());
        }
        storage.put_if_absent("000001.sst", b"kept").unwrap();
        // Every name, half of them never written: three bulk batches.
        storage.remove_many(&names).unwrap();
        assert_eq!(
            storage.list_prefix("wal/").unwrap(),
            Vec::<String>::new(),
            "{url}"
        );
        assert_eq!(
            storage.list().unwrap(),
            vec!["000001.sst".to_string()],
            "{url}"
        );
        assert!(
            storage.counters().to_string().contains("2500 DELETEs"),
            "{}",
            storage.counters()
        );
    }
}

/// A table of 16 MiB or more is uploaded in parts (not conditional: its
/// number is of its owner's epoch alone) and reads back after a restart
/// on an empty cache.
#[test]
fn a_large_table_is_uploaded_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}", dir.path().display());
    for url in ["memory://big", file_url.as_str()] {
        let url = parse_storage_url(url).unwrap();
        let storage = ObjectStorage::open(same(&url), None, 0).unwrap();
        let engine = Engine::open(storage.clone(), EngineOptions::default()).unwrap();
        let big = TreeOptions {
            memtable_bytes_max: 64 << 20,
            target_file_size_bytes: 64 << 20,
            ..TreeOptions::default()
        };
        let tree = engine.open_tree("t", big.clone()).unwrap();
        // Values that do not compress: 20 MiB in 1 KiB values.
        let noise = |i: u64| -> Vec<u8> {
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let rows = 20 * 1024;
        for first in (0..rows).step_by(512) {
            let mut batch = strata_engine::WriteBatch::new();
            for i in first..first + 512 {
                batch.put(tree.id(), &key(i), &noise(i));
            }
            engine.write(batch).unwrap();
        }
        tree.flush().unwrap();
        let c = storage.counters();
        assert_eq!(c.multipart_uploads.load(Ordering::Relaxed), 1, "{c}");
        drop(tree);
        engine.close().unwrap();
        drop(storage);

        let cache = tempfile::tempdir().unwrap();
        let storage = ObjectStorage::open(same(&url), Some(cache.path()), 1 << 30).unwrap();
        let engine = Engine::open(storage.clone(), EngineOptions::default()).unwrap();
        let tree = engine.open_tree("t", big).unwrap();
        for i in (0..rows).step_by(97).chain([rows - 1]) {
            assert_eq!(tree.get(&key(i)).unwrap(), Some(noise(i)), "key {i}");
        }
    }
}

/// Children of one storage (a cluster server's tablets) keep apart: each
/// engine sees only its own names, the same table number in two children
/// is two objects (and two cache entries), and they share the counters.
#[test]
fn child_storages_keep_their_engines_apart() {
    use strata_engine::storage::Storage;
    let cache = tempfile::tempdir().unwrap();
    let root = ObjectStorage::open(
        parse_storage_url("memory://cluster").unwrap(),
        Some(cache.path()),
        1 << 30,
    )
    .unwrap();
    assert!(root.child("").is_err());
    assert!(root.child("a//b").is_err());
    assert!(root.child("/a").is_err());
    let mut trees = Vec::new();
    for (i, sub) in ["tablets/1", "tablets/2"].into_iter().enumerate() {
        let storage = root.child(sub).unwrap();
        let engine = Engine::open(storage.clone(), EngineOptions::default()).unwrap();
        let tree = engine.open_tree("t", small_tree()).unwrap();
        for k in 0..500 {
            tree.put(&key(k), format!("{sub} {k}").as_bytes()).unwrap();
        }
        tree.flush().unwrap();
        let names = storage.list().unwrap();
        assert!(names.iter().any(|n| n.ends_with(".sst")), "{names:?}");
        trees.push((storage, engine, tree, i));
    }
    let (s1, s2) = (trees[0].0.clone(), trees[1].0.clone());
    let tables = |s: &ObjectStorage| -> Vec<String> {
        let mut v: Vec<String> = s
            .list()
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".sst"))
            .collect();
        v.sort();
        v
    };
    // Both engines started at the same epoch: the same table names.
    assert_eq!(tables(&s1), tables(&s2));
    for (_, engine, tree, i) in trees.drain(..) {
        let sub = ["tablets/1", "tablets/2"][i];
        assert_eq!(
            tree.get(&key(7)).unwrap(),
            Some(format!("{sub} 7").into_bytes())
        );
        engine.close().unwrap();
    }
    // Reopened (a new owner of each, the cache shared): still apart.
    drop(root);
    for (sub, s) in [("tablets/1", s1.clone()), ("tablets/2", s2.clone())] {
        let engine = Engine::open(s, EngineOptions::default()).unwrap();
        let tree = engine.open_tree("t", small_tree()).unwrap();
        assert_eq!(
            tree.get(&key(499)).unwrap(),
            Some(format!("{sub} 499").into_bytes())
        );
        engine.close().unwrap();
    }
    assert!(s1.counters().to_string().contains("PUTs"));
}
