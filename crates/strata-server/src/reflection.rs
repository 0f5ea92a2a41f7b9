//! gRPC server reflection (grpc.reflection.v1 and v1alpha), so that
//! grpcurl and other tools list the services and call the RPCs without
//! .proto files of their own. The descriptors are the Cloud Bigtable
//! APIs' published .proto files and Strata's strata_admin.proto, compiled
//! into proto/descriptors.bin by scripts/gen-descriptors.sh, and the
//! health service's, from tonic-health.

use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};
use tonic_reflection::server::v1alpha::{
    ServerReflection as ServerReflectionAlpha,
    ServerReflectionServer as ServerReflectionAlphaServer,
};
use tonic_reflection::server::{Builder, Error};

/// The FileDescriptorSet of every service the server answers (with every
/// file they import).
pub const DESCRIPTORS: &[u8] = include_bytes!("../proto/descriptors.bin");

/// The services reflection lists: the ones the server serves.
const SERVICES: [&str; 6] = [
    "google.bigtable.v2.Bigtable",
    "google.bigtable.admin.v2.BigtableTableAdmin",
    "google.bigtable.admin.v2.BigtableInstanceAdmin",
    "google.longrunning.Operations",
    "strata.admin.v1.StrataAdmin",
    "grpc.health.v1.Health",
];

fn builder() -> Builder<'static> {
    let mut b = Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTORS)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for s in SERVICES {
        b = b.with_service_name(s);
    }
    b
}

/// The reflection services, v1 and v1alpha (which older tools use).
#[allow(clippy::type_complexity)]
pub fn services() -> Result<
    (
        ServerReflectionServer<impl ServerReflection>,
        ServerReflectionAlphaServer<impl ServerReflectionAlpha>,
    ),
    Error,
> {
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The descriptors name every service the reflection lists, and
    /// StrataAdmin's messages with the field numbers of `tablets`.
    #[test]
    fn descriptors_hold_every_listed_service() {
        services().expect("the descriptors decode and resolve");
        let set = prost_types::FileDescriptorSet::decode(DESCRIPTORS).expect("decode");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("{}.{}", f.package(), s.name()))
            })
            .collect();
        for s in SERVICES.iter().filter(|s| !s.starts_with("grpc.health")) {
            assert!(
                services.iter().any(|x| x == s),
                "{s} not in descriptors.bin"
            );
        }
        let admin = set
            .file
            .iter()
            .find(|f| f.package() == "strata.admin.v1")
            .expect("strata_admin.proto");
        let fields = |msg: &str| -> Vec<(String, i32)> {
            admin
                .message_type
                .iter()
                .find(|m| m.name() == msg)
                .unwrap_or_else(|| panic!("no message {msg}"))
                .field
                .iter()
                .map(|f| (f.name().to_string(), f.number()))
                .collect()
        };
        // A round trip through prost with each field set tells the tags
        // in tablets.rs; these are the .proto's.
        assert_eq!(
            fields("CompactTableResponse"),
            [
                ("size_bytes_before".to_string(), 1),
                ("size_bytes_after".to_string(), 2),
                ("files_before".to_string(), 3),
                ("files_after".to_string(), 4),
            ]
        );
        assert_eq!(fields("Tablet").len(), 12);
        assert_eq!(fields("Tablet")[11], ("cluster_id".to_string(), 12));
    }
}
