//! HLL++ unique-count families over gRPC: AddToCell hashes inputs into a
//! sketch, MergeToCell merges serialized sketches, reads return the sketch,
//! and malformed or mismatched sketches are refused with nothing applied.

mod common;

use common::*;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use strata_table::hll::{fingerprint, wire, Sketch, VALUE_TYPE_BYTES, VALUE_TYPE_INT64};
use tonic::Code;

fn value(k: v2::value::Kind) -> Option<v2::Value> {
    Some(v2::Value {
        r#type: None,
        kind: Some(k),
    })
}

fn aggregate(fam: &str, input: v2::value::Kind, merge: bool) -> Mutation {
    use v2::mutation::{AddToCell, MergeToCell, Mutation as M};
    use v2::value::Kind;
    let (q, ts) = (
        value(Kind::RawValue(b"q".to_vec())),
        value(Kind::RawTimestampMicros(0)),
    );
    Mutation {
        mutation: Some(if merge {
            M::MergeToCell(MergeToCell {
                family_name: fam.into(),
                column_qualifier: q,
                timestamp: ts,
                input: value(input),
            })
        } else {
            M::AddToCell(AddToCell {
                family_name: fam.into(),
                column_qualifier: q,
                timestamp: ts,
                input: value(input),
            })
        }),
    }
}

fn add_raw(fam: &str, b: &[u8]) -> Mutation {
    aggregate(fam, v2::value::Kind::RawValue(b.to_vec()), false)
}

fn merge_sketch(fam: &str, sketch: Vec<u8>) -> Mutation {
    aggregate(fam, v2::value::Kind::RawValue(sketch), true)
}

fn sketch_of_ids(ids: std::ops::Range<i64>) -> Vec<u8> {
    let mut s = Sketch::new(15, 20, VALUE_TYPE_INT64);
    for id in ids {
        s.add_hash(fingerprint::fingerprint2011_i64(id));
    }
    wire::encode(&mut s)
}

/// (estimate, num_values) of the sketch in `fam:q` of `row`.
async fn count(s: &mut Server, t: &str, row: &[u8], fam: &str) -> (u64, i64) {
    let cells = read_row(s, t, row).await;
    let c = cells
        .iter()
        .find(|c| c.0 == fam)
        .unwrap_or_else(|| panic!("no {fam} cell in {cells:?}"));
    let sketch = wire::decode(&c.3).expect("the cell holds a valid sketch");
    (sketch.estimate(), sketch.num_values)
}

#[tokio::test]
async fn hll_families_count_merge_and_refuse_bad_sketches() {
    let mut s = Server::start().await;
    try_create_table(
        &mut s,
        "h",
        vec![
            ("ids", agg_family(Agg::HllInt64)),
            ("names", agg_family(Agg::HllRaw)),
        ],
    )
    .await
    .unwrap();
    let t = table_name("h");
    // 50 adds of 10 distinct ids and names, in one request and then more.
    let mut ms = Vec::new();
    for i in 0..30 {
        ms.push(add_to_cell("ids", b"q", 0, i % 10));
        ms.push(add_raw("names", format!("n{}", i % 10).as_bytes()));
    }
    mutate(&mut s, &t, b"r", ms).await.unwrap();
    for i in 0..20 {
        mutate(&mut s, &t, b"r", vec![add_to_cell("ids", b"q", 0, i % 10)])
            .await
            .unwrap();
    }
    assert_eq!(count(&mut s, &t, b"r", "ids").await, (10, 50));
    assert_eq!(count(&mut s, &t, b"r", "names").await, (10, 30));
    // The cell holds exactly the sketch a client builds from the same ids.
    let cells = read_row(&mut s, &t, b"r").await;
    let ids = wire::decode(&cells.iter().find(|c| c.0 == "ids").unwrap().3).unwrap();
    let mut expect = wire::decode(&sketch_of_ids(0..10)).unwrap();
    expect.num_values = 50;
    assert_eq!(ids, expect);
    // MergeToCell a client's sketch of 1,000 other ids.
    mutate(
        &mut s,
        &t,
        b"r",
        vec![merge_sketch("ids", sketch_of_ids(10..1010))],
    )
    .await
    .unwrap();
    let (est, n) = count(&mut s, &t, b"r", "ids").await;
    assert!(est.abs_diff(1010) <= 10, "{est}");
    assert_eq!(n, 1050);
    // Refused, each with the valid add before it not applied either.
    let mut bytes_sketch = Sketch::new(15, 20, VALUE_TYPE_BYTES);
    bytes_sketch.add_hash(7);
    let bad = [
        merge_sketch("ids", b"not a sketch".to_vec()),
        merge_sketch("ids", wire::encode(&mut bytes_sketch)),
        aggregate("names", v2::value::Kind::IntValue(5), false),
        set_cell("ids", b"q", 0, b"junk"),
        add_to_cell("nope", b"q", 0, 1),
    ];
    for m in bad {
        let e = mutate(
            &mut s,
            &t,
            b"r",
            vec![add_to_cell("ids", b"q", 0, 99_999), m.clone()],
        )
        .await
        .unwrap_err();
        // A family the table lacks is NOT_FOUND, as Bigtable answers.
        let nope = format!("{m:?}").contains("\"nope\"");
        let want = if nope {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        assert_eq!(e.code(), want, "{m:?}: {e:?}");
    }
    assert_eq!(count(&mut s, &t, b"r", "ids").await.1, 1050);
    // A SetCell of a valid sketch replaces the state; adds then merge in.
    mutate(
        &mut s,
        &t,
        b"r2",
        vec![set_cell("ids", b"q", 0, &sketch_of_ids(0..100))],
    )
    .await
    .unwrap();
    mutate(&mut s, &t, b"r2", vec![add_to_cell("ids", b"q", 0, 100)])
        .await
        .unwrap();
    assert_eq!(count(&mut s, &t, b"r2", "ids").await, (101, 101));
}
