use super::mem::TornWrite;
use super::*;

fn exercise(s: &dyn Storage) {
    let mut f = s.create("a").unwrap();
    f.append(b"hello ").unwrap();
    f.append(b"world").unwrap();
    f.sync().unwrap();
    drop(f);
    s.sync_dir().unwrap();
    let r = s.open("a").unwrap();
    assert_eq!(r.len(), 11);
    assert_eq!(r.read_vec(6, 5).unwrap(), b"world");
    assert!(r.read_vec(8, 5).is_err(), "read past end must fail");
    s.rename("a", "b").unwrap();
    assert!(!s.exists("a").unwrap());
    assert_eq!(read_file(s, "b").unwrap(), b"hello world");
    s.truncate("b", 5).unwrap();
    assert_eq!(read_file(s, "b").unwrap(), b"hello");
    assert_eq!(s.list().unwrap(), vec!["b".to_string()]);
    s.remove("b").unwrap();
    s.remove("b").unwrap();
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn local_storage_basics() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&*LocalStorage::open(dir.path()).unwrap());
}

#[test]
fn mem_storage_basics() {
    exercise(&*MemStorage::new());
}

#[test]
fn power_loss_drops_unsynced_data_and_names() {
    let s = MemStorage::new();
    let mut f = s.create("synced").unwrap();
    f.append(b"durable").unwrap();
    f.sync().unwrap();
    f.append(b" lost").unwrap();
    s.sync_dir().unwrap();
    let mut g = s.create("unlisted").unwrap();
    g.append(b"x").unwrap();
    g.sync().unwrap();
    let after = s.crash_copy(TornWrite::None);
    assert_eq!(read_file(&*after, "synced").unwrap(), b"durable");
    assert!(
        !after.exists("unlisted").unwrap(),
        "no dir fsync: name lost"
    );
    let torn = s.crash_copy(TornWrite::Prefix {
        keep_per_mille: 600,
        garble: false,
    });
    assert_eq!(read_file(&*torn, "synced").unwrap(), b"durable lo");
    let killed = s.process_crash_copy();
    assert_eq!(read_file(&*killed, "synced").unwrap(), b"durable lost");
    assert!(killed.exists("unlisted").unwrap());
}

#[test]
fn faults_fire_after_n_ops() {
    let s = FaultStorage::new(MemStorage::new());
    s.fail_after(1, FaultOp::SYNC);
    let mut f = s.create("x").unwrap();
    f.append(b"1").unwrap();
    f.sync().unwrap();
    assert!(f.sync().is_err());
    assert!(f.append(b"2").is_ok(), "writes are not in the mask");
    s.heal();
    f.sync().unwrap();
}
