//! Key-value calls and txns.

use std::time::Duration;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{Cmp, Compare, Error, Etcd, EtcdOptions, Op, OpResponse, Txn};

#[tokio::test]
async fn kv_round_trip() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;

    assert_eq!(etcd.get(b"/t/a").await.unwrap(), None);
    let r1 = etcd.put(b"/t/a", b"1", None).await.unwrap();
    let r2 = etcd.put(b"/t/b", b"2", None).await.unwrap();
    assert!(r2 > r1, "revisions grow: {r1} then {r2}");
    etcd.put(b"/u", b"outside", None).await.unwrap();

    let a = etcd.get(b"/t/a").await.unwrap().expect("/t/a exists");
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"1"[..], r1, r1, 1)
    );
    let r3 = etcd.put(b"/t/a", b"one", None).await.unwrap();
    let a = etcd.get(b"/t/a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"one"[..], r1, r3, 2)
    );

    let listing = etcd.get_prefix(b"/t/").await.unwrap();
    let keys: Vec<_> = listing.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [&b"/t/a"[..], b"/t/b"]);
    assert_eq!(
        listing.revision, r3,
        "the listing's revision is the store's"
    );

    assert_eq!(etcd.delete(b"/t/a").await.unwrap(), 1);
    assert_eq!(etcd.delete(b"/t/a").await.unwrap(), 0);
    assert_eq!(etcd.get(b"/t/a").await.unwrap(), None);
    assert_eq!(etcd.delete_prefix(b"/t/").await.unwrap(), 1);
    assert!(etcd.get_prefix(b"/t/").await.unwrap().kvs.is_empty());
    assert!(
        etcd.get(b"/u").await.unwrap().is_some(),
        "delete_prefix stays in its prefix"
    );
}

#[tokio::test]
async fn get_prefix_pages_through_many_keys() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    // 2,600 keys (more than two pages of 1,000) in txns of 100 puts.
    for chunk in 0..26 {
        let ops = (0..100).map(|i| {
            let key = format!("/many/{:05}", chunk * 100 + i);
            Op::put(key.as_bytes(), b"x")
        });
        assert!(etcd.txn(Txn::new().and_then(ops)).await.unwrap().succeeded);
    }
    let listing = etcd.get_prefix(b"/many/").await.unwrap();
    assert_eq!(listing.kvs.len(), 2600);
    for (i, kv) in listing.kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("/many/{i:05}").into_bytes());
    }
}

