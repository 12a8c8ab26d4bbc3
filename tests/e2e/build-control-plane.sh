#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from their
# Go modules and caches them by version under
# ~/.cache/landgate/bin/<component>-<version>. With --node it also builds what
# the real node needs (tests/e2e/node.sh): the kubelet and kube-scheduler.
#
#   build-control-plane.sh [--node]
#
# Why a throw-away module: `go install k8s.io/kubernetes/cmd/...@vX` refuses a
# module whose go.mod has replace directives, and k8s.io/kubernetes replaces
# every k8s.io/* staging module with a local path. Requiring it from our own
# module side-steps that (a dependency's replaces are ignored); we then add
# the replaces ourselves, pointing each staging module at its published
# v0.<minor>.<patch> tag. etcd's server module is built the same way.
set -euo pipefail

K8S_VERSION="${LANDGATE_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${LANDGATE_ETCD_VERSION:-v3.6.16}"
CACHE="${LANDGATE_CACHE_DIR:-$HOME/.cache/landgate}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
NODE=0
case "${1:-}" in
  --node) NODE=1 ;;
  "") ;;
  *) echo "usage: $0 [--node]" >&2; exit 2 ;;
esac

log() { printf 'build-control-plane: %s\n' "$*" >&2; }

# Go >= 1.24 (Kubernetes 1.34's go.mod). Debian bookworm's golang-go is 1.19:
# too old, and too old to fetch a newer toolchain itself (that needs >= 1.21).
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || { log "go not found: install Go >= 1.24 (e.g. in /usr/local/go; Debian bookworm's golang-go 1.19 is too old)"; exit 1; }
go_version=$(go env GOVERSION)
go_minor=$(printf '%s' "$go_version" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt 21 ]; then
  log "$(command -v go) is $go_version: install Go >= 1.24 (Debian bookworm's golang-go 1.19 is too old)"
  exit 1
fi
# 1.21-1.23 fetch the toolchain the modules ask for through the module proxy.

build_etcd() {
  local out="$BIN/etcd-$ETCD_VERSION"
  [ -x "$out" ] && return 0
  local mod="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  log "building etcd $ETCD_VERSION (first run only)"
  local start=$SECONDS
  (
    cd "$mod"
    [ -f go.mod ] || go mod init landgate.dev/build-etcd >/dev/null 2>&1
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    CGO_ENABLED=0 go build -trimpath -o "$out.tmp" go.etcd.io/etcd/server/v3
    mv "$out.tmp" "$out"
  )
  log "etcd built in $((SECONDS - start))s"
}

# kubectl is built from the same release so that the e2e tests never depend on
# whichever kubectl (if any) the machine happens to have, nor on its skew.
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kubectl)
# The node's components come from the same release. They live in a module of
# their own so that building them never rewrites (and re-tidies) the control
# plane's go.mod, and two runs building different sets cannot race on it.
K8S_NODE_COMPONENTS=(kubelet kube-scheduler)

# build_kubernetes MODULE_DIR_NAME COMPONENT...
build_kubernetes() {
  local name="$1"
  shift
  local components=("$@") want=()
  for c in "${components[@]}"; do
    [ -x "$BIN/$c-$K8S_VERSION" ] || want+=("$c")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  local mod="$CACHE/build/$name-$K8S_VERSION"
  mkdir -p "$mod"
  log "building ${want[*]} $K8S_VERSION (first run only; ~5-30 min on 2 cores, depending on the Go caches)"
  local start=$SECONDS
  (
    cd "$mod"
    local staging="v0.${K8S_VERSION#v1.}"
    local tools
    tools=$(
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "${components[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'
    )
    if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod; then
      rm -f go.mod go.sum tools.go
      go mod init "landgate.dev/build-$name" >/dev/null 2>&1
      # The staging modules k8s.io/kubernetes replaces with local paths:
      # read them from its own go.mod so a new release needs no edit here.
      local upstream
      upstream=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
      [ -f "$upstream" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"; exit 1; }
      {
        echo "require k8s.io/kubernetes $K8S_VERSION"
        grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$upstream" \
          | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
      } >> go.mod
    fi
    if [ "$(cat tools.go 2>/dev/null)" != "$tools" ]; then
      printf '%s\n' "$tools" > tools.go
      go mod tidy
    fi
    # Without the version stamps every binary says v0.0.0-master: the kubelet
    # would register a node of that version, and skew checks read it.
    local minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    for c in "${want[@]}"; do
      local one=$SECONDS
      CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/$c-$K8S_VERSION.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$BIN/$c-$K8S_VERSION.tmp" "$BIN/$c-$K8S_VERSION"
      log "$c built in $((SECONDS - one))s"
    done
  )
  log "kubernetes built in $((SECONDS - start))s"
}

build_etcd
build_kubernetes kubernetes "${K8S_COMPONENTS[@]}"
if [ "$NODE" = 1 ]; then build_kubernetes kubernetes-node "${K8S_NODE_COMPONENTS[@]}"; fi
echo "$BIN"
