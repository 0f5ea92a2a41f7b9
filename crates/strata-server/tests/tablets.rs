//! strata.admin.v1.StrataAdmin/ListTablets over gRPC, with the generated
//! client: a table created with initial splits lists one tablet per range.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_admin_v2::google::bigtable::admin::v2 as a;
use strata_server::pb::strata_admin_client::StrataAdminClient;
use strata_server::tablets::{ListTabletsRequest, Tablet};
use tonic::transport::Channel;
use tonic::Code;

async fn client(s: &Server) -> StrataAdminClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    StrataAdminClient::new(channel)
}

async fn list(
    c: &mut StrataAdminClient<Channel>,
    table_name: &str,
) -> Result<Vec<Tablet>, tonic::Status> {
    c.list_tablets(ListTabletsRequest {
        table_name: table_name.into(),
    })
    .await
    .map(|r| r.into_inner().tablets)
}

/// (start, end or None for the end of the table) of each tablet.
fn ranges(ts: &[Tablet]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    ts.iter()
        .map(|t| (t.start_row.clone(), t.has_end.then(|| t.end_row.clone())))
        .collect()
}

#[tokio::test]
async fn list_tablets_of_a_table_with_initial_splits() {
    let mut s = Server::start().await;
    let split = |k: &[u8]| a::create_table_request::Split { key: k.to_vec() };
    s.admin
        .create_table(a::CreateTableRequest {
            parent: PARENT.into(),
            table_id: "t".into(),
            table: Some(a::Table {
                column_families: [("cf".to_string(), family(None))].into_iter().collect(),
                ..Default::default()
            }),
            initial_splits: vec![split(b"g"), split(b"p")],
        })
        .await
        .expect("create table");
    let name = table_name("t");
    for k in ["a", "h", "z"] {
        put(&mut s, &name, k.as_bytes(), "cf", b"q", 1000, b"value").await;
    }
    let mut c = client(&s).await;
    let tablets = list(&mut c, &name).await.expect("list tablets");
    assert_eq!(
        ranges(&tablets),
        vec![
            (b"".to_vec(), Some(b"g".to_vec())),
            (b"g".to_vec(), Some(b"p".to_vec())),
            (b"p".to_vec(), None),
        ]
    );
    let last = &tablets[2];
    assert!(last.end_row.is_empty(), "no end row past the last tablet");
    for t in &tablets {
        assert!(t.memtable_bytes > 0, "each tablet holds a write: {t:?}");
        assert!(!t.files_per_level.is_empty(), "levels are listed: {t:?}");
    }
    let ids: std::collections::BTreeSet<u32> = tablets.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 3, "tablet ids are distinct: {tablets:?}");

    // An unsplit table is one tablet over every row.
    let plain = create_table(&mut s, "plain", &["cf"]).await;
    let tablets = list(&mut c, &plain).await.expect("list tablets");
    assert_eq!(ranges(&tablets), vec![(b"".to_vec(), None)]);
    drop(c);
    s.shutdown().await;
}

#[tokio::test]
async fn list_tablets_errors() {
    let s = Server::start().await;
    let mut c = client(&s).await;
    let e = list(&mut c, &table_name("missing")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    for bad in [
        "",
        "t",
        "projects/p/instances/i/tables/",
        "projects/p/tables/t",
    ] {
        let e = list(&mut c, bad).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
    }
    drop(c);
    s.shutdown().await;
}
