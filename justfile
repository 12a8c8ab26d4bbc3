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
    target/debug/landgate-webhook serve --dev-certs --dev-certs-dir .dev-certs --no-namespace-watch \
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

# The whole suite: formatting, lints, dependency policy, unit and integration tests, the end-to-end suite, then the real node.
test: lint deny unit e2e e2e-node

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Dependency policy (deny.toml): licences, duplicate majors, sources; advisories when the RustSec database can be fetched.
deny:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-deny >/dev/null || { echo "cargo-deny not found: run scripts/setup.sh (cargo install cargo-deny --locked)" >&2; exit 1; }
    cargo deny --log-level error check bans licenses sources
    # The advisory database is a git repository on github.com; without it
    # the check cannot run, which is said rather than passed.
    if cargo deny --log-level error fetch db 2>/dev/null; then
        cargo deny --log-level error check advisories
    else
        echo "deny: SKIPPED advisories: cannot fetch the RustSec advisory database (https://github.com/rustsec/advisory-db) from this machine"
    fi

# Unit and integration tests (real kernel, real TLS), without the cluster.
unit:
    cargo test --workspace --exclude landgate-e2e

# End-to-end: build (once, cached) and start a real kube-apiserver, register the webhook, run the scenarios.
e2e:
    bash tests/e2e/build-control-plane.sh >/dev/null
    cargo test -p landgate-e2e --test e2e -- --test-threads=1

# On a real node (root): kubelet, containerd, images built from the Dockerfile with buildah, landgate installed from manifests/; pods run sandboxed.
e2e-node:
    bash tests/e2e/build-control-plane.sh --node >/dev/null
    bash tests/e2e/images.sh
    cargo test -p landgate-e2e --test node -- --test-threads=1

# Start / stop a local control plane (etcd, kube-apiserver, kube-controller-manager) for manual use; `--node` adds a real node with landgate installed (root).
cluster-up *args:
    if [[ " {{args}} " == *" --node "* ]]; then bash tests/e2e/build-control-plane.sh --node >/dev/null; fi
    bash tests/e2e/cluster.sh up {{args}}

cluster-down:
    bash tests/e2e/cluster.sh down

# Benchmarks side by side (not part of `just test`): landgate's launcher beside the physical floor, rust-landlock's sandboxer, bwrap, landrun and nono; the webhook beside an echo handler over the same TLS. Builds what it measures (peers in ~/.cache/landgate/peers), prints one table, writes bench/results.md. `just bench launcher` or `just bench webhook` runs one half.
bench *parts:
    bash bench/run.sh {{parts}}

# The criterion and timing-loop benches of each crate: the engine, the whole review, image resolution, the server under load, the launcher's per-exec overhead.
bench-criterion:
    cargo bench -p landgate-webhook --bench mutate
    cargo bench -p landgate-webhook --bench review
    cargo bench -p landgate-webhook --bench resolve
    cargo bench -p landgate-webhook --bench serve
    cargo bench -p landgate-launcher --bench exec_overhead

# Soak (not part of `just test`): the release webhook, two replicas behind a loopback proxy, paced reviews under idle/slow/oversized/malformed/HTTP/2-flood abuse, two certificate rotations and a replica restart. Prints its figures; fails on a missed goal.
soak reviews="10000" idle="1000" rate="500":
    #!/usr/bin/env bash
    set -euo pipefail
    # Each idle connection costs the soak three descriptors (client, both
    # proxy ends) and a replica one; the replicas inherit this limit too.
    want=16384
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited ]] && (( hard < want )); then want=$hard; fi
    ulimit -n "$want"
    echo "soak: open-file limit $(ulimit -n)"
    LANDGATE_SOAK_REVIEWS={{reviews}} LANDGATE_SOAK_IDLE={{idle}} LANDGATE_SOAK_RATE={{rate}} \
        cargo bench -p landgate-webhook --bench soak

# Preview what the webhook would do to a manifest (Pod, Deployment, Job, ...).
preview file output="yaml":
    cargo run -q -p landgate-webhook -- preview -f {{file}} -o {{output}}

# Static release binaries (musl): the webhook, and the launcher from its own profile (`launcher`: size, abort on panic).
build:
    cargo build --release --target x86_64-unknown-linux-musl -p landgate-webhook
    cargo build --profile launcher --target x86_64-unknown-linux-musl -p landgate-launcher
    ls -l target/x86_64-unknown-linux-musl/launcher/landgate target/x86_64-unknown-linux-musl/release/landgate-webhook

# Container images (needs a Docker engine): the webhook and the launcher image.
image tag="0.1.0":
    docker build --target webhook -t ghcr.io/landgate-dev/landgate-webhook:{{tag}} .
    docker build --target launcher -t ghcr.io/landgate-dev/landgate-launcher:{{tag}} .

fmt:
    cargo fmt --all

clippy:
    cargo clippy --workspace --all-targets -- -D warnings

# Fuzz every target for `seconds` each (nightly + cargo-fuzz; not part of `just test`). Findings land in fuzz/artifacts/<target>/; see fuzz/README.md.
fuzz seconds="60" sanitizer="none":
    #!/usr/bin/env bash
    set -euo pipefail
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "fuzz: cargo-fuzz is not installed; installing it (cargo install cargo-fuzz --locked)"
        cargo install cargo-fuzz --locked
    fi
    # sanitizer "none": the code under test is safe Rust, and ASan would cost
    # half the executions of a short run (`just fuzz 600 address` for it).
    cargo +nightly fuzz build --sanitizer {{sanitizer}}
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    failed=0
    report=()
    for target in $(cargo +nightly fuzz list); do
        mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
        # Byte-level targets also start from their regression inputs; the
        # structure-aware ones store those as JSON, not as fuzzer input.
        seeds=()
        case $target in
            admission_review) seeds=("fuzz/regressions/$target" tests/fixtures/admission) ;;
            policy|status) seeds=("fuzz/regressions/$target") ;;
        esac
        dict=()
        [[ -f "fuzz/dicts/$target.dict" ]] && dict=("-dict=fuzz/dicts/$target.dict")
        before=$(ls "fuzz/artifacts/$target" | wc -l)
        echo "fuzz: $target for {{seconds}}s"
        cargo +nightly fuzz run --sanitizer {{sanitizer}} "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
            -max_total_time={{seconds}} -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || true
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        [[ -n $runs ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        crashes=$(( $(ls "fuzz/artifacts/$target" | wc -l) - before ))
        if (( crashes > 0 )) || [[ -z $runs ]]; then
            failed=1
            # The panic message and the saved input, without the backtrace;
            # the whole log when libFuzzer never ran.
            grep -A1 -E "panicked at|^==[0-9]+== ERROR|Test unit written to" "$log" || tail -n 40 "$log"
        fi
        report+=("$(printf '%-18s %12s executions %8s/s %3d crashes' "$target" "${runs:-?}" "${rate:-?}" "$crashes")")
    done
    printf '%s\n' "${report[@]}"
    if (( failed )); then
        echo "fuzz: findings in fuzz/artifacts/ (reproduce: cargo +nightly fuzz run <target> <file>)" >&2
        exit 1
    fi
