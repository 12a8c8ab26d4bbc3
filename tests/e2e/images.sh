#!/usr/bin/env bash
# Builds the test node's images with buildah (daemonless; no Docker engine),
# offline, into a cached image store:
#
#   landgate-launcher, landgate-webhook   the project's Dockerfile, stages
#                                         `launcher` and `webhook`, with
#                                         BINARIES=prebuilt (static musl
#                                         binaries built here by cargo) and
#                                         WEBHOOK_BASE=the base image below
#   landgate-e2e/base      distroless-static's contents from Debian's files
#   landgate-e2e/busybox   Debian's busybox-static
#   landgate-e2e/golisten  a Go program that binds ports (MPTCP by default)
#   landgate-e2e/pause     the sandbox image: a static C program
#
#   images.sh [NAME...]    build what changed (all, or base, landgate,
#                          busybox, golisten, pause)
#
# The store is vfs (no overlay mounts to clean up, works on any filesystem)
# under $LANDGATE_CACHE_DIR/buildah; --layers reuses every step whose inputs
# did not change, so a second run only re-checks. Images are tagged
# localhost/<name>:e2e; node.sh pushes them to the node's registry.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${LANDGATE_CACHE_DIR:-$HOME/.cache/landgate}"
STORE="$CACHE/buildah"
TAG=e2e
MUSL=x86_64-unknown-linux-musl

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

missing=()
command -v buildah >/dev/null || missing+=("buildah (apt-get install buildah)")
command -v musl-gcc >/dev/null || missing+=("musl-gcc (apt-get install musl-tools)")
command -v readelf >/dev/null || missing+=("readelf (apt-get install binutils)")
[ -x /bin/busybox ] || missing+=("/bin/busybox (apt-get install busybox-static)")
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=("/etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)")
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || missing+=("go >= 1.24 (in /usr/local/go)")
command -v cargo >/dev/null || missing+=("cargo (rustup)")
if [ ${#missing[@]} -gt 0 ]; then
  log "missing (bash scripts/setup.sh installs them):"
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
rustup target list --installed 2>/dev/null | grep -q "$MUSL" || die "the Rust target $MUSL is missing: rustup target add $MUSL"

STORE_FLAGS=(--root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
mkdir -p "$STORE/root" "$STORE/run" "$STORE/context"
# One build at a time in the store (two suites on one machine), so that the
# clean-up at the end never removes another run's working containers.
exec 9>"$STORE/lock"
flock 9

# --isolation chroot: no user namespace or runc needed for RUN steps;
# --pull=never: every FROM is scratch or an image built here.
bud() {
  local name="$1" context="$2"
  shift 2
  local start=$SECONDS
  buildah "${STORE_FLAGS[@]}" bud --quiet --layers --isolation chroot --pull=never \
    --format oci -t "localhost/$name:$TAG" "$@" "$context" >/dev/null
  log "$name built in $((SECONDS - start))s"
}

# A context directory of its own for each image (only what it copies), so
# that --layers sees a change exactly when an input changed.
context() {
  local dir="$STORE/context/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$HERE/images/$1/Containerfile" "$dir/"
  echo "$dir"
}

build_base() {
  local ctx
  ctx=$(context base)
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$ctx/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$ctx/group"
  mkdir -p "$ctx/tmp" "$ctx/home"
  # Fixed times: a fresh copy must not look like a changed input.
  find "$ctx" -exec touch -h -d @0 {} +
  bud landgate-e2e/base "$ctx" -f "$ctx/Containerfile"
}

build_landgate() {
  local start=$SECONDS
  # Run by the test harness, this inherits what cargo sets for a test
  # (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...); ring's build script reruns when
  # CARGO_MANIFEST_DIR changes, and with it everything above it: ten minutes
  # of release build on each switch between the harness and a shell. So the
  # build sees none of them.
  local name unset=()
  for name in $(compgen -e); do
    case "$name" in
      CARGO_HOME) ;;
      CARGO* | RUSTC* | RUSTDOC* | __CARGO*) unset+=(-u "$name") ;;
    esac
  done
  # The same commands as `just build` and the Dockerfile's build stage: the
  # launcher ships from its own profile (size, abort on panic).
  (cd "$REPO" && env "${unset[@]}" cargo build --quiet --release --locked --target "$MUSL" -p landgate-webhook)
  (cd "$REPO" && env "${unset[@]}" cargo build --quiet --profile launcher --locked --target "$MUSL" -p landgate-launcher)
  log "cargo build (release, launcher profile) --target $MUSL in $((SECONDS - start))s"
  local bin
  for bin in launcher/landgate release/landgate-webhook; do
    # The Dockerfile's build stage refuses dynamic binaries; so does this.
    if readelf -lW "$REPO/target/$MUSL/$bin" | grep -q 'program interpreter'; then
      die "target/$MUSL/$bin is dynamically linked"
    fi
  done
  local args=(--build-arg BINARIES=prebuilt --build-arg "WEBHOOK_BASE=localhost/landgate-e2e/base:$TAG" -f "$REPO/Dockerfile")
  bud landgate-launcher "$REPO" --target launcher "${args[@]}"
  bud landgate-webhook "$REPO" --target webhook "${args[@]}"
}

build_busybox() {
  local ctx
  ctx=$(context busybox)
  # Debian's `busybox` package is dynamic; the image has no loader.
  if readelf -lW /bin/busybox | grep -q 'program interpreter'; then
    die "/bin/busybox is dynamically linked: apt-get install busybox-static"
  fi
  cp /bin/busybox "$ctx/busybox"
  touch -d @0 "$ctx/busybox"
  bud landgate-e2e/busybox "$ctx" -f "$ctx/Containerfile"
}

build_golisten() {
  local ctx
  ctx=$(context golisten)
  # In its own module (go.mod says go 1.24): outside a module Go applies the
  # GODEBUG defaults of Go 1.20, and MPTCP listeners would be off.
  (cd "$HERE/images/golisten" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -buildid=" -o "$ctx/golisten" .)
  touch -d @0 "$ctx/golisten"
  bud landgate-e2e/golisten "$ctx" -f "$ctx/Containerfile"
}

build_pause() {
  local ctx
  ctx=$(context pause)
  musl-gcc -static -Os -s -o "$ctx/pause" "$HERE/images/pause/pause.c"
  touch -d @0 "$ctx/pause"
  bud landgate-e2e/pause "$ctx" -f "$ctx/Containerfile"
}

start=$SECONDS
[ $# -gt 0 ] || set -- base landgate busybox golisten pause
for name in "$@"; do
  case "$name" in
    base | landgate | busybox | golisten | pause) "build_$name" ;;
    *) die "unknown image $name (base, landgate, busybox, golisten, pause)" ;;
  esac
done
# buildah 1.28 leaves the working container of the Dockerfile's
# instruction-less `binaries` stage behind after every build, and untagged
# images of earlier builds pile up: vfs keeps a whole copy of each layer.
buildah "${STORE_FLAGS[@]}" rm --all >/dev/null
buildah "${STORE_FLAGS[@]}" rmi --prune >/dev/null
log "images ready in $((SECONDS - start))s (store: $STORE, $(du -sh "$STORE/root" | cut -f1))"
