//! The hand-written messages encode as protoc's would.

use super::*;
use prost::Message;

#[test]
fn prefix_end_increments_last_byte() {
    assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
    assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    assert_eq!(prefix_end(b""), vec![0]);
}

/// Bytes as protoc would encode them (checked by hand against the
/// proto's field numbers): the hand-written structs must match.
#[test]
fn wire_format_matches_the_protos() {
    let kv = KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 1,
        value: b"v".to_vec(),
        lease: 7,
    };
    assert_eq!(
        kv.encode_to_vec(),
        [0x0a, 1, b'k', 0x10, 2, 0x18, 3, 0x20, 1, 0x2a, 1, b'v', 0x30, 7]
    );
    let cmp = Compare {
        result: CompareResult::NotEqual as i32,
        target: CompareTarget::Create as i32,
        key: b"m".to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(5)),
        range_end: vec![],
    };
    assert_eq!(
        cmp.encode_to_vec(),
        [0x08, 3, 0x10, 1, 0x1a, 1, b'm', 0x28, 5]
    );
    // Compare.range_end is field 64: tag varint (64 << 3 | 2) = 0x82 0x04.
    let ranged = Compare {
        range_end: b"z".to_vec(),
        ..Compare::default()
    };
    assert_eq!(ranged.encode_to_vec(), [0x82, 0x04, 1, b'z']);
    // WatchResponse.events is field 11: (11 << 3 | 2) = 0x5a.
    let resp = WatchResponse {
        events: vec![Event::default()],
        ..WatchResponse::default()
    };
    assert_eq!(resp.encode_to_vec(), [0x5a, 0]);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                start_revision: 9,
                prev_kv: true,
                watch_id: 1,
                ..WatchCreateRequest::default()
            },
        )),
    };
    assert_eq!(create.encode_to_vec(), [0x0a, 6, 0x18, 9, 0x30, 1, 0x38, 1]);
}
