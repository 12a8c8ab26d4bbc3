# syntax=docker/dockerfile:1.7
#
# Two images from one build (BuildKit):
#
#   docker build --target webhook  -t ghcr.io/landgate-dev/landgate-webhook:0.1.0 .
#   docker build --target launcher -t ghcr.io/landgate-dev/landgate-launcher:0.1.0 .
#
# x86_64 only (the musl target is hard-wired): on other hosts add
# --platform linux/amd64.
#
# Both binaries are static musl executables. The webhook runs on distroless
# static (CA certificates, /etc/passwd, /tmp; no shell); the launcher image is
# just the `landgate` binary, which the injected landgate-init container runs
# as `/usr/local/bin/landgate install /landgate ...` to copy it into the pod.
#
# Two build arguments exist for machines that cannot pull rust:* or
# gcr.io/distroless (the test node, tests/e2e/node.sh, builds offline with
# buildah); the defaults are the release build:
#
#   BINARIES=build      compile in the image (the `build` stage below)
#   BINARIES=prebuilt   take target/x86_64-unknown-linux-musl/release/
#                       landgate-webhook and …/launcher/landgate (the
#                       launcher's own profile) from the build context,
#                       made beforehand by `just build` (the same cargo
#                       commands as the `build` stage); .dockerignore lets
#                       exactly those two files through
#   WEBHOOK_BASE        the webhook's runtime base: distroless static, or any
#                       image with the same contents (CA bundle, /etc/passwd
#                       with nonroot 65532, /tmp), e.g. the one
#                       tests/e2e/images/base makes from Debian's files
#
# Either way the launcher and webhook stages below are the ones built: only
# where /out comes from and what lies under the webhook changes.

# Keep equal to the channel in rust-toolchain.toml.
ARG RUST_VERSION=1.95.0
ARG BINARIES=build
ARG WEBHOOK_BASE=gcr.io/distroless/static-debian12:nonroot

# === build ===
FROM rust:${RUST_VERSION}-bookworm AS build

# musl-gcc compiles ring's C and assembly for the musl target. Not pinned:
# bookworm only ever ships one (security-patched) version.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Install what rust-toolchain.toml asks for, in a layer that only changes with
# it. `rustup toolchain install` without arguments reads the file (rustup >=
# 1.28) but may skip targets of a toolchain that is already present, so the
# musl target is added explicitly.
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
 && rustup target add x86_64-unknown-linux-musl

COPY . .

# target/ lives in a cache mount, so the binaries are copied out in the same
# step. Both must be fully static: the launcher runs inside arbitrary images,
# and the runtime images have no dynamic loader.
RUN --mount=type=cache,id=landgate-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=landgate-cargo-git,target=/usr/local/cargo/git/db \
    --mount=type=cache,id=landgate-target,target=/src/target,sharing=locked \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p landgate-webhook \
 && cargo build --profile launcher --locked --target x86_64-unknown-linux-musl -p landgate-launcher \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-musl/release/landgate-webhook \
       target/x86_64-unknown-linux-musl/launcher/landgate /out/ \
 && for bin in /out/landgate-webhook /out/landgate; do \
        readelf -lW "$bin" >/tmp/phdrs || exit 1; \
        if grep -q 'program interpreter' /tmp/phdrs; then \
            echo "$bin is dynamically linked" >&2; exit 1; \
        fi; \
    done \
 && /out/landgate-webhook --version

# === prebuilt ===
# Host-built binaries; tests/e2e/images.sh checks they are static first.
FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-musl/release/landgate-webhook \
     target/x86_64-unknown-linux-musl/launcher/landgate /out/

# === binaries ===
# The stage named by BINARIES; BuildKit and buildah skip the other one.
# hadolint ignore=DL3006
FROM ${BINARIES} AS binaries

# === launcher ===
FROM scratch AS launcher
LABEL org.opencontainers.image.title="landgate-launcher" \
      org.opencontainers.image.description="Static Landlock launcher copied into sandboxed pods by landgate-init" \
      org.opencontainers.image.source="https://github.com/landgate-dev/landgate" \
      org.opencontainers.image.licenses="Apache-2.0"
# Not at /landgate: the init container mounts the shared emptyDir there.
COPY --from=binaries --chmod=0555 /out/landgate /usr/local/bin/landgate
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/landgate"]

# The last stage, so a plain `docker build .` also gives the webhook.
# === webhook ===
FROM ${WEBHOOK_BASE} AS webhook
LABEL org.opencontainers.image.title="landgate-webhook" \
      org.opencontainers.image.description="Mutating admission webhook that sandboxes pods with Linux Landlock" \
      org.opencontainers.image.source="https://github.com/landgate-dev/landgate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binaries /out/landgate-webhook /usr/local/bin/landgate-webhook
# Numeric, so that the kubelet can check runAsNonRoot against the image.
USER 65532:65532
# 8443: HTTPS admission reviews; 8080: /healthz, /readyz, /metrics.
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/landgate-webhook"]
CMD ["serve", "--help"]
