//! Generates tonic *client* stubs for the part of etcd's v3 gRPC API that
//! Strata uses (etcdserverpb.KV, Lease and Watch) with
//! `tonic_build::manual`: no protoc and no .proto files. The messages are
//! hand-written prost structs in `src/pb.rs`, with the field numbers of
//! etcd's api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto.
//!
//! Written to `$OUT_DIR/etcdserverpb.{KV,Lease,Watch}.rs` and included by
//! `src/pb.rs`.
use tonic_build::manual::{Method, Service};

const PB: &str = "crate::pb";

/// Streaming shape of an RPC.
#[derive(Clone, Copy)]
enum Shape {
    Unary,
    Bidi,
}

fn m(rust: &str, route: &str, input: &str, output: &str, shape: Shape) -> Method {
    let b = Method::builder()
        .name(rust)
        .route_name(route)
        .input_type(format!("{PB}::{input}"))
        .output_type(format!("{PB}::{output}"))
        .codec_path("::tonic_prost::ProstCodec");
    match shape {
        Shape::Unary => b.build(),
        Shape::Bidi => b.client_streaming().server_streaming().build(),
    }
}

fn main() {
    use Shape::{Bidi, Unary};
    let kv = Service::builder()
        .name("KV")
        .package("etcdserverpb")
        .method(m("range", "Range", "RangeRequest", "RangeResponse", Unary))
        .method(m("put", "Put", "PutRequest", "PutResponse", Unary))
        .method(m(
            "delete_range",
            "DeleteRange",
            "DeleteRangeRequest",
            "DeleteRangeResponse",
            Unary,
        ))
        .method(m("txn", "Txn", "TxnRequest", "TxnResponse", Unary))
        .method(m(
            "compact",
            "Compact",
            "CompactionRequest",
            "CompactionResponse",
            Unary,
        ))
        .build();
    let lease = Service::builder()
        .name("Lease")
        .package("etcdserverpb")
        .method(m(
            "lease_grant",
            "LeaseGrant",
            "LeaseGrantRequest",
            "LeaseGrantResponse",
            Unary,
        ))
        .method(m(
            "lease_revoke",
            "LeaseRevoke",
            "LeaseRevokeRequest",
            "LeaseRevokeResponse",
            Unary,
        ))
        .method(m(
            "lease_keep_alive",
            "LeaseKeepAlive",
            "LeaseKeepAliveRequest",
            "LeaseKeepAliveResponse",
            Bidi,
        ))
        .method(m(
            "lease_time_to_live",
            "LeaseTimeToLive",
            "LeaseTimeToLiveRequest",
            "LeaseTimeToLiveResponse",
            Unary,
        ))
        .build();
    let watch = Service::builder()
        .name("Watch")
        .package("etcdserverpb")
        .method(m("watch", "Watch", "WatchRequest", "WatchResponse", Bidi))
        .build();

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    tonic_build::manual::Builder::new()
        .build_client(true)
        .build_server(false)
        .out_dir(&out)
        .compile(&[kv, lease, watch]);
    println!("cargo:rerun-if-changed=build.rs");
}
