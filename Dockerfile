# dialbridge images: the bridge, sbc-sim and sipp, from this repository's own sources.
# Build: docker build -t dialbridge .   (see docker-compose.yml for the whole demo)
# The Rust image's toolchain and gcc are all the build needs (Opus is pure Rust).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dialbridge --bin sbc-sim

# Kamailio in front of the cluster's nodes (docker-compose.yml, profile `cluster`):
# Debian's package with this repository's configuration and test certificate.
# Build: docker build --target kamailio -t dialbridge-kamailio .  (run.sh names the nodes:
# docker-compose.yml gives its command.) The bridge's image is the last stage, below.
FROM debian:bookworm-slim AS kamailio
RUN apt-get update \
 && apt-get install -y --no-install-recommends kamailio kamailio-tls-modules \
 && rm -rf /var/lib/apt/lists/*
COPY deploy /opt/dialbridge/deploy
COPY fixtures/tls /opt/dialbridge/fixtures/tls
EXPOSE 5060/udp 5060/tcp 5061/tcp

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends sip-tester ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/dialbridge /src/target/release/sbc-sim /usr/local/bin/
COPY fixtures /opt/dialbridge/fixtures
# Call detail records and recordings (fixtures/docker.toml): mount a volume here.
RUN mkdir -p /var/lib/dialbridge
VOLUME /var/lib/dialbridge
WORKDIR /opt/dialbridge
EXPOSE 5060/udp 5060/tcp 5061/tcp 8088/tcp 20000-39998/udp
CMD ["dialbridge", "serve", "--config", "/opt/dialbridge/fixtures/docker.toml"]

