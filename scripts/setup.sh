#!/usr/bin/env bash
# Installs what building and testing landgate needs on a fresh Debian machine.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Go >= 1.24 builds the end-to-end control plane and the launcher's MPTCP
# test program. Debian bookworm's golang-go (1.19) is too old, so it is not
# installed from apt: take the official toolchain in /usr/local/go.
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  log "Go not found: install Go >= 1.24 into /usr/local/go (https://go.dev/dl), then re-run"
  exit 1
fi
go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ "${go_minor:-0}" -lt 24 ]; then
  log "$(go env GOVERSION) is too old: install Go >= 1.24 into /usr/local/go (https://go.dev/dl)"
  exit 1
fi

# Debian packages: a C toolchain for ring, musl-tools for the static
# launcher, openssl for certs/ and the test cluster's PKI, curl and jq for
# `just dev`, iproute2 (ss) for the end-to-end suite.
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
command -v ss >/dev/null || need_apt+=(iproute2)
# A real registry for the image-resolution tests (crates/registry,
# tests/e2e/src/registry.rs): docker-registry (distribution), skopeo to push
# into it, htpasswd (apache2-utils) for its basic auth.
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
# The real node (tests/e2e/node.sh, `just e2e-node`): containerd 1.6 and runc
# run the pods, the CNI bridge and host-local plugins give them addresses,
# iptables routes pods to the API server, buildah builds the Dockerfile
# without a Docker engine, busybox-static is the workloads' shell.
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v buildah >/dev/null || need_apt+=(buildah)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  log "cargo not found: install Rust with rustup (https://rustup.rs), then re-run"
  exit 1
fi
# rust-toolchain.toml pins the toolchain; install it only if it is missing.
if ! rustup run "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" rustc --version >/dev/null 2>&1; then
  log "installing the Rust toolchain pinned in rust-toolchain.toml"
  rustup toolchain install
fi
# The musl target is for the static release binaries (`just build`, the
# Dockerfile); the test suite builds for the host, so a failure here is
# reported but does not stop the tests.
rustup target list --installed | grep -q x86_64-unknown-linux-musl \
  || rustup target add x86_64-unknown-linux-musl \
  || log "warning: could not add the x86_64-unknown-linux-musl target; \`just build\` needs it"

if ! command -v just >/dev/null; then
  log "installing just (cargo install, about a minute)"
  cargo install just --locked --version 1.59.0 --quiet
fi
# cargo-deny checks the dependency policy in deny.toml (`just deny`, part of
# `just test`); pinned so that a new release cannot change what passes.
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.2$'; then
  log "installing cargo-deny (cargo install, about five minutes)"
  cargo install cargo-deny --locked --version 0.20.2 --quiet
fi
log "ready"
