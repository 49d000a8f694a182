# Multi-stage build: compile in the Rust image, run in a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
COPY benches ./benches
RUN cargo build --release --locked --bin tokengate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tokengate --create-home tokengate \
    && install -d -o tokengate -g tokengate -m 0700 /var/lib/tokengate/data
COPY --from=build /src/target/release/tokengate /usr/local/bin/tokengate
COPY config/tokengate.toml /etc/tokengate/tokengate.toml
WORKDIR /var/lib/tokengate
USER tokengate
# The shipped config keeps the SQLite store (data/tokengate.db) and the audit spill file
# (data/audit-spill.ndjson) here, relative to the working directory: on a volume, a new
# container starts with the tokens, and with the audit events that were waiting for the store.
VOLUME /var/lib/tokengate/data
# Proxy and admin listeners. Mount your own config at /etc/tokengate/tokengate.toml (read without
# --config), name another with TOKENGATE_CONFIG, or set TOKENGATE_SECTION__KEY variables
# (TOKENGATE_DATABASE__URL, TOKENGATE_ADMIN__TOKEN, ...).
EXPOSE 8080 8081
ENV TOKENGATE_ADMIN__LISTEN=0.0.0.0:8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8081/healthz || curl -fsSk https://127.0.0.1:8081/healthz || exit 1
ENTRYPOINT ["tokengate"]
CMD ["serve"]
