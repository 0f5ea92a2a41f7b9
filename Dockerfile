# The strata binary in a small image (docs/deploy.md). The build step is
# the README's (`cargo build --release -p strata`); the image runs
# `strata serve`, on local disk by default, or as a cluster server with
# --etcd and --storage (deploy/kubernetes/).
#
#   docker build -t strata .
#   docker run -p 8086:8086 strata          # a single server, data in /data
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p strata && cp target/release/strata /usr/local/bin/strata

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data strata \
    && mkdir -p /data && chown strata /data
COPY --from=build /usr/local/bin/strata /usr/local/bin/strata
USER strata
WORKDIR /data
EXPOSE 8086 8087
ENTRYPOINT ["strata"]
CMD ["serve", "--listen", ":8086", "--http-listen", ":8087", "--data-dir", "/data"]
