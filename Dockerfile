# syntax=docker/dockerfile:1
# vastwatch: multi-stage build. The builder compiles with the same command CI runs
# (`cargo build --release --locked --bin vastwatch`); the runtime image holds the binary,
# CA certificates, the shipped rules and an example config, and runs as a non-root user.
#
#   docker build -t vastwatch .
#   docker run -d --name vastwatch -p 127.0.0.1:9469:9469 \
#     -e VAST_API_KEY -e VASTWATCH_TOKEN \
#     -v "$PWD/vastwatch.yaml:/etc/vastwatch/vastwatch.yaml:ro" \
#     -v vastwatch-data:/var/lib/vastwatch vastwatch
#
# Base images are pinned to exact releases; pin them to digests as well
# (`rust:1.95.0-slim-bookworm@sha256:...`) where your registry policy asks for it.

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the manifest, the lock file or the
# bench and example targets it names change, not on every source edit.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY examples ./examples
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    mkdir -p src && touch src/lib.rs src/main.rs \
    && cargo fetch --locked
COPY src ./src
COPY migrations ./migrations
ARG VASTWATCH_BUILD_ID=docker
ENV VASTWATCH_BUILD_ID=${VASTWATCH_BUILD_ID}
# Cache mounts keep the registry and build artifacts between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vastwatch \
    && install -D target/release/vastwatch /out/vastwatch

FROM debian:12.12-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 vastwatch \
    && useradd --system --uid 10001 --gid vastwatch --home-dir /var/lib/vastwatch vastwatch \
    && mkdir -p /var/lib/vastwatch /etc/vastwatch/rules \
    && chown vastwatch:vastwatch /var/lib/vastwatch
COPY --from=builder /out/vastwatch /usr/local/bin/vastwatch
COPY rules/*.yaml /usr/share/vastwatch/rules/
COPY deploy/vastwatch.yaml /etc/vastwatch/vastwatch.yaml
USER vastwatch:vastwatch
WORKDIR /var/lib/vastwatch
ENV VASTWATCH_CONFIG=/etc/vastwatch/vastwatch.yaml \
    VASTWATCH_LOG_FORMAT=json
# The database lives here; mount the config at /etc/vastwatch.
VOLUME ["/var/lib/vastwatch"]
# HTTP API and /metrics (the `listen` key).
EXPOSE 9469
# The binary checks itself (GET /healthz on its `listen` address), so the image needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["vastwatch", "health"]
# SIGTERM stops it cleanly within 10 s; SIGHUP (`docker kill -s HUP`) reloads the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["vastwatch"]
CMD ["run"]
