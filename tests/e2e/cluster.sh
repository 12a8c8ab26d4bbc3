#!/usr/bin/env bash
# A throw-away Kubernetes control plane on loopback: etcd, kube-apiserver and
# kube-controller-manager (no scheduler, no kubelet: pods stay Pending, which
# is all an admission webhook needs). With --node, also a real node
# (node.sh): kubelet, containerd, kube-scheduler, a local registry with
# images built from the project's Dockerfile, and landgate installed from
# manifests/; the API server then listens on the host end of the node's veth
# instead of 127.0.0.1.
#
#   cluster.sh up [--node]
#                     start it; prints the state directory and how to use it
#   cluster.sh down   stop every process it started (by PID) and, unless a
#                     test failed, remove the state directory
#   cluster.sh env    print `export KUBECONFIG=...` lines for a running one
#
# Environment:
#   LANDGATE_CLUSTER_DIR    state directory (default: a new mktemp dir for
#                           `up`, the last one started for `down`/`env`)
#   LANDGATE_CACHE_DIR      where build-control-plane.sh caches binaries
#                           (default ~/.cache/landgate)
#   LANDGATE_K8S_VERSION, LANDGATE_ETCD_VERSION   which cached build to use
#   LANDGATE_E2E_OWNER_PID  tear the cluster down when this process exits (the
#                           e2e test binary sets it, so that a crashed or
#                           interrupted test leaves nothing running)
#
# State directory layout: pki/ (CA, serving, admin and service-account keys),
# etcd/ (data), logs/<component>.log, pids/<component> (one PID each; the
# tests add their own processes here too), kubeconfig, and env (KEY=VALUE).
set -euo pipefail

K8S_VERSION="${LANDGATE_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${LANDGATE_ETCD_VERSION:-v3.6.16}"
CACHE="${LANDGATE_CACHE_DIR:-$HOME/.cache/landgate}"
BIN="$CACHE/bin"
LAST="$CACHE/cluster-last"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

require_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=("openssl (apt-get install openssl)")
  command -v ss >/dev/null || missing+=("ss (apt-get install iproute2)")
  command -v tail >/dev/null || missing+=("tail (apt-get install coreutils)")
  for c in "etcd-$ETCD_VERSION" "kube-apiserver-$K8S_VERSION" "kube-controller-manager-$K8S_VERSION" "kubectl-$K8S_VERSION"; do
    [ -x "$BIN/$c" ] || missing+=("$BIN/$c (run: bash $HERE/build-control-plane.sh; it needs Go >= 1.24)")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing:"
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
}

# A loopback TCP port nobody listens on, below the kernel's ephemeral range
# (32768+) so that outgoing connections do not take it meanwhile. Random, so
# that parallel clusters on one machine do not race for the same one.
taken_ports=" "
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    case "$taken_ports" in *" $port "*) continue ;; esac
    if [ -z "$(ss -Htan "( sport = :$port or dport = :$port )" 2>/dev/null)" ]; then
      taken_ports+="$port "
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found in 20000-31999"
}

# === pki ===

