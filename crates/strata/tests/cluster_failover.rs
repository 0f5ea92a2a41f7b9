//! A three-server cluster, real processes on loopback, a real etcd, the
//! store a shared `file://` directory: clients write through one server
//! (recording every acknowledgement) while another is killed with
//! SIGKILL, the master is killed, a server is frozen with SIGSTOP past its
//! lease, or every server is restarted in turn. Every acknowledged write
//! must read back through any server. The time until a killed server's
//! tablets serve again is printed and bounded generously (the target is a
//! benchmark figure, docs/benchmarks.md).

mod common;

use common::{connect, free_port};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_cluster::tablet_map::TabletState;
use strata_cluster::tablet_store::load;
use strata_cluster::testkit::EtcdServer;

use admin::bigtable_table_admin_client::BigtableTableAdminClient;
use v2::bigtable_client::BigtableClient;

const TABLE: &str = "projects/p/instances/i/tables/t";
const WRITERS: usize = 6;
/// Generous: "never", not "slow".
const SERVED_AGAIN_MAX: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One cluster at a time: each test runs four processes with 3 s leases;
/// several at once on a small machine would test its scheduler.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Node {
    id: String,
    port: u16,
    cache: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, etcd: &str, store: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = common::strata()
            .args(["serve", "--etcd", etcd, "--storage"])
            .arg(format!("file://{}", store.display()))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--server-id", &self.id, "--data-dir"])
            .arg(&self.cache)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata serve --etcd");
        self.child = Some(child);
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on a child this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for the clean stop.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as above.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().expect("wait");
            assert!(
                status.success(),
                "{}: stopped with {status}\n{}",
                self.id,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            // A frozen process must be resumed to die.
            // SAFETY: as above.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
        self.kill9();
    }
}

