//! Watches: order, resumption from a revision, reconnects, compaction.

use crate::within;
use std::time::Duration;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{Error, EventKind, Op, Txn, WatchEvent, WatchOptions, WatchStream};

const WAIT: Duration = Duration::from_secs(10);

async fn next(w: &mut WatchStream) -> WatchEvent {
    within(WAIT, "watch event", w.next())
        .await
        .expect("watch ended")
        .expect("watch failed")
}

/// (kind, key, value) of an event.
fn summary(e: &WatchEvent) -> (EventKind, String, String) {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (e.kind, s(&e.kv.key), s(&e.kv.value))
}

#[tokio::test]
async fn watch_sees_puts_and_deletes_in_order_and_resumes_from_a_revision() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let start = etcd.put(b"/before", b"x", None).await.unwrap() + 1;
    let opts = WatchOptions {
        start_revision: start,
        prev_kv: true,
    };
    // Created before the writes, from a revision: sees them all.
    let mut live = etcd.watch_prefix(b"/w/", opts);

    let r1 = etcd.put(b"/w/a", b"1", None).await.unwrap();
    etcd.put(b"/other", b"ignored", None).await.unwrap();
    let r2 = etcd.put(b"/w/b", b"2", None).await.unwrap();
    etcd.put(b"/w/a", b"1b", None).await.unwrap();
    etcd.delete(b"/w/a").await.unwrap();
    let txn = Txn::new().and_then([Op::put(b"/w/c", b"3"), Op::delete(b"/w/b")]);
    let r_txn = etcd.txn(txn).await.unwrap().revision;

    use EventKind::{Delete, Put};
    let expected = [
        (Put, "/w/a", "1"),
        (Put, "/w/b", "2"),
        (Put, "/w/a", "1b"),
        (Delete, "/w/a", ""),
        (Put, "/w/c", "3"),
        (Delete, "/w/b", ""),
    ];
    let mut events = Vec::new();
    for _ in 0..expected.len() {
        events.push(next(&mut live).await);
    }
    let got: Vec<_> = events.iter().map(summary).collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(k, key, v)| (*k, key.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(events[0].revision(), r1);
    assert!(events
        .windows(2)
        .all(|w| w[0].revision() <= w[1].revision()));
    assert_eq!(
        (events[4].revision(), events[5].revision()),
        (r_txn, r_txn),
        "one txn, one revision"
    );
    let prev = events[3].prev_kv.as_ref().expect("prev_kv of the delete");
    assert_eq!(prev.value, b"1b");

    // A second watch from r2 sees exactly the events from r2 on.
    let mut resumed = etcd.watch_prefix(
        b"/w/",
        WatchOptions {
            start_revision: r2,
            prev_kv: false,
        },
    );
    for want in &events[1..] {
        let got = next(&mut resumed).await;
        assert_eq!(
            (summary(&got), got.revision()),
            (summary(want), want.revision())
        );
        assert_eq!(got.prev_kv, None, "not asked for");
    }
    // Nothing more, until the next write.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), resumed.next())
            .await
            .is_err()
    );
    let r_last = etcd.put(b"/w/d", b"4", None).await.unwrap();
    assert_eq!(next(&mut resumed).await.revision(), r_last);
    assert!(resumed.cancel().await, "etcd confirms the cancel");
}

#[tokio::test]
async fn watch_resumes_across_an_etcd_restart() {
    let mut server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let (_, now) = etcd.get_with_revision(b"/r/").await.unwrap();
    let opts = WatchOptions {
        start_revision: now + 1,
        prev_kv: false,
    };
    let mut w = etcd.watch_prefix(b"/r/", opts);
    let mut seen = Vec::new();
    let first = etcd.put(b"/r/0", b"0", None).await.unwrap();
    seen.push(next(&mut w).await.revision());
    assert_eq!(seen, [first]);

    server.restart().await; // SIGKILL, then the same data and ports
    let writer = server.connect().await;
    let mut written = vec![first];
    for i in 1..=5 {
        let key = format!("/r/{i}");
        written.push(writer.put(key.as_bytes(), b"v", None).await.unwrap());
    }
    // Every write exactly once, in order, across the reconnect.
    for _ in 1..=5 {
        seen.push(next(&mut w).await.revision());
    }
    assert_eq!(seen, written);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err(),
        "no duplicates"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_revision_fails_typed() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let old = etcd.put(b"/cw/k", b"1", None).await.unwrap();
    let new = etcd.put(b"/cw/k", b"2", None).await.unwrap();
    etcd.compact(new).await.unwrap();
    let mut w = etcd.watch_prefix(
        b"/cw/",
        WatchOptions {
            start_revision: old,
            prev_kv: false,
        },
    );
    match within(WAIT, "compaction error", w.next()).await {
        Some(Err(Error::Compacted {
            revision,
            compact_revision,
        })) => {
            assert_eq!(revision, old);
            assert_eq!(compact_revision, Some(new));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(w.next().await.is_none(), "the watch ends after its error");
    // From the compaction revision on, history is there.
    let mut w = etcd.watch_prefix(
        b"/cw/",
        WatchOptions {
            start_revision: new,
            prev_kv: false,
        },
    );
    assert_eq!(next(&mut w).await.kv.value, b"2");
}
