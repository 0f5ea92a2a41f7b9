//! The harness's ReadRows reassembler rejects every protocol violation it
//! is meant to catch (so the server tests relying on it mean something).

mod common;

use common::Reassembler;
use googleapis_tonic_google_bigtable_v2::google::bigtable::v2;
use v2::read_rows_response::{cell_chunk::RowStatus, CellChunk};

fn first(key: &str, value: &str, commit: bool) -> CellChunk {
    CellChunk {
        row_key: key.as_bytes().to_vec(),
        family_name: Some("cf".into()),
        qualifier: Some(b"q".to_vec()),
        timestamp_micros: 1000,
        value: value.as_bytes().to_vec(),
        row_status: commit.then_some(RowStatus::CommitRow(true)),
        ..Default::default()
    }
}

fn piece(value: &str, value_size: i32, commit: bool) -> CellChunk {
    CellChunk {
        value: value.as_bytes().to_vec(),
        value_size,
        row_status: commit.then_some(RowStatus::CommitRow(true)),
        ..Default::default()
    }
}

fn resp(chunks: Vec<CellChunk>) -> v2::ReadRowsResponse {
    v2::ReadRowsResponse {
        chunks,
        ..Default::default()
    }
}

/// Feeds responses; Ok(rows) or Err if the reassembler panicked.
fn run(reversed: bool, responses: Vec<v2::ReadRowsResponse>) -> Result<Vec<common::Row>, ()> {
    std::panic::catch_unwind(move || {
        let mut r = Reassembler::new(reversed);
        for x in responses {
            r.response(x);
        }
        r.finish().rows
    })
    .map_err(|_| ())
}

#[test]
fn accepts_a_valid_stream() {
    let mut split = first("b", "he", false);
    split.value_size = 5;
    let rows = run(
        false,
        vec![
            resp(vec![first("a", "1", false), first("", "2", true)]),
            resp(vec![split, piece("l", 5, false)]),
            resp(vec![piece("lo", 0, true)]),
        ],
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].1[0].3, b"hello");
    assert!(run(
        true,
        vec![resp(vec![first("b", "", true), first("a", "", true)])]
    )
    .is_ok());
}

#[test]
fn rejects_each_violation() {
    let no_key = first("", "v", true);
    let no_family = CellChunk {
        family_name: None,
        ..first("a", "v", true)
    };
    let empty_family = CellChunk {
        family_name: Some(String::new()),
        ..first("a", "v", true)
    };
    let no_qualifier = CellChunk {
        qualifier: None,
        ..first("a", "v", true)
    };
    let family_without_qualifier = CellChunk {
        row_key: vec![],
        qualifier: None,
        ..first("a", "v", true)
    };
    let mut commit_while_split = first("a", "v", true);
    commit_while_split.value_size = 5;
    let mut split = first("a", "v", false);
    split.value_size = 3;
    let keyed_piece = CellChunk {
        row_key: b"a".to_vec(),
        ..piece("vv", 0, true)
    };
    let reset = CellChunk {
        row_status: Some(RowStatus::ResetRow(true)),
        ..Default::default()
    };
    let cases: Vec<(&str, bool, Vec<CellChunk>)> = vec![
        ("first chunk without a key", false, vec![no_key]),
        ("first chunk without a family", false, vec![no_family]),
        ("empty family", false, vec![empty_family]),
        ("first chunk without a qualifier", false, vec![no_qualifier]),
        (
            "new family without qualifier",
            false,
            vec![first("a", "v", false), family_without_qualifier],
        ),
        (
            "commit with value_size > 0",
            false,
            vec![commit_while_split],
        ),
        (
            "key on a continuation",
            false,
            vec![split.clone(), keyed_piece],
        ),
        (
            "split value too short",
            false,
            vec![split.clone(), piece("v", 0, true)],
        ),
        ("stream ends in a split value", false, vec![split]),
        ("stream ends in a row", false, vec![first("a", "v", false)]),
        (
            "keys not increasing",
            false,
            vec![first("b", "", true), first("a", "", true)],
        ),
        (
            "repeated key",
            false,
            vec![first("a", "", true), first("a", "", true)],
        ),
        (
            "keys not decreasing when reversed",
            true,
            vec![first("a", "", true), first("b", "", true)],
        ),
        (
            "key changes inside a row",
            false,
            vec![first("a", "", false), first("b", "", true)],
        ),
        ("reset_row", false, vec![first("a", "", false), reset]),
    ];
    for (what, reversed, chunks) in cases {
        assert!(run(reversed, vec![resp(chunks)]).is_err(), "{what}");
    }
    // Request stats ride the last response, without chunks.
    let stats = v2::ReadRowsResponse {
        request_stats: Some(Default::default()),
        ..Default::default()
    };
    let with_chunks = v2::ReadRowsResponse {
        chunks: vec![first("a", "", true)],
        request_stats: Some(Default::default()),
        ..Default::default()
    };
    assert!(run(false, vec![with_chunks]).is_err());
    assert!(run(false, vec![stats.clone(), resp(vec![first("a", "", true)])]).is_err());
    assert!(run(false, vec![resp(vec![first("a", "", true)]), stats]).is_ok());
}