struct Cluster {
    etcd: EtcdServer,
    _dir: tempfile::TempDir,
    store: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let etcd = EtcdServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).expect("store dir");
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut node = Node {
                id: format!("s{i}"),
                port: free_port(),
                cache: dir.path().join(format!("cache{i}")),
                log: dir.path().join(format!("s{i}.log")),
                child: None,
            };
            node.start(etcd.endpoint(), &store);
            nodes.push(node);
        }
        Cluster {
            etcd,
            _dir: dir,
            store,
            nodes,
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "--- {} ---\n{}",
                    n.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Which node owns how many serving tablets (by index).
    async fn owners(&self) -> BTreeMap<usize, usize> {
        let etcd = self.etcd.connect().await;
        let (map, _) = load(&etcd, "strata").await.expect("load map");
        let mut out = BTreeMap::new();
        for t in map.all().filter(|t| t.state == TabletState::Serving) {
            let owner = t.owner.as_deref().unwrap_or("");
            if let Some(i) = self
                .nodes
                .iter()
                .position(|n| owner.starts_with(&format!("{}@", n.id)))
            {
                *out.entry(i).or_default() += 1;
            }
        }
        out
    }

    /// Waits until every running node serves some tablet.
    async fn balanced(&self) {
        let deadline = Instant::now() + SERVED_AGAIN_MAX;
        loop {
            let owners = self.owners().await;
            let running = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.child.is_some());
            if running.clone().all(|(i, _)| owners.contains_key(&i)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tablets not balanced: {owners:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the node that is master.
    async fn master(&self) -> usize {
        let etcd = self.etcd.connect().await;
        let deadline = Instant::now() + SERVED_AGAIN_MAX;
        loop {
            if let Some(m) = strata_cluster::master(&etcd, "strata")
                .await
                .expect("master")
            {
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| m.id.starts_with(&format!("{}@", n.id)))
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no master\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every tablet is served by a running node.
    async fn settled(&self) {
        let etcd = self.etcd.connect().await;
        let deadline = Instant::now() + SERVED_AGAIN_MAX;
        loop {
            let (map, _) = load(&etcd, "strata").await.expect("load map");
            let running: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| format!("{}@", n.id))
                .collect();
            let ok = !map.is_empty()
                && map.all().all(|t| {
                    t.state == TabletState::Serving
                        && running
                            .iter()
                            .any(|r| t.owner.as_deref().is_some_and(|o| o.starts_with(r)))
                });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tablets not served\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn set(row: &str, value: &str) -> v2::MutateRowRequest {
    common::set_cell(TABLE, row, value)
}

async fn create_table(ch: tonic::transport::Channel) {
    let mut families = BTreeMap::new();
    families.insert("cf".to_string(), admin::ColumnFamily::default());
    let splits = ["w1", "w2", "w3", "w4", "w5"]
        .iter()
        .map(|k| admin::create_table_request::Split {
            key: k.as_bytes().to_vec(),
        })
        .collect();
    BigtableTableAdminClient::new(ch)
        .create_table(admin::CreateTableRequest {
            parent: "projects/p/instances/i".into(),
            table_id: "t".into(),
            table: Some(admin::Table {
                column_families: families,
                ..Default::default()
            }),
            initial_splits: splits,
        })
        .await
        .expect("create table");
}

async fn read_all(ch: tonic::transport::Channel) -> BTreeMap<String, String> {
    common::read_all(ch, TABLE).await
}

/// Writers putting new rows through one server, recording acknowledgements.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    acks: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(ch: tonic::transport::Channel) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let acks = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let tasks = (0..WRITERS)
            .map(|w| {
                let (ch, stop, acked) = (ch.clone(), stop.clone(), acked.clone());
                let (acks, errors) = (acks.clone(), errors.clone());
                tokio::spawn(async move {
                    let mut client = BigtableClient::new(ch);
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let row = format!("w{w}-{i:06}");
                        let value = format!("v{i}");
                        let call = client.mutate_row(set(&row, &value));
                        match tokio::time::timeout(CALL_TIMEOUT, call).await {
                            Ok(Ok(_)) => {
                                acked.lock().expect("lock").insert(row, value);
                                acks.fetch_add(1, Ordering::Relaxed);
                            }
                            // Not acknowledged: it may or may not be there.
                            // Only UNAVAILABLE (which clients retry) is
                            // expected of a failover.
                            Ok(Err(e)) => {
                                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                                errors.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            acks,
            errors,
            tasks,
        }
    }

    async fn finish(self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer");
        }
        let acked = self.acked.lock().expect("lock").clone();
        println!(
            "writes: {} acknowledged, {} failed (retried by the next write)",
            self.acks.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed)
        );
        acked
    }

    /// Waits until `n` more writes are acknowledged.
    async fn progress(&self, n: u64, cluster: &Cluster) {
        let start = self.acks.load(Ordering::Relaxed);
        let deadline = Instant::now() + SERVED_AGAIN_MAX;
        while self.acks.load(Ordering::Relaxed) < start + n {
            assert!(
                Instant::now() < deadline,
                "writes stalled\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every acknowledged row reads back, through every running node.
async fn check(cluster: &Cluster, acked: &BTreeMap<String, String>) {
    assert!(
        acked.len() > 100,
        "the writers made progress: {}",
        acked.len()
    );
    for node in cluster.nodes.iter().filter(|n| n.child.is_some()) {
        let got = read_all(connect(node.port).await).await;
        let lost: Vec<&String> = acked
            .iter()
            .filter(|(row, value)| got.get(*row) != Some(*value))
            .map(|(row, _)| row)
            .take(5)
            .collect();
        assert!(
            lost.is_empty(),
            "read through {}: {} of {} acknowledged rows lost or wrong, e.g. {lost:?}\n{}",
            node.id,
            acked
                .iter()
                .filter(|(r, v)| got.get(*r) != Some(*v))
                .count(),
            acked.len(),
            cluster.logs()
        );
    }
}

/// The time until a read of every tablet through `front` succeeds.
async fn time_until_every_tablet_reads(front: u16) -> Duration {
    let started = Instant::now();
    let ch = connect(front).await;
    let mut client = BigtableClient::new(ch);
    for w in 0..WRITERS {
        loop {
            let req = v2::ReadRowsRequest {
                table_name: TABLE.into(),
                rows: Some(v2::RowSet {
                    row_keys: vec![format!("w{w}-000000").into_bytes()],
                    row_ranges: vec![],
                }),
                ..Default::default()
            };
            let ok = match client.read_rows(req).await {
                Ok(s) => {
                    let mut s = s.into_inner();
                    let mut ok = true;
                    while let Some(m) = s.message().await.transpose() {
                        ok &= m.is_ok();
                    }
                    ok
                }
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(
                started.elapsed() < SERVED_AGAIN_MAX,
                "tablet w{w} never served again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

/// A node other than `not` that serves at least one tablet.
async fn owner_other_than(cluster: &Cluster, not: &BTreeSet<usize>) -> usize {
    let owners = cluster.owners().await;
    *owners
        .keys()
        .find(|i| !not.contains(i))
        .expect("another node serves tablets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_and_a_killed_master_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    let front = 0;
    create_table(connect(cluster.nodes[front].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[front].port).await);
    load.progress(200, &cluster).await;

    // A server with tablets, not the one the clients talk to.
    let victim = owner_other_than(&cluster, &BTreeSet::from([front])).await;
    cluster.nodes[victim].kill9();
    let served = time_until_every_tablet_reads(cluster.nodes[front].port).await;
    println!("kill -9 of a tablet server: every tablet served again after {served:?}");
    load.progress(200, &cluster).await;

    // Now the master (restarting the victim first, so two stay), with
    // clients on a server that is not the master (a client of a killed
    // server sees its own connection fail, not a failover).
    cluster.nodes[victim].start(cluster.etcd.endpoint(), &cluster.store.clone());
    cluster.settled().await;
    let mut acked = load.finish().await;
    let master = cluster.master().await;
    let front2 = if master == front {
        (front + 1) % 3
    } else {
        front
    };
    let load2 = Load::start(connect(cluster.nodes[front2].port).await);
    load2.progress(100, &cluster).await;
    cluster.nodes[master].kill9();
    let served = time_until_every_tablet_reads(cluster.nodes[front2].port).await;
    println!("kill -9 of the master: every tablet served again after {served:?}");
    load2.progress(200, &cluster).await;
    let new_master = cluster.master().await;
    assert_ne!(new_master, master);

    acked.extend(load2.finish().await);
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_server_past_its_lease_acknowledges_nothing_and_rejoins() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3).await;
    let front = 0;
    create_table(connect(cluster.nodes[front].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[front].port).await);
    load.progress(200, &cluster).await;

    let victim = owner_other_than(&cluster, &BTreeSet::from([front])).await;
    let held_before = cluster.owners().await[&victim];
    cluster.nodes[victim].signal(libc::SIGSTOP);
    // Its tablets move while it is frozen.
    let served = time_until_every_tablet_reads(cluster.nodes[front].port).await;
    println!("SIGSTOP of a tablet server: every tablet served again after {served:?}");
    load.progress(200, &cluster).await;
    assert!(
        !cluster.owners().await.contains_key(&victim),
        "the frozen server's {held_before} tablets were given to others"
    );
    cluster.nodes[victim].signal(libc::SIGCONT);
    // It notices, drops what it held, and joins again.
    let log = cluster.nodes[victim].log.clone();
    let deadline = Instant::now() + SERVED_AGAIN_MAX;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("lost this server's lease")
            && text.matches("joined the cluster as").count() >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed server did not rejoin\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.progress(200, &cluster).await;
    let acked = load.finish().await;
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_server_loses_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    create_table(connect(cluster.nodes[0].port).await).await;
    cluster.settled().await;
    // Clients on node 2 while 0 and 1 restart, then on node 0.
    let load = Load::start(connect(cluster.nodes[2].port).await);
    load.progress(100, &cluster).await;
    for i in 0..2 {
        cluster.nodes[i].stop();
        cluster.settled().await;
        load.progress(100, &cluster).await;
        cluster.nodes[i].start(cluster.etcd.endpoint(), &cluster.store.clone());
        load.progress(100, &cluster).await;
    }
    let mut acked = load.finish().await;
    let load = Load::start(connect(cluster.nodes[0].port).await);
    load.progress(100, &cluster).await;
    cluster.nodes[2].stop();
    cluster.settled().await;
    load.progress(100, &cluster).await;
    cluster.nodes[2].start(cluster.etcd.endpoint(), &cluster.store.clone());
    load.progress(100, &cluster).await;
    // Writers of the second load reuse row names; keep the later values.
    acked.extend(load.finish().await);
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tablets_moving_under_load_lose_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Two servers take the table; a third joins under load and the master
    // moves its share to it, each source flushing and releasing first.
    let mut cluster = Cluster::start(3).await;
    cluster.nodes[2].kill9();
    create_table(connect(cluster.nodes[0].port).await).await;
    cluster.settled().await;
    cluster.balanced().await;
    let load = Load::start(connect(cluster.nodes[0].port).await);
    load.progress(200, &cluster).await;
    cluster.nodes[2].start(cluster.etcd.endpoint(), &cluster.store.clone());
    cluster.balanced().await;
    cluster.settled().await;
    load.progress(200, &cluster).await;
    let released: usize = cluster.nodes[..2]
        .iter()
        .map(|n| {
            std::fs::read_to_string(&n.log)
                .unwrap_or_default()
                .matches("released tablet for its move")
                .count()
        })
        .sum();
    assert!(
        released >= 1,
        "no move went through a release\n{}",
        cluster.logs()
    );
    println!("{released} tablets moved to the new server, each released by its source");
    let acked = load.finish().await;
    check(&cluster, &acked).await;
}
