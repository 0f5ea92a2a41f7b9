//! `strata cluster status` against a real etcd holding a master, two
//! servers and a table's tablets, one of them not served.

use std::process::Command;
use std::time::Duration;

use strata_cluster::master::owner_name;
use strata_cluster::schema_store::create_table;
use strata_cluster::tablet_map::TabletState;
use strata_cluster::tablet_store::reassign;
use strata_cluster::testkit::EtcdServer;
use strata_cluster::{campaign, register, Lease};

const TTL: Duration = Duration::from_secs(10);

fn status(endpoint: &str, cluster: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "cluster",
            "status",
            "--etcd",
            endpoint,
            "--cluster",
            cluster,
        ])
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cluster_status_shows_master_servers_and_unserved_tablets() {
    let server = EtcdServer::start().await;
    let etcd = server.connect().await;
    let s1 = register(&etcd, "c", "s1", "127.0.0.1:7001", TTL)
        .await
        .unwrap();
    let _s2 = register(&etcd, "c", "s2", "127.0.0.1:7002", TTL)
        .await
        .unwrap();
    let lease = Lease::grant(&etcd, TTL).await.unwrap();
    let master = campaign(&etcd, "c", "m1", &lease).await.unwrap();
    let (tablets, _) = create_table(&etcd, "c", "users", &[b"k".to_vec()], b"s")
        .await
        .unwrap();
    let o1 = owner_name(s1.info());
    let first = reassign(&master, "c", &tablets[0], Some(&o1), TabletState::Serving)
        .await
        .unwrap();
    // A move of the first tablet to s2, begun.
    strata_cluster::moves::begin_move(&master, "c", &first, "s2@9")
        .await
        .unwrap();

    let endpoint = server.endpoint().to_string();
    let (ok, out, err) = tokio::task::spawn_blocking(move || status(&endpoint, "c"))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("master: m1 (term {})", master.term())),
        "{out}"
    );
    assert!(out.contains("servers: 2"), "{out}");
    let s1_line = out.lines().find(|l| l.contains(&o1)).expect(&out);
    assert!(
        s1_line.contains("127.0.0.1:7001") && s1_line.ends_with("1 tablets"),
        "{out}"
    );
    assert!(
        out.contains("tablets: 2 in 1 tables (1 moving, 1 unassigned)"),
        "{out}"
    );
    assert!(out.contains("moves in progress: 1"), "{out}");
    assert!(
        out.contains(&format!(
            "users tablet {} [\"\", k) moving owner {o1} epoch 2, moving to s2@9",
            tablets[0].id
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "users tablet {} [k, end) unassigned owner - epoch 0",
            tablets[1].id
        )),
        "{out}"
    );

    // A split of the second tablet, recorded by its owner.
    let second = reassign(&master, "c", &tablets[1], Some(&o1), TabletState::Serving)
        .await
        .unwrap();
    let split = strata_cluster::splits::request(&etcd, "c", &second, b"p")
        .await
        .unwrap();
    let endpoint = server.endpoint().to_string();
    let (ok, out, err) = tokio::task::spawn_blocking(move || status(&endpoint, "c"))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("splits in progress: 1"), "{out}");
    assert!(
        out.contains(&format!(
            "users tablet {} at p into {} and {} (copying)",
            second.id, split.children[0], split.children[1]
        )),
        "{out}"
    );

    // An empty cluster, and an unreachable etcd.
    let endpoint = server.endpoint().to_string();
    let (ok, out, _) = tokio::task::spawn_blocking(move || status(&endpoint, "empty"))
        .await
        .unwrap();
    assert!(
        ok && out.contains("master: none") && out.contains("tablets: 0 in 0 tables (none)"),
        "{out}"
    );
    let (ok, _, err) = tokio::task::spawn_blocking(|| status("http://127.0.0.1:1", "c"))
        .await
        .unwrap();
    assert!(!ok && err.contains("etcd"), "{err}");
}