gen_pki() {
  local pki="$1" extra_sans="$2"
  mkdir -p "$pki"
  (
    cd "$pki"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 7 \
      -subj "/CN=landgate-e2e-cluster-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -x509 "${ec[@]}" -CA ca.crt -CAkey ca.key -keyout apiserver.key -out apiserver.crt -days 7 \
      -subj "/CN=kube-apiserver" \
      -addext "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local$extra_sans" \
      -addext "extendedKeyUsage=serverAuth" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
    # O=system:masters: bound to cluster-admin by the default RBAC policy.
    openssl req -x509 "${ec[@]}" -CA ca.crt -CAkey ca.key -keyout admin.key -out admin.crt -days 7 \
      -subj "/O=system:masters/CN=landgate-e2e-admin" \
      -addext "extendedKeyUsage=clientAuth" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
    # The service-account token signing key pair (RSA: every client verifies it).
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

write_kubeconfig() {
  local dir="$1" url="$2"
  cat > "$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: landgate-e2e
  cluster:
    server: $url
    certificate-authority: $dir/pki/ca.crt
users:
- name: landgate-e2e-admin
  user:
    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key
contexts:
- name: landgate-e2e
  context:
    cluster: landgate-e2e
    user: landgate-e2e-admin
current-context: landgate-e2e
EOF
  chmod 600 "$dir/kubeconfig"
}

# === processes ===

# Starts a component in the background with its output in logs/NAME.log and
# its PID in pids/NAME. stdin/stdout/stderr are detached so that whoever ran
# `up` (a test reading its output) is not kept waiting by the daemons.
start() {
  local dir="$1" name="$2"
  shift 2
  "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo $! > "$dir/pids/$name"
}

alive() {
  local dir="$1" name="$2" pid
  pid=$(cat "$dir/pids/$name" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null
}

# True if PID is still the process we started: its command line names the
# state directory (every component's flags do), so a recycled PID is never
# signalled.
ours() {
  local dir="$1" pid="$2"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir"
}

stop_all() {
  local dir="$1" f name pid pids=() order=()
  # The node first: its pods, mounts and cgroups go while the API server is
  # still there for the kubelet to talk to.
  if [ -d "$dir/node" ]; then bash "$HERE/node.sh" down "$dir" || log "node.sh down failed; see above"; fi
  [ -d "$dir/pids" ] || return 0
  # Reverse start order: the tests' own processes first, etcd last.
  for f in "$dir"/pids/*; do
    [ -e "$f" ] || continue
    name=${f##*/}
    case "$name" in etcd | kube-apiserver | kube-controller-manager) ;; *) order+=("$name") ;; esac
  done
  order+=(kube-controller-manager kube-apiserver etcd)
  for name in "${order[@]}"; do
    f="$dir/pids/$name"
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    if ours "$dir" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  for _ in $(seq 100); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

wait_ready() {
  local dir="$1" kubectl="$2" deadline=$((SECONDS + 180))
  until "$kubectl" --kubeconfig "$dir/kubeconfig" get --raw=/readyz >/dev/null 2>&1; do
    for c in etcd kube-apiserver; do
      alive "$dir" "$c" || { log "$c exited during start-up; last log lines:"; tail -n 30 "$dir/logs/$c.log" >&2; return 1; }
    done
    [ $SECONDS -lt $deadline ] || { log "kube-apiserver not ready after 180s; last log lines:"; tail -n 30 "$dir/logs/kube-apiserver.log" >&2; return 1; }
    sleep 0.5
  done
}

# === commands ===

UP_DIR=""
on_up_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -n "$UP_DIR" ]; then
    log "start-up failed; logs in $UP_DIR/logs"
    stop_all "$UP_DIR"
  fi
}

cmd_up() {
  local node=0
  case "${1:-}" in
    --node) node=1 ;;
    "") ;;
    *) die "usage: $0 up [--node]" ;;
  esac
  require_tools
  local dir="${LANDGATE_CLUSTER_DIR:-}"
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/landgate-cluster.XXXXXX")
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -e "$dir/pids" ] && [ -n "$(ls "$dir/pids")" ] && die "$dir already has running processes; run: LANDGATE_CLUSTER_DIR=$dir $0 down"
  mkdir -p "$dir/logs" "$dir/pids"
  mkdir -p "$dir/etcd" && chmod 700 "$dir/etcd"
  local owner="${LANDGATE_E2E_OWNER_PID:-}"
  [ -n "$owner" ] || echo "$dir" > "$LAST"

  # On any failure from here on: stop what started, keep the logs.
  UP_DIR="$dir"
  trap on_up_exit EXIT

  local start_time=$SECONDS
  # With a node the API server listens where the node can reach it: the
  # host end of the node's veth (node.sh net), not loopback.
  local bind=127.0.0.1 extra_sans="" node_flags=() node_controllers=""
  if [ $node = 1 ]; then
    bash "$HERE/node.sh" net "$dir"
    bind=$(sed -n 's/^NODE_HOST_IP=//p' "$dir/node/net.env")
    extra_sans=",IP:$bind"
    # The kubelet's address is the node's InternalIP (its hostname resolves
    # nowhere); webhooks are called at their endpoints' pod IPs, since no
    # kube-proxy routes Service addresses on the host; the API server's
    # client certificate for the kubelet is the admin's (system:masters, so
    # the kubelet's webhook authorization allows exec and logs).
    node_flags=(--kubelet-preferred-address-types InternalIP --enable-aggregator-routing=true
      --kubelet-client-certificate "$dir/pki/admin.crt" --kubelet-client-key "$dir/pki/admin.key")
    # EndpointSlices for the webhook Service; kube-root-ca.crt, which every
    # pod's service account token volume needs before it can start; the
    # node lifecycle controller lifts the not-ready taint the API server's
    # TaintNodesByCondition puts on a new node, once it is Ready.
    node_controllers=",endpointslice-controller,root-ca-certificate-publisher-controller,node-lifecycle-controller"
  fi
  gen_pki "$dir/pki" "$extra_sans"
  local etcd_port etcd_peer_port api_port
  etcd_port=$(free_port)
  etcd_peer_port=$(free_port)
  api_port=$(free_port)
  local api_url="https://$bind:$api_port"
  write_kubeconfig "$dir" "$api_url"
  local kubectl="$BIN/kubectl-$K8S_VERSION"

  start "$dir" etcd "$BIN/etcd-$ETCD_VERSION" \
    --name landgate-e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "landgate-e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn

  # Admission plugins: the defaults (ServiceAccount, PodSecurity,
  # MutatingAdmissionWebhook, ValidatingAdmissionWebhook, ...). The endpoint
  # reconciler is off because a loopback address is not a valid endpoint.
  start "$dir" kube-apiserver "$BIN/kube-apiserver-$K8S_VERSION" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$bind" --advertise-address "$bind" --secure-port "$api_port" \
    --endpoint-reconciler-type none \
    --cert-dir "$dir/pki" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --profiling=false --v=1 "${node_flags[@]}"

  wait_ready "$dir" "$kubectl"

  # Only the controllers the tests rely on: namespaces get their `default`
  # ServiceAccount (pods cannot be created before it exists), Deployments
  # get ReplicaSets and Pods, deleted namespaces are emptied.
  start "$dir" kube-controller-manager "$BIN/kube-controller-manager-$K8S_VERSION" \
    --kubeconfig "$dir/kubeconfig" \
    --controllers "serviceaccount-controller,deployment-controller,replicaset-controller,namespace-controller$node_controllers" \
    --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" \
    --leader-elect=false --secure-port 0 --v=1
  sleep 0.5
  alive "$dir" kube-controller-manager || { log "kube-controller-manager exited; last log lines:"; tail -n 30 "$dir/logs/kube-controller-manager.log" >&2; exit 1; }

  cat > "$dir/env" <<EOF
