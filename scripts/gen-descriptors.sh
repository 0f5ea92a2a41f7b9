#!/usr/bin/env bash
# Regenerates crates/strata-server/proto/descriptors.bin, the FileDescriptorSet
# the server's gRPC reflection serves (docs/observability.md, "Reflection"):
# the Cloud Bigtable APIs' .proto files as Google publishes them in the npm
# packages @google-cloud/bigtable and google-gax (Apache-2.0), with every
# import, plus Strata's own crates/strata-server/proto/strata/admin/v1/
# strata_admin.proto, compiled by protoc from PyPI's grpcio-tools. Needs npm
# and python3 with venv and the registries; run it when a package version
# below changes or strata_admin.proto does, and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
BIGTABLE="@google-cloud/bigtable@6.5.1"
GAX="google-gax@5.0.8"
TOOLS="grpcio-tools==1.85.1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$BIGTABLE" "$GAX" >/dev/null)
mkdir "$work/bt" "$work/gax"
tar xzf "$work"/google-cloud-bigtable-*.tgz -C "$work/bt"
tar xzf "$work"/google-gax-*.tgz -C "$work/gax"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$TOOLS"
out=crates/strata-server/proto/descriptors.bin
"$work/venv/bin/python" -m grpc_tools.protoc \
    -I"$work/bt/package/build/protos" -I"$work/gax/package/build/protos" \
    -Icrates/strata-server/proto \
    --include_imports --descriptor_set_out="$out" \
    google/bigtable/v2/bigtable.proto \
    google/bigtable/admin/v2/bigtable_table_admin.proto \
    google/bigtable/admin/v2/bigtable_instance_admin.proto \
    google/longrunning/operations.proto \
    strata/admin/v1/strata_admin.proto
echo "wrote $out ($(wc -c <"$out") bytes) from $BIGTABLE, $GAX and strata_admin.proto"
