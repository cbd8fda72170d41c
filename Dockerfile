# syntax=docker/dockerfile:1
# vastwatch: multi-stage build. The builder compiles with the same command CI runs
# (`cargo build --release --locked --bin vastwatch`); the runtime image holds the binary,
# CA certificates and nothing else, and runs as a non-root user.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
ARG VASTWATCH_BUILD_ID=docker
ENV VASTWATCH_BUILD_ID=${VASTWATCH_BUILD_ID}
COPY . .
# Cache mounts keep the registry and build artifacts between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vastwatch \
    && install -D target/release/vastwatch /out/vastwatch

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 vastwatch \
    && useradd --system --uid 10001 --gid vastwatch --home-dir /var/lib/vastwatch vastwatch \
    && mkdir -p /var/lib/vastwatch /etc/vastwatch \
    && chown vastwatch:vastwatch /var/lib/vastwatch
COPY --from=builder /out/vastwatch /usr/local/bin/vastwatch
USER vastwatch
WORKDIR /var/lib/vastwatch
ENV VASTWATCH_CONFIG=/etc/vastwatch/vastwatch.yaml
# The database lives here; mount the config at /etc/vastwatch.
VOLUME ["/var/lib/vastwatch"]
# HTTP API and /metrics (the `listen` key).
EXPOSE 9469
ENTRYPOINT ["vastwatch", "run"]
