//! Regex filters on non-UTF-8 bytes over gRPC: patterns are byte strings,
//! one character per byte (RE2 over Latin-1), matched whole. What a
//! client's literal-escaping helper sends for any bytes must match exactly
//! the cells holding those bytes.

mod common;

use common::*;

/// The escaping of google-cloud-bigtable's `LiteralValueFilter`: bytes
/// >= 0x80 copied raw, so the pattern is not UTF-8.
fn python_literal(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in value {
        if b == 0 {
            out.extend_from_slice(br"\x00");
            continue;
        }
        if !b.is_ascii_alphanumeric() && b != b'_' && b < 128 {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn keys_of(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| r.0.clone()).collect()
}

/// Row `[b'r', b]` holds cf:`[b]` = `[b]` for every byte b.
async fn every_byte_table(s: &mut Server) -> String {
    let t = create_table(s, "bytes", &["cf"]).await;
    for b in 0..=255u8 {
        put(s, &t, &[b'r', b], "cf", &[b], 1000, &[b]).await;
    }
    t
}

#[tokio::test]
async fn value_qualifier_and_row_regexes_match_every_byte() {
    let mut s = Server::start().await;
    let t = every_byte_table(&mut s).await;
    for b in 0..=255u8 {
        let want = vec![vec![b'r', b]];
        let pat = python_literal(&[b]);
        let by_value =
            read_filtered(&mut s, &t, Some(filter(F::ValueRegexFilter(pat.clone())))).await;
        assert_eq!(keys_of(&by_value), want, "value regex for {b:#04x}");
        let by_qual = read_filtered(
            &mut s,
            &t,
            Some(filter(F::ColumnQualifierRegexFilter(pat.clone()))),
        )
        .await;
        assert_eq!(keys_of(&by_qual), want, "qualifier regex for {b:#04x}");
        let mut row_pat = b"r".to_vec();
        row_pat.extend_from_slice(&pat);
        let by_row = read_filtered(&mut s, &t, Some(filter(F::RowKeyRegexFilter(row_pat)))).await;
        assert_eq!(keys_of(&by_row), want, "row key regex for {b:#04x}");
    }
    // `\C` is any byte, `.` any byte but newline.
    let any = read_filtered(
        &mut s,
        &t,
        Some(filter(F::ValueRegexFilter(br"\C".to_vec()))),
    )
    .await;
    assert_eq!(any.len(), 256);
    let dot = read_filtered(&mut s, &t, Some(filter(F::ValueRegexFilter(b".".to_vec())))).await;
    assert_eq!(dot.len(), 255);
    assert!(!keys_of(&dot).contains(&b"r\n".to_vec()));
    // A raw high-byte class.
    let high = read_filtered(
        &mut s,
        &t,
        Some(filter(F::ValueRegexFilter(b"[\x80-\xff]".to_vec()))),
    )
    .await;
    assert_eq!(high.len(), 128);
    s.shutdown().await;
}

#[tokio::test]
async fn packed_ints_and_utf8_values_match_exactly() {
    let mut s = Server::start().await;
    let t = create_table(&mut s, "ints", &["cf"]).await;
    let ints = [-1i64, 0, 1, 2852126720, -1431655766, i64::MIN, i64::MAX];
    for (i, n) in ints.iter().enumerate() {
        put(
            &mut s,
            &t,
            format!("n{i}").as_bytes(),
            "cf",
            b"q",
            1000,
            &i64be(*n),
        )
        .await;
    }
    put(&mut s, &t, b"snow", "cf", b"q", 1000, "☃".as_bytes()).await;
    put(&mut s, &t, b"snow2", "cf", b"q", 1000, "☃☃".as_bytes()).await;
    for (i, n) in ints.iter().enumerate() {
        let pat = python_literal(&i64be(*n));
        let rows = read_filtered(&mut s, &t, Some(filter(F::ValueRegexFilter(pat)))).await;
        assert_eq!(keys_of(&rows), vec![format!("n{i}").into_bytes()], "{n}");
    }
    let snow = read_filtered(
        &mut s,
        &t,
        Some(filter(F::ValueRegexFilter("☃".as_bytes().to_vec()))),
    )
    .await;
    assert_eq!(keys_of(&snow), vec![b"snow".to_vec()]);
    let snows = read_filtered(
        &mut s,
        &t,
        Some(filter(F::ValueRegexFilter("(☃)+".as_bytes().to_vec()))),
    )
    .await;
    assert_eq!(keys_of(&snows), vec![b"snow".to_vec(), b"snow2".to_vec()]);
    s.shutdown().await;
}
