# The reference StreamHouse server (examples/unified_server.rs) with its load generator, for
# the local stack in monitoring/compose.yaml. Build from the repository root:
#   docker build -t streamhouse-unified-server .
# No BuildKit-only syntax, so the classic builder (docker-compose v1) builds it too.

# The toolchain of the workspace's rust-version, on the Debian release the runtime uses (glibc).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --example unified_server \
    && install -m 0755 target/release/examples/unified_server /usr/local/bin/unified_server

FROM debian:bookworm-slim
# CA roots: S3 (STREAMHOUSE_OBJECT_STORE=s3://...) and OTLP over https verify with them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/streamhouse streamhouse \
    && mkdir -p /var/lib/streamhouse/data \
    && chown -R streamhouse:streamhouse /var/lib/streamhouse
COPY --from=build /usr/local/bin/unified_server /usr/local/bin/unified_server
USER 10001:10001
WORKDIR /var/lib/streamhouse
ENV STREAMHOUSE_HTTP_ADDR=0.0.0.0:8080 \
    STREAMHOUSE_OBJECT_STORE=/var/lib/streamhouse/data
# A fresh named volume takes the directory's owner from the image, so the non-root user can write.
VOLUME ["/var/lib/streamhouse/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/unified_server"]
