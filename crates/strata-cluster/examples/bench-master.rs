//! The master's work at a failover, against a real etcd (docs/cluster.md,
//! "Scale"): N tablets (tables of 100) on two servers; one server's lease
//! is revoked (it dies), and the time is measured until every tablet is
//! served by the other: the master marks the dead server's tablets
//! recovering and assigns them, in txns of `--batches` records each
//! (alternated per round: A B A B). Also the time to assign a fresh set of
//! N tablets, and then the time of a pass with nothing to do (the master
//! keeps its copy of the map, followed by watch) against the time of
//! reading the map from etcd (what each pass did twice before). Each round
//! on a fresh etcd (the testkit's: a temporary data
//! directory, so etcd fsyncs as it would in production).
//!
//! ```sh
//! PATH=target/pyvenv/bin:$PATH cargo run --release -p strata-cluster \
//!   --example bench-master -- --tablets 1000 --rounds 3 --batches 1,64
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use strata_cluster::master::{owner_name, pass, run, Collector, MasterOptions, MasterState};
use strata_cluster::schema_store::create_table;
use strata_cluster::tablet_map::TabletState;
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Etcd, Lease};

const TTL: Duration = Duration::from_secs(10);
const GIVE_UP: Duration = Duration::from_secs(300);

struct NoGarbage;

impl Collector for NoGarbage {
    fn delete_tablet(
        &self,
        _id: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Waits until every tablet is serving on one of `owners`; the time.
async fn until_served(etcd: &Etcd, owners: &[&str], started: Instant) -> Duration {
    loop {
        let (map, _) = load(etcd, "c").await.expect("load");
        let done = !map.is_empty()
            && map.all().all(|t| {
                t.state == TabletState::Serving
                    && t.owner.as_deref().is_some_and(|o| owners.contains(&o))
            });
        if done {
            return started.elapsed();
        }
        assert!(started.elapsed() < GIVE_UP, "not served within {GIVE_UP:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Idle passes and map reads timed per round.
const IDLE_SAMPLES: usize = 20;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2].as_secs_f64()
    } else {
        (v[n / 2 - 1] + v[n / 2]).as_secs_f64() / 2.0
    }
}

/// One round's times.
struct Round {
    assigned: Duration,
    recovered: Duration,
    /// Medians: a pass with nothing to do, and a read of the whole map.
    idle_pass: f64,
    map_read: f64,
}

/// One round: the time to assign N new tablets, to recover half of them
/// from a dead server, then idle passes and map reads.
async fn round(tablets: usize, batch: usize) -> Round {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let s1 = register(&etcd, "c", "s1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    let s2 = register(&etcd, "c", "s2", "127.0.0.1:2", TTL)
        .await
        .unwrap();
    let (o1, o2) = (owner_name(s1.info()), owner_name(s2.info()));
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = Arc::new(campaign(&etcd, "c", "m", &lease).await.unwrap());
    let opts = MasterOptions {
        reassign_batch: batch,
        ..MasterOptions::default()
    };
    let started = Instant::now();
    for t in 0..tablets.div_ceil(100) {
        let n = (tablets - t * 100).min(100);
        let splits: Vec<Vec<u8>> = (1..n).map(|i| format!("r{i:03}").into_bytes()).collect();
        create_table(&etcd, "c", &format!("t{t}"), &splits, b"s")
            .await
            .unwrap();
    }
    let task = {
        let (etcd, master, opts) = (etcd.clone(), master.clone(), opts.clone());
        tokio::spawn(async move { run(&etcd, "c", &master, &NoGarbage, &opts).await })
    };
    let assigned = until_served(&etcd, &[&o1, &o2], started).await;
    let killed = Instant::now();
    s1.lease().revoke().await.unwrap();
    let recovered = until_served(&etcd, &[&o2], killed).await;
    task.abort();
    let _ = task.await;
    let (mut map, _) = load(&etcd, "c").await.expect("load");
    let mut state = MasterState::default();
    let (mut passes, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..IDLE_SAMPLES {
        let t = Instant::now();
        let p = pass(&etcd, "c", &master, &mut state, &opts, &mut map)
            .await
            .expect("pass");
        passes.push(t.elapsed());
        assert_eq!(p.assigned + p.marked, 0, "an idle pass changed tablets");
        let t = Instant::now();
        load(&etcd, "c").await.expect("load");
        reads.push(t.elapsed());
    }
    drop(s2);
    Round {
        assigned,
        recovered,
        idle_pass: median(passes),
        map_read: median(reads),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tablets: usize = arg(&args, "--tablets", "1000")
        .parse()
        .expect("--tablets N");
    let rounds: usize = arg(&args, "--rounds", "3").parse().expect("--rounds N");
    let batches: Vec<usize> = arg(&args, "--batches", "1,64")
        .split(',')
        .map(|b| b.parse().expect("--batches N,M"))
        .collect();
    println!("bench-master: {tablets} tablets on 2 servers, {rounds} rounds, batches {batches:?}");
    let mut results: BTreeMap<usize, Vec<Round>> = BTreeMap::new();
    for r in 1..=rounds {
        for &b in &batches {
            let got = round(tablets, b).await;
            println!(
                "round {r}, {b} records per txn: assigned {tablets} in {:.2} s, recovered {} in {:.2} s; an idle pass {:.1} ms, a map read {:.1} ms",
                got.assigned.as_secs_f64(),
                tablets / 2,
                got.recovered.as_secs_f64(),
                got.idle_pass * 1e3,
                got.map_read * 1e3
            );
            results.entry(b).or_default().push(got);
        }
    }
    let mid = |v: Vec<f64>| median(v.into_iter().map(Duration::from_secs_f64).collect());
    println!("| records per txn | assign {tablets} new tablets (median s) | recover {} of a dead server (median s) | idle pass (median ms) | map read (median ms) |", tablets / 2);
    println!("|---:|---:|---:|---:|---:|");
    for (b, v) in &results {
        println!(
            "| {b} | {:.2} | {:.2} | {:.1} | {:.1} |",
            median(v.iter().map(|x| x.assigned).collect()),
            median(v.iter().map(|x| x.recovered).collect()),
            mid(v.iter().map(|x| x.idle_pass).collect()) * 1e3,
            mid(v.iter().map(|x| x.map_read).collect()) * 1e3
        );
    }
}
