# landgate developer recipes. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

sample := "tests/fixtures/pods/nginx.yaml"

default:
    @just --list

# Run the webhook locally with generated dev certificates, preview a sample pod with curl, keep serving.
dev port="8443" admin="8080":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build -p landgate-webhook
    target/debug/landgate-webhook serve --dev-certs --dev-certs-dir .dev-certs \
        --listen 127.0.0.1:{{port}} --admin-listen 127.0.0.1:{{admin}} &
    pid=$!
    trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
    for _ in $(seq 100); do
        curl -sf http://127.0.0.1:{{admin}}/readyz >/dev/null && break
        kill -0 $pid 2>/dev/null || { echo "webhook exited; see the log above" >&2; exit 1; }
        sleep 0.1
    done
    echo
    echo "# curl --cacert .dev-certs/ca.crt --data-binary @{{sample}} https://localhost:{{port}}/preview?output=yaml"
    curl -sS --fail-with-body --cacert .dev-certs/ca.crt --data-binary @{{sample}} \
        "https://localhost:{{port}}/preview?output=yaml"
    echo
    echo "landgate is serving https://localhost:{{port}}/mutate and /preview (metrics: http://127.0.0.1:{{admin}}/metrics). Ctrl-C stops it."
    wait $pid

# The whole suite: formatting, lints, unit and integration tests, then the end-to-end suite.
test: lint unit e2e

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Unit and integration tests (real kernel, real TLS), without the cluster.
unit:
    cargo test --workspace --exclude landgate-e2e

# End-to-end: build (once, cached) and start a real kube-apiserver, register the webhook, run the scenarios.
e2e:
    bash tests/e2e/build-control-plane.sh >/dev/null
    cargo test -p landgate-e2e -- --test-threads=1

# Start / stop a local control plane (etcd, kube-apiserver, kube-controller-manager) for manual use.
cluster-up:
    bash tests/e2e/cluster.sh up

cluster-down:
    bash tests/e2e/cluster.sh down

# Benchmarks: the mutation engine (criterion) and the launcher's per-exec overhead.
bench:
    cargo bench -p landgate-webhook --bench mutate
    cargo bench -p landgate-webhook --bench serve
    cargo bench -p landgate-launcher --bench exec_overhead

# Preview what the webhook would do to a manifest (Pod, Deployment, Job, ...).
preview file output="yaml":
    cargo run -q -p landgate-webhook -- preview -f {{file}} -o {{output}}

# Static release binaries (musl): the webhook and the launcher.
build:
    cargo build --release --target x86_64-unknown-linux-musl -p landgate-webhook -p landgate-launcher
    ls -l target/x86_64-unknown-linux-musl/release/landgate target/x86_64-unknown-linux-musl/release/landgate-webhook

# Container images (needs a Docker engine): the webhook and the launcher image.
image tag="0.1.0":
    docker build --target webhook -t ghcr.io/landgate-dev/landgate-webhook:{{tag}} .
    docker build --target launcher -t ghcr.io/landgate-dev/landgate-launcher:{{tag}} .

fmt:
    cargo fmt --all

clippy:
    cargo clippy --workspace --all-targets -- -D warnings