KUBECONFIG=$dir/kubeconfig
LANDGATE_KUBECTL=$kubectl
LANDGATE_CLUSTER_DIR=$dir
LANDGATE_APISERVER_URL=$api_url
LANDGATE_ETCD_URL=http://127.0.0.1:$etcd_port
EOF
  if [ $node = 1 ]; then bash "$HERE/node.sh" up "$dir"; fi

  if [ -n "$owner" ]; then
    # Reaper: outlives this script, ignores the terminal's ^C and a TERM to
    # the whole process group (`timeout` sends one; it must run after the
    # owner is gone, and a node left running holds mounts, cgroups and a
    # network namespace), tears down when the owner exits.
    (
      trap '' INT HUP TERM
      tail --pid="$owner" -f /dev/null
      LANDGATE_CLUSTER_DIR="$dir" "$HERE/cluster.sh" down
    ) </dev/null >>"$dir/logs/reaper.log" 2>&1 &
  fi
  trap - EXIT
  log "control plane up in $((SECONDS - start_time))s: $api_url (state and logs: $dir)"
  if [ -z "$owner" ]; then
    cat >&2 <<EOF
cluster: use it with
  export KUBECONFIG=$dir/kubeconfig
  alias kubectl=$kubectl
cluster: stop it with: just cluster-down   (or: $0 down)
EOF
  fi
  echo "$dir"
}

state_dir() {
  local dir="${LANDGATE_CLUSTER_DIR:-}"
  if [ -z "$dir" ] && [ -f "$LAST" ]; then dir=$(cat "$LAST"); fi
  [ -n "$dir" ] || die "no cluster: set LANDGATE_CLUSTER_DIR or run $0 up first"
  echo "$dir"
}

cmd_down() {
  local dir
  dir=$(state_dir)
  [ -d "$dir" ] || { log "$dir does not exist: nothing to stop"; rm -f "$LAST"; return 0; }
  stop_all "$dir"
  if [ -f "$LAST" ] && [ "$(cat "$LAST")" = "$dir" ]; then rm -f "$LAST"; fi
  # The tests leave a `failed` marker when a test failed: keep the logs then.
  if [ -e "$dir/failed" ] || [ -n "${LANDGATE_KEEP_CLUSTER_DIR:-}" ]; then
    log "stopped; logs kept in $dir/logs"
  else
    rm -rf "$dir"
    log "stopped and removed $dir"
  fi
}

cmd_env() {
  local dir
  dir=$(state_dir)
  [ -f "$dir/env" ] || die "$dir has no env file: is the cluster up?"
  sed 's/^/export /' "$dir/env"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  env) cmd_env ;;
  *) echo "usage: $0 up [--node]|down|env" >&2; exit 2 ;;
esac
