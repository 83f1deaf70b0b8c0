# syntax=docker/dockerfile:1.7
# One image for every Shardline binary: shard-node, shard-controller, the
# shardline CLI (also installed as the kubectl plugin kubectl-shardline) and
# shardline-operator. Build: docker build -t shardline:dev .  (docs/kubernetes.md)

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Protos are compiled with protox (pure Rust): no protoc needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \; \
 && ls -l /out

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot \
 && install -d -o 65532 -g 65532 /data
COPY --from=build /out/ /usr/local/bin/
RUN if [ -x /usr/local/bin/shardline ]; then ln -s shardline /usr/local/bin/kubectl-shardline; fi
USER 65532:65532
WORKDIR /data
# Pods name the program (see operator/src/builders/pod.rs); this default
# prints the CLI's help.
CMD ["shardline", "--help"]
