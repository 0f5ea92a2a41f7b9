//! The harness of the multi-process cluster tests (`cluster_failover`,
//! `cluster_splits`): a real etcd, `strata serve --etcd` processes on
//! loopback over a shared `file://` store, writers recording every
//! acknowledgement, and the check that every acknowledged write reads
//! back through every running server.
#![allow(dead_code)]

use super::common::{self, connect, free_port};
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as admin;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use std::collections::BTreeMap;
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

pub const TABLE: &str = "projects/p/instances/i/tables/t";
pub const WRITERS: usize = 6;
/// Generous: "never", not "slow".
pub const SERVED_AGAIN_MAX: Duration = Duration::from_secs(30);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One cluster at a time: each test runs four processes with 3 s leases;
/// several at once on a small machine would test its scheduler.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Node {
    pub id: String,
    pub port: u16,
    pub cache: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// More `strata serve` arguments.
    pub args: Vec<String>,
}

impl Node {
    pub fn start(&mut self, etcd: &str, store: &Path) {
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
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata serve --etcd");
        self.child = Some(child);
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on a child this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for the clean stop.
    pub fn stop(&mut self) {
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

pub struct Cluster {
    pub etcd: EtcdServer,
    pub _dir: tempfile::TempDir,
    pub store: PathBuf,
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// `n` servers, each started with `args` too.
    pub async fn start_with(n: usize, args: &[&str]) -> Cluster {
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
                args: args.iter().map(|a| a.to_string()).collect(),
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

    pub fn logs(&self) -> String {
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
    pub async fn owners(&self) -> BTreeMap<usize, usize> {
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
    pub async fn balanced(&self) {
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
    pub async fn master(&self) -> usize {
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
    pub async fn settled(&self) {
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

pub fn set(row: &str, value: &str) -> v2::MutateRowRequest {
    common::set_cell(TABLE, row, value)
}

pub async fn create_table(ch: tonic::transport::Channel) {
    create_table_split_at(ch, &["w1", "w2", "w3", "w4", "w5"]).await
}

/// The test table, with these initial splits.
pub async fn create_table_split_at(ch: tonic::transport::Channel, at: &[&str]) {
    let mut families = BTreeMap::new();
    families.insert("cf".to_string(), admin::ColumnFamily::default());
    let splits = at
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

pub async fn read_all(ch: tonic::transport::Channel) -> BTreeMap<String, String> {
    common::read_all(ch, TABLE).await
}

/// Writers putting new rows through one server, recording acknowledgements.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    acks: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(ch: tonic::transport::Channel) -> Load {
        Load::start_sized(ch, 0)
    }

    /// Writers whose values are padded to `value_bytes`.
    pub fn start_sized(ch: tonic::transport::Channel, value_bytes: usize) -> Load {
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
                        let mut value = format!("v{i}-");
                        while value.len() < value_bytes {
                            value.push('x');
                        }
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

    pub async fn finish(self) -> BTreeMap<String, String> {
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
    pub async fn progress(&self, n: u64, cluster: &Cluster) {
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

/// The rows of a ReadRows, in the order read.
pub async fn row_keys(port: u16, reversed: bool, limit: i64) -> Vec<Vec<u8>> {
    let mut client = BigtableClient::new(connect(port).await).max_decoding_message_size(256 << 20);
    let mut stream = client
        .read_rows(v2::ReadRowsRequest {
            table_name: TABLE.into(),
            reversed,
            rows_limit: limit,
            filter: Some(v2::RowFilter {
                filter: Some(v2::row_filter::Filter::StripValueTransformer(true)),
            }),
            ..Default::default()
        })
        .await
        .expect("read_rows")
        .into_inner();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    while let Some(resp) = stream.message().await.expect("read stream") {
        for c in resp.chunks {
            if !c.row_key.is_empty() && keys.last() != Some(&c.row_key) {
                keys.push(c.row_key);
            }
        }
    }
    keys
}

/// Every acknowledged row reads back, through every running node.
pub async fn check(cluster: &Cluster, acked: &BTreeMap<String, String>) {
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
