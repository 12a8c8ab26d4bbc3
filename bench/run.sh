#!/usr/bin/env bash
# `just bench`: build what is measured (landgate's shipped static launcher,
# the webhook with its /echo baseline, the physical floor, the peers), then
# run bench/src (landgate-bench), which prints one table and writes
# bench/results.md. Peers are built into $LANDGATE_PEERS_DIR (default
# ~/.cache/landgate/peers), never into the repository; one that cannot be
# built here is a row saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
peers=${LANDGATE_PEERS_DIR:-$HOME/.cache/landgate/peers}
out=$target/bench
mkdir -p "$out" "$peers/bin" "$peers/src"
log=$out/build.log
: >"$log"

# Bench-only tools (not needed by `just test`): Debian packages.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    echo "bench: installing ${need[*]} (apt-get)"
    apt-get install -y -qq "${need[@]}" >>"$log" 2>&1 ||
        { apt-get update -qq >>"$log" 2>&1 && apt-get install -y -qq "${need[@]}" >>"$log" 2>&1; }
fi

# `just bench launcher` needs neither the webhook (a fat-LTO build, minutes
# on two cores) nor the criterion run.
webhook=1
if (($#)) && [[ " $* " != *" webhook "* ]]; then webhook=0; fi

echo "bench: building landgate (static musl launcher; webhook with bench-echo; the driver)"
cargo build -q --profile launcher --target x86_64-unknown-linux-musl -p landgate-launcher --bin landgate --example ruleset_timing
if ((webhook)); then
    cargo build -q --profile release-bench --target x86_64-unknown-linux-musl -p landgate-webhook --features bench-echo
fi
cargo build -q --release -p landgate-bench
musl-gcc -static -O2 -o "$out/floor" bench/floor/floor.c
musl-gcc -static -O2 -o "$out/openloop" bench/floor/openloop.c

# Each peer: `name=path`, or `name=!why it is not measured`.
peer_list=()
last_error() { grep -E -i 'error|denied|forbidden|not found' "$1" | tail -n 1 | tr ',|' ';/' | cut -c1-200; }

# rust-landlock's sandboxer example, from the landlock crate's published
# source (the version Cargo.lock pins).
ll_version=$(awk '/^name = "landlock"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
sandboxer=$peers/sandboxer-target/release/examples/sandboxer
if [[ ! -x $sandboxer ]]; then
    cargo fetch -q
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/landlock-"$ll_version" | head -n 1)
    rm -rf "$peers/src/landlock-$ll_version" && cp -r "$src" "$peers/src/"
    echo "bench: building sandboxer (landlock $ll_version)"
    (cd "$peers/src/landlock-$ll_version" &&
        cargo build -q --release --example sandboxer --target-dir "$peers/sandboxer-target") >>"$log" 2>&1 || true
fi
if [[ -x $sandboxer ]]; then
    peer_list+=("sandboxer=$sandboxer")
else
    peer_list+=("sandboxer=!cargo build --example sandboxer (landlock $ll_version) failed: $(last_error "$log")")
fi

peer_list+=("bwrap=$(command -v bwrap || echo '!bubblewrap is not installed')")

# landrun (Go): from the module proxy, or from a source tree placed in
# $peers/src/landrun (the proxy has refused the module on this project's
# machines: 403).
landrun=$peers/bin/landrun
if [[ ! -x $landrun ]] && command -v go >/dev/null; then
    echo "bench: building landrun"
    if [[ -d $peers/src/landrun ]]; then
        (cd "$peers/src/landrun" && go build -o "$landrun" ./cmd/landrun) >>"$log" 2>&1 || true
    else
        GOBIN=$peers/bin go install github.com/zouuup/landrun/cmd/landrun@latest >"$out/landrun.log" 2>&1 || true
        cat "$out/landrun.log" >>"$log"
    fi
fi
if [[ -x $landrun ]]; then
    peer_list+=("landrun=$landrun")
elif ! command -v go >/dev/null; then
    peer_list+=("landrun=!no Go toolchain")
else
    peer_list+=("landrun=!go install github.com/zouuup/landrun/cmd/landrun@latest: $(last_error "$out/landrun.log")")
fi

# nono (nono-cli from crates.io).
nono=$peers/bin/nono
if [[ ! -x $nono ]]; then
    echo "bench: building nono-cli (cargo install; several minutes the first time)"
    CARGO_TARGET_DIR=$peers/nono-target cargo install -q nono-cli --root "$peers" >"$out/nono.log" 2>&1 || true
    cat "$out/nono.log" >>"$log"
fi
if [[ -x $nono ]]; then
    peer_list+=("nono=$nono")
else
    peer_list+=("nono=!cargo install nono-cli: $(last_error "$out/nono.log")")
fi

# The engine against plain serde: criterion's own `review` bench.
criterion=$out/criterion-review.txt
if ((webhook)) && [[ ${LANDGATE_BENCH_SKIP_CRITERION:-} != 1 ]]; then
    echo "bench: criterion review bench (10 containers)"
    # Thin LTO: the release profile's fat LTO takes tens of minutes on two
    # shared cores, and both sides of this ratio are built alike.
    cargo bench -q -p landgate-webhook --bench review \
        --config 'profile.bench.lto="thin"' --config 'profile.bench.codegen-units=16' \
        -- --noplot 'review/(landgate|serde_typed_pod)/10$' >"$criterion" 2>>"$log"
fi

IFS=,
LANDGATE_BENCH_LAUNCHER=$target/x86_64-unknown-linux-musl/launcher/landgate \
LANDGATE_BENCH_WEBHOOK=$target/x86_64-unknown-linux-musl/release-bench/landgate-webhook \
LANDGATE_BENCH_FLOOR=$out/floor \
LANDGATE_BENCH_OPENLOOP=$out/openloop \
LANDGATE_BENCH_RULESET=$target/x86_64-unknown-linux-musl/launcher/examples/ruleset_timing \
LANDGATE_BENCH_PEERS="${peer_list[*]}" \
LANDGATE_BENCH_CRITERION=$criterion \
LANDGATE_BENCH_OUT=$root/bench/results.md \
LANDGATE_BENCH_DATE="$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)" \
    "$target/release/landgate-bench" "$@"
