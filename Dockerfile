# mentiondesk — multi-stage build: compile in the Rust image, run in a small Debian image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY assets ./assets
COPY models ./models
RUN cargo build --release --locked --bin mentiondesk

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mentiondesk \
 && mkdir -p /app/data \
 && chown -R mentiondesk /app
WORKDIR /app
COPY --from=build /src/target/release/mentiondesk /usr/local/bin/mentiondesk
COPY config ./config
USER mentiondesk
# The sled store: mount a volume here so alerts survive the container.
VOLUME ["/app/data"]
# Both override the mounted config's [store] path and [server] listen (README.md, "Docker"),
# so the store is always on the volume and the endpoints are reachable from outside the
# container whatever the config says. Set MENTIONDESK_LISTEN to move the port; the health
# check follows it.
ENV MENTIONDESK_STORE=/app/data/mentiondesk.sled \
    MENTIONDESK_LISTEN=0.0.0.0:8080
EXPOSE 8080
# /healthz on the port the daemon really listens on (the one MENTIONDESK_LISTEN names):
# HTTP 503 when a chat platform refuses the bot's credentials, no answer when the daemon is
# down or listening elsewhere.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${MENTIONDESK_LISTEN##*:}/healthz" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["mentiondesk"]
CMD ["run", "--config", "config/mentiondesk.toml"]