#[tokio::test]
async fn txn_compares_succeed_and_fail() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let key = b"/txn/k";
    let create = || {
        Txn::new()
            .when([Compare::create_revision(key, Cmp::Equal, 0)])
            .and_then([Op::put(key, b"first")])
            .or_else([Op::get(key)])
    };

    // Create if absent: succeeds once, then fails and reads the winner.
    let won = etcd.txn(create()).await.unwrap();
    assert!(won.succeeded);
    assert!(
        matches!(won.responses[..], [OpResponse::Put { revision }] if revision == won.revision)
    );
    let lost = etcd.txn(create()).await.unwrap();
    assert!(!lost.succeeded);
    let current = &lost.responses[0].kvs()[0];
    assert_eq!(
        (current.value.as_slice(), current.create_revision),
        (&b"first"[..], won.revision)
    );

    // Compare-and-swap on mod_revision: the stale one fails.
    let cas = |rev: i64, value: &'static [u8]| {
        Txn::new()
            .when([Compare::mod_revision(key, Cmp::Equal, rev)])
            .and_then([Op::put(key, value)])
    };
    let swapped = etcd.txn(cas(won.revision, b"second")).await.unwrap();
    assert!(swapped.succeeded);
    assert!(
        !etcd
            .txn(cas(won.revision, b"stale"))
            .await
            .unwrap()
            .succeeded
    );
    assert_eq!(etcd.get(key).await.unwrap().unwrap().value, b"second");

    // Value, version, lease and Greater/Less/NotEqual compares.
    let holds = |c: Compare| {
        let etcd = etcd.clone();
        async move { etcd.txn(Txn::new().when([c])).await.unwrap().succeeded }
    };
    assert!(holds(Compare::value(key, Cmp::Equal, b"second")).await);
    assert!(!holds(Compare::value(key, Cmp::Equal, b"first")).await);
    assert!(holds(Compare::value(key, Cmp::NotEqual, b"first")).await);
    assert!(holds(Compare::version(key, Cmp::Equal, 2)).await);
    assert!(holds(Compare::version(key, Cmp::Greater, 1)).await);
    assert!(!holds(Compare::version(key, Cmp::Less, 2)).await);
    assert!(holds(Compare::create_revision(key, Cmp::NotEqual, 0)).await);
    assert!(holds(Compare::lease(key, Cmp::Equal, 0)).await);
    // A value compare on an absent key fails whatever the operator.
    assert!(!holds(Compare::value(b"/txn/absent", Cmp::Equal, b"")).await);
    assert!(!holds(Compare::value(b"/txn/absent", Cmp::NotEqual, b"x")).await);
    assert!(holds(Compare::version(b"/txn/absent", Cmp::Equal, 0)).await);

    // Every compare must hold; the else branch runs otherwise.
    let both = Txn::new()
        .when([
            Compare::value(key, Cmp::Equal, b"second"),
            Compare::create_revision(b"/txn/absent", Cmp::NotEqual, 0),
        ])
        .and_then([Op::delete(key)])
        .or_else([Op::put(b"/txn/else", b"ran"), Op::get_prefix(b"/txn/")]);
    let resp = etcd.txn(both).await.unwrap();
    assert!(!resp.succeeded);
    assert!(matches!(resp.responses[0], OpResponse::Put { .. }));
    assert_eq!(
        resp.responses[1].kvs().len(),
        2,
        "the get sees the put before it"
    );
    assert!(etcd.get(key).await.unwrap().is_some());

    // A txn that writes one key twice is refused by etcd.
    let twice = Txn::new().and_then([Op::put(key, b"a"), Op::put(key, b"b")]);
    assert!(matches!(
        etcd.txn(twice).await,
        Err(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn compacted_revisions_are_typed_errors() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let old = etcd.put(b"/c/k", b"1", None).await.unwrap();
    let new = etcd.put(b"/c/k", b"2", None).await.unwrap();
    let at_old = etcd.get_prefix_at(b"/c/", old).await.unwrap();
    assert_eq!(at_old.kvs[0].value, b"1", "history before compaction");
    etcd.compact(new).await.unwrap();
    match etcd.get_prefix_at(b"/c/", old).await {
        Err(Error::Compacted { revision, .. }) => assert_eq!(revision, old),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

#[tokio::test]
async fn endpoints_fail_over_and_bound_their_calls() {
    let mut server = EtcdServer::start().await;
    // Port 1 refuses connections: the client moves on to the live endpoint.
    let list = format!("http://127.0.0.1:1, {}", server.endpoint());
    let etcd = Etcd::connect(&list)
        .await
        .expect("the second endpoint serves");
    for i in 0..5 {
        etcd.put(format!("/f/{i}").as_bytes(), b"v", None)
            .await
            .unwrap();
    }
    assert_eq!(etcd.get_prefix(b"/f/").await.unwrap().kvs.len(), 5);

    // Nothing listening: a bounded, retryable error.
    let opts = EtcdOptions {
        rpc_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_millis(500),
    };
    let started = std::time::Instant::now();
    let err = Etcd::connect_with("127.0.0.1:1", opts)
        .await
        .expect_err("nothing serves");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A paused etcd: the call times out at its bound.
    server.pause();
    let opts = EtcdOptions {
        rpc_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_millis(500),
    };
    let slow = Etcd::lazy(server.endpoint(), opts).unwrap();
    let started = std::time::Instant::now();
    let err = match slow.get(b"/f/0").await {
        Err(e) => e,
        Ok(answer) => {
            let alive = server.alive();
            panic!(
                "a paused etcd answered {answer:?} (our etcd: pid {}, alive: {alive}); its log:\n{}",
                server.pid(),
                server.log()
            )
        }
    };
    server.resume();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    for bad in ["https://127.0.0.1:2379", "", "http://exa mple:1"] {
        assert!(
            matches!(
                Etcd::lazy(bad, EtcdOptions::default()),
                Err(Error::InvalidEndpoint { .. })
            ),
            "{bad:?}"
        );
    }
}
