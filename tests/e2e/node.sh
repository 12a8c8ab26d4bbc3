#!/usr/bin/env bash
# A real node for the cluster of cluster.sh: containerd and the kubelet in a
# network namespace of their own, pods on a bridge, images pulled over TLS
# from a local registry, kube-scheduler, and landgate installed from
# manifests/ like a user would. cluster.sh runs it (`cluster.sh up --node`);
# it is not meant to be run on its own.
#
#   node.sh net DIR    before the control plane: the network namespace, a
#                      veth pair to it, the host route to the pod subnet;
#                      writes DIR/node/net.env (the API server binds the
#                      host end, NODE_HOST_IP, so the node can reach it)
#   node.sh up DIR     after it: registry, images, containerd, kubelet,
#                      kube-scheduler, landgate; appends to DIR/env
#   node.sh down DIR   stops all of it by PID, kills what runs in the pods'
#                      cgroups, unmounts everything under DIR, removes the
#                      cgroups, restores the host sysctls the kubelet set,
#                      deletes the namespace (the veth and route go with it)
#
# Layout under DIR/node: net.env, registry/ (CA, certificate, storage),
# containerd/ (config, root, state, certs.d), cni/ (conflist, IPAM), kubelet/
# (root dir, config, kubeconfig, pki), logs/ (pods' logs), landgate/ (the
# kustomize overlay and its certificates), sysctl.before, host.before.
#
# Why a network namespace: the kubelet installs iptables chains (KUBE-FIREWALL
# drops 127.0.0.0/8 traffic from non-loopback sources) and containerd's CNI
# plugins add a bridge and routes; in a namespace of our own none of it
# touches the host, and deleting the namespace undoes it. Why the veth: the
# API server (on the host) must reach the kubelet (exec, logs) and the
# webhook pods, and the node must reach the API server and the registry.
# Pods reach the API server's Service address (10.96.0.1:443, what in-cluster
# clients use) through a DNAT rule in the namespace, standing in for
# kube-proxy.
set -euo pipefail

K8S_VERSION="${LANDGATE_K8S_VERSION:-v1.34.4}"
CACHE="${LANDGATE_CACHE_DIR:-$HOME/.cache/landgate}"
BIN="$CACHE/bin"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STORE="$CACHE/buildah"
STORE_FLAGS=(--root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
NODE_NAME=landgate-node
# The images node.sh pushes, as images.sh tags them (localhost/NAME:e2e).
IMAGES=(landgate-launcher landgate-webhook landgate-e2e/busybox landgate-e2e/golisten landgate-e2e/pause)
# Host sysctls the kubelet sets (not per network namespace): restored on down.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

log() { printf 'node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

require_tools() {
  local missing=()
  [ "$(id -u)" -eq 0 ] || missing+=("root (the kubelet, containerd and network namespaces need it)")
  local tool pkg
  for tool in ip:iproute2 iptables:iptables nsenter:util-linux containerd:containerd runc:runc ctr:containerd \
    buildah:buildah docker-registry:docker-registry openssl:openssl curl:curl; do
    pkg=${tool#*:}
    tool=${tool%%:*}
    command -v "$tool" >/dev/null || missing+=("$tool (apt-get install $pkg)")
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] \
    || missing+=("/usr/lib/cni/bridge, host-local (apt-get install containernetworking-plugins)")
  for c in "kubelet-$K8S_VERSION" "kube-scheduler-$K8S_VERSION"; do
    [ -x "$BIN/$c" ] || missing+=("$BIN/$c (run: bash $HERE/build-control-plane.sh --node)")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing (bash scripts/setup.sh installs the packages):"
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
}

# Same contract as cluster.sh's: output in logs/NAME.log, PID in pids/NAME,
# and every command line names DIR so that `down` can check a PID is ours.
start() {
  local dir="$1" name="$2"
  shift 2
  "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

ours() {
  local dir="$1" pid="$2"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"
}

# Stops the named processes (TERM, then KILL after 10 s).
stop() {
  local dir="$1" name pid pids=()
  shift
  for name in "$@"; do
    pid=$(cat "$dir/pids/$name" 2>/dev/null) || continue
    if ours "$dir" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$dir/pids/$name"
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for _ in $(seq 100); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

# Runs a command in the node's network namespace only (not its mount
# namespace: `ip netns exec` would give containerd a private mount namespace,
# and the kubelet would not see the mounts containerd makes).
in_node() {
  nsenter --net="/run/netns/$NODE_NETNS" -- "$@"
}

load_net() {
  local dir="$1"
  [ -f "$dir/node/net.env" ] || die "$dir/node/net.env is missing: run $0 net $dir first"
  # shellcheck disable=SC1091
  source "$dir/node/net.env"
}

wait_for() {
  local what="$1" timeout="$2" log_file="$3"
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what: not ready after ${timeout}s; last log lines of $log_file:"
      tail -n 30 "$log_file" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

# === net ===

cmd_net() {
  local dir="$1"
  require_tools
  mkdir -p "$dir/node"
  # One /24 of pods and one /30 link per node: a free third octet, so that
  # two nodes on one machine (two suites) do not collide.
  local n="" try
  for _ in $(seq 50); do
    try=$((RANDOM % 250 + 1))
    if ! ip -4 route show | grep -qE "^10\.24[45]\.$try\." && ! ip -4 addr show | grep -q "10\.245\.$try\." \
      && [ ! -e "/run/netns/landgate-$try" ]; then
      n=$try
      break
    fi
  done
  [ -n "$n" ] || die "no free 10.244.N.0/24 pod subnet found"
  local netns="landgate-$n" veth="lgn$n" host_ip="10.245.$n.1" node_ip="10.245.$n.2"
  ip netns add "$netns"
  # Written first: if anything below fails, `down` finds the namespace.
  cat >"$dir/node/net.env" <<EOF
NODE_NETNS=$netns
NODE_VETH=$veth
NODE_HOST_IP=$host_ip
NODE_IP=$node_ip
POD_CIDR=10.244.$n.0/24
POD_GATEWAY=10.244.$n.1
EOF
  ip link add "$veth" type veth peer name eth0 netns "$netns"
  ip addr add "$host_ip/30" dev "$veth"
  ip link set "$veth" up
  ip -n "$netns" link set lo up
  ip -n "$netns" addr add "$node_ip/30" dev eth0
  ip -n "$netns" link set eth0 up
  # The Service range goes to the host too, so that a routing decision exists
  # before the DNAT below rewrites the address (hostNetwork pods' OUTPUT).
  ip -n "$netns" route add 10.96.0.0/16 via "$host_ip"
  # The API server (host) calls webhook pods and reads their answers.
  ip route add "10.244.$n.0/24" via "$node_ip" dev "$veth"
  # Per namespace: forwards between the pods' bridge and the veth.
  NODE_NETNS=$netns
  in_node sysctl -qw net.ipv4.ip_forward=1
  log "network namespace $netns: node $node_ip, host end $host_ip ($veth), pods 10.244.$n.0/24"
}

# === registry ===

registry_up() {
  local dir="$1" reg="$dir/node/registry"
  mkdir -p "$reg/pki" "$reg/data"
  (
    cd "$reg/pki"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 7 -subj "/CN=landgate-e2e-registry-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -x509 "${ec[@]}" -CA ca.crt -CAkey ca.key -keyout registry.key -out registry.crt -days 7 \
      -subj "/CN=landgate-e2e-registry" -addext "subjectAltName=IP:$NODE_HOST_IP" \
      -addext "extendedKeyUsage=serverAuth" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
    chmod 600 ./*.key
  )
  local port
  port=$(free_port)
  REGISTRY="$NODE_HOST_IP:$port"
  cat >"$reg/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $reg/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
  tls:
    certificate: $reg/pki/registry.crt
    key: $reg/pki/registry.key
EOF
  start "$dir" registry docker-registry serve "$reg/config.yml"
  wait_for "docker-registry" 20 "$dir/logs/registry.log" \
    curl -sf --cacert "$reg/pki/ca.crt" "https://$REGISTRY/v2/"
  # buildah's --cert-dir and containerd's certs.d both take the CA from a
  # directory per registry.
  mkdir -p "$reg/cert-dir" "$dir/node/containerd/certs.d/$REGISTRY"
  cp "$reg/pki/ca.crt" "$reg/cert-dir/ca.crt"
  cp "$reg/pki/ca.crt" "$dir/node/containerd/certs.d/$REGISTRY/ca.crt"
  # Without hosts.toml containerd would speak plain HTTP to an IP address.
  cat >"$dir/node/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "https://$REGISTRY"

[host."https://$REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$dir/node/containerd/certs.d/$REGISTRY/ca.crt"
EOF
  log "registry https://$REGISTRY (CA $reg/pki/ca.crt)"
}

free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    if [ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found in 20000-31999"
}

images_up() {
  local dir="$1" start=$SECONDS
  bash "$HERE/images.sh" 2>&1 | sed 's/^/  /' >&2
  log "images built (or found in the cache) in $((SECONDS - start))s"
  start=$SECONDS
  local name
  for name in "${IMAGES[@]}"; do
    buildah "${STORE_FLAGS[@]}" push --quiet --cert-dir "$dir/node/registry/cert-dir" \
      "localhost/$name:e2e" "docker://$REGISTRY/$name:e2e"
  done
  log "images pushed to $REGISTRY in $((SECONDS - start))s"
}

# === containerd ===

containerd_up() {
  local dir="$1" c="$dir/node/containerd"
  mkdir -p "$c/root" "$c/state" "$c/runc" "$dir/node/cni/net.d" "$dir/node/cni/ipam"
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/landgate-e2e/pause:e2e"
  # The kubelet asks for oom_score_adj -998 for its pods' sandboxes; without
  # CAP_SYS_RESOURCE in this machine's bounding set runc's write fails
  # ("can't get final child's PID from pipe: EOF"). Restricting keeps the
  # value at or above containerd's own.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # Whatever the host's apparmor/selinux: neither is enforced on this node.
  disable_apparmor = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  # cgroup v1 through cgroupfs, as the kubelet's cgroupDriver says.
  SystemdCgroup = false
  # runc's container state with ours, not in /run/containerd/runc.
  Root = "$c/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/node/cni/net.d"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$c/certs.d"
EOF
  # The pods' network: a bridge in the node's namespace, addresses from a
  # subnet of our own (the host routes it to the node), no masquerading (the
  # API server sees the pods' own addresses).
  cat >"$dir/node/cni/net.d/10-landgate.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$NODE_NETNS",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$dir/node/cni/ipam"
      }
    }
  ]
}
EOF
  start "$dir" containerd nsenter --net="/run/netns/$NODE_NETNS" -- containerd --config "$c/config.toml"
  wait_for containerd 30 "$dir/logs/containerd.log" ctr --address "$c/containerd.sock" version
}

# === kubelet ===

kubelet_pki() {
  local dir="$1" k="$dir/node/kubelet"
  mkdir -p "$k/pki"
  # The node's identity for the Node authorizer: system:node:<name> in
  # system:nodes. (kubelet.crt/key in this directory is the kubelet's own
  # self-signed serving certificate, made by the kubelet.)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -keyout "$k/pki/node-client.key" -out "$k/pki/node-client.crt" -days 7 \
    -subj "/O=system:nodes/CN=system:node:$NODE_NAME" \
    -addext "extendedKeyUsage=clientAuth" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
  chmod 600 "$k/pki/node-client.key"
  cat >"$k/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: landgate-e2e
  cluster:
    server: $LANDGATE_APISERVER_URL
    certificate-authority: $dir/pki/ca.crt
users:
- name: $NODE_NAME
  user:
    client-certificate: $k/pki/node-client.crt
    client-key: $k/pki/node-client.key
contexts:
- name: landgate-e2e
  context:
    cluster: landgate-e2e
    user: $NODE_NAME
current-context: landgate-e2e
EOF
}

# Every cgroup hierarchy (v1 controllers, name=systemd, and the hybrid
# layout's unified one, which runc joins too): the kubelet wants its
# cgroupRoot to exist in each (cpuset also needs cpus and mems before
# anything can join it).
cgroup_hierarchies() {
  local h
  for h in /sys/fs/cgroup/*; do
    [ -d "$h" ] && [ ! -L "$h" ] && [ -e "$h/cgroup.procs" ] && echo "$h"
  done
}

cgroups_up() {
  local h
  for h in $(cgroup_hierarchies); do
    mkdir -p "$h/$CGROUP_ROOT"
    if [ -e "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h/$CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$CGROUP_ROOT/cpuset.mems"
    fi
  done
}

kubelet_up() {
  local dir="$1" k="$dir/node/kubelet"
  mkdir -p "$k/root" "$k/volume-plugins" "$dir/node/logs"
  kubelet_pki "$dir"
  cgroups_up
  cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1: 1.34 runs on it by default; written out
# because later releases refuse cgroup v1 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
# Our pods' cgroups under a root of their own, removed on down.
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$dir/node/containerd/containerd.sock
imageServiceEndpoint: unix://$dir/node/containerd/containerd.sock
failSwapOn: false
# The API server reaches the kubelet (exec, attach, logs) at the node IP.
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  x509:
    clientCAFile: $dir/pki/ca.crt
  webhook:
    enabled: true
authorization:
  mode: Webhook
podLogsDir: $dir/node/logs
volumePluginDir: $k/volume-plugins
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# A test node on a shared machine: never evict because the host's disk or
# memory is busy with something else.
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 40
EOF
  start "$dir" kubelet nsenter --net="/run/netns/$NODE_NETNS" -- "$BIN/kubelet-$K8S_VERSION" \
    --config "$k/config.yaml" --kubeconfig "$k/kubeconfig" --root-dir "$k/root" --cert-dir "$k/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
}

node_ready() {
  local dir="$1"
  [ "$("$KUBECTL" --kubeconfig "$dir/kubeconfig" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

kubelet_alive() {
  local dir="$1" pid
  pid=$(cat "$dir/pids/kubelet" 2>/dev/null) && kill -0 "$pid" 2>/dev/null
}

# === landgate ===

# The install path users take (README, manifests/README.md): certs/generate.sh
# into manifests/plain/tls, then `kubectl apply -k` of an overlay on
# manifests/plain that sets what every installation sets: the images, the
# NetworkPolicy's API server range, and here the registry's CA.
landgate_up() {
  local dir="$1" l="$dir/node/landgate"
  mkdir -p "$l"
  # A copy, so that the certificates land beside the kustomization as
  # manifests/plain expects without touching the checkout.
  rm -rf "$l/manifests"
  cp -r "$REPO/manifests" "$l/manifests"
  rm -rf "$l/manifests/plain/tls"
  bash "$REPO/certs/generate.sh" "$l/manifests/plain/tls" 2>/dev/null
  mkdir -p "$l/overlay"
  cp "$dir/node/registry/pki/ca.crt" "$l/overlay/registry-ca.crt"
  # No credentials: the registry is open; the component wants a config.json.
  echo '{"auths":{}}' >"$l/overlay/config.json"
  cat >"$l/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../manifests/plain
components:
  - ../manifests/components/registry-config
images:
  - name: ghcr.io/landgate-dev/landgate-webhook
    newName: $REGISTRY/landgate-webhook
    newTag: e2e
generatorOptions:
  disableNameSuffixHash: true
secretGenerator:
  - name: landgate-registry
    namespace: landgate
    files:
      - config.json
      - ca.crt=registry-ca.crt
patches:
  - target: {kind: NetworkPolicy, name: landgate}
    patch: |-
      - op: replace
        path: /spec/ingress/0/from/0/ipBlock/cidr
        value: $NODE_HOST_IP/32
  - target: {group: apps, kind: Deployment, name: landgate}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/env/1/value
        value: $REGISTRY/landgate-launcher:e2e
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value:
          name: LANDGATE_REGISTRY_CA
          value: /etc/landgate/registry/ca.crt
EOF
  "$KUBECTL" --kubeconfig "$dir/kubeconfig" kustomize "$l/overlay" >"$l/landgate.yaml"
  grep -q "value: $REGISTRY/landgate-launcher:e2e" "$l/landgate.yaml" \
    || die "the overlay did not set LANDGATE_LAUNCHER_IMAGE (env order changed in manifests/base/deployment.yaml?)"
  "$KUBECTL" --kubeconfig "$dir/kubeconfig" apply -f "$l/landgate.yaml" >/dev/null
  if ! "$KUBECTL" --kubeconfig "$dir/kubeconfig" -n landgate rollout status deployment/landgate --timeout=180s >&2; then
    "$KUBECTL" --kubeconfig "$dir/kubeconfig" -n landgate get pods -o wide >&2 || true
    "$KUBECTL" --kubeconfig "$dir/kubeconfig" -n landgate describe pods >&2 || true
    die "landgate did not become available"
  fi
}

# === up ===

cmd_up() {
  local dir="$1"
  require_tools
  load_net "$dir"
  # shellcheck disable=SC1091
  source "$dir/env"
  KUBECTL="$LANDGATE_KUBECTL"
  CGROUP_ROOT="$NODE_NETNS"
  echo "$CGROUP_ROOT" >"$dir/node/cgroup-root"
  # Before containerd and the kubelet: the directories they make outside
  # DIR (down removes one only if it was not there and is empty) and the
  # host sysctls the kubelet sets.
  local p
  : >"$dir/node/host.before"
  for p in /run/containerd /run/containerd/s /run/containerd/fifo /var/lib/cni /var/lib/cni/results \
    /var/log/containers /var/lib/kubelet /var/lib/kubelet/device-plugins; do
    if [ -e "$p" ]; then echo "$p" >>"$dir/node/host.before"; fi
  done
  for p in "${SYSCTLS[@]}"; do echo "$p=$(sysctl -n "$p")"; done >"$dir/node/sysctl.before"
  local start=$SECONDS step=$SECONDS

  registry_up "$dir"
  images_up "$dir"
  step=$SECONDS

  # Pods (and hostNetwork pods) reach the API server at its Service address,
  # as in-cluster clients do.
  local api_port="${LANDGATE_APISERVER_URL##*:}"
  in_node iptables -t nat -A PREROUTING -d 10.96.0.1/32 -p tcp --dport 443 \
    -j DNAT --to-destination "$NODE_HOST_IP:$api_port"
  in_node iptables -t nat -A OUTPUT -d 10.96.0.1/32 -p tcp --dport 443 \
    -j DNAT --to-destination "$NODE_HOST_IP:$api_port"

  containerd_up "$dir"
  kubelet_up "$dir"
  local deadline=$((SECONDS + 120))
  until node_ready "$dir"; do
    kubelet_alive "$dir" || { log "the kubelet exited; last log lines:"; tail -n 30 "$dir/logs/kubelet.log" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { log "node $NODE_NAME not Ready after 120s; last kubelet log lines:"; tail -n 30 "$dir/logs/kubelet.log" >&2; exit 1; }
    sleep 0.5
  done
  log "node $NODE_NAME Ready in $((SECONDS - step))s"

  start "$dir" kube-scheduler "$BIN/kube-scheduler-$K8S_VERSION" \
    --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0 --v=1
  step=$SECONDS
  landgate_up "$dir"
  log "landgate running in $((SECONDS - step))s"

  cat >>"$dir/env" <<EOF
LANDGATE_NODE_NAME=$NODE_NAME
LANDGATE_NODE_NETNS=$NODE_NETNS
LANDGATE_NODE_IP=$NODE_IP
LANDGATE_POD_CIDR=$POD_CIDR
LANDGATE_REGISTRY=$REGISTRY
LANDGATE_REGISTRY_CA=$dir/node/registry/pki/ca.crt
LANDGATE_CONTAINERD_ADDRESS=$dir/node/containerd/containerd.sock
LANDGATE_CGROUP_ROOT=$CGROUP_ROOT
EOF
  log "node up in $((SECONDS - start))s: images under $REGISTRY/landgate-e2e/"
}

# === down ===

# PIDs of every process in the node's cgroups (the pods' containers and
# their sandboxes), from the pids hierarchy.
cgroup_pids() {
  local root="$1"
  [ -d "/sys/fs/cgroup/pids/$root" ] || return 0
  # runc removes a container's cgroup as its shim sees it die: a file can
  # vanish between find and cat.
  find "/sys/fs/cgroup/pids/$root" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

cmd_down() {
  local dir="$1"
  [ -d "$dir/node" ] || return 0
  # Best effort to the end: a step that fails (a process or cgroup that
  # vanished under it) must not leave the later ones undone. A run of the
  # suite once lost its whole teardown to one failed read.
  set +e
  local root=""
  [ -f "$dir/node/cgroup-root" ] && root=$(cat "$dir/node/cgroup-root")

  # The kubelet first, so it does not restart what is killed next.
  stop "$dir" kube-scheduler kubelet
  if [ -n "$root" ]; then
    local pids
    for _ in $(seq 50); do
      pids=$(cgroup_pids "$root")
      [ -n "$pids" ] || break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.1
    done
  fi
  stop "$dir" containerd registry
  # The shims outlive containerd (they are not its children); their command
  # lines name containerd's socket under DIR.
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] && continue
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "containerd-shim.*-address $dir/"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done

  # Deepest first: containers' rootfs and shm, pods' volumes and netns
  # files, the kubelet's bind mount of its root dir onto itself.
  local m
  for _ in 1 2 3; do
    local mounts
    mounts=$(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    [ -n "$mounts" ] || break
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done <<<"$mounts"
  done
  if awk -v d="$dir/" 'index($5, d) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "warning: mounts left under $dir:"
    awk -v d="$dir/" 'index($5, d) == 1 {print "  " $5}' /proc/self/mountinfo >&2
  fi

  if [ -n "$root" ]; then
    local h
    for h in $(cgroup_hierarchies); do
      [ -d "$h/$root" ] || continue
      find "$h/$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$h/$root" ] && log "warning: cgroup $h/$root could not be removed"
    done
  fi

  if [ -f "$dir/node/sysctl.before" ]; then
    local line
    while IFS= read -r line; do
      sysctl -qw "$line" >/dev/null || log "warning: could not restore $line"
    done <"$dir/node/sysctl.before"
  fi

  # What the kubelet, containerd and libcni left outside DIR: only what is
  # ours by name, and a directory only once empty, so that another node on
  # this machine (another suite, a `cluster-up --node`) keeps its own.
  local c="$dir/node/containerd" id
  # containerd 1.6 puts each shim's socket in /run/containerd/s whatever its
  # config says, named sha256(<grpc address>/<namespace>/<sandbox id>).
  for id in "$c"/state/io.containerd.runtime.v2.task/k8s.io/*; do
    [ -e "$id" ] || continue
    local hash
    hash=$(printf '%s' "$c/containerd.sock/k8s.io/${id##*/}" | sha256sum | cut -d' ' -f1)
    rm -f "/run/containerd/s/$hash" "/run/containerd/s/$hash.debug"
  done
  # libcni's cache of our pods' networks (ours, and containerd's
  # cni-loopback), named after the network and the sandboxes.
  if [ -f "$dir/node/net.env" ]; then
    # shellcheck disable=SC1091
    source "$dir/node/net.env"
    rm -f /var/lib/cni/results/"$NODE_NETNS"-* 2>/dev/null || true
  fi
  for id in "$c"/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    [ -e "$id" ] || continue
    rm -f /var/lib/cni/results/*-"${id##*/}"-* 2>/dev/null || true
  done
  if [ -d /var/log/containers ]; then
    for p in /var/log/containers/*; do
      if [ -L "$p" ]; then case "$(readlink "$p")" in "$dir"/*) rm -f "$p" ;; esac; fi
    done
  fi
  # The kubelet's device-plugin socket and checkpoint have fixed names; they
  # are ours unless another node's kubelet runs. Empty directories go when
  # they were not there before, or when no other node runs (so that two
  # overlapping nodes leave nothing either, whichever stops last).
  local others=0
  pgrep -f "^$BIN/kubelet-" >/dev/null && others=1
  if [ $others = 0 ]; then
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
  fi
  if [ -f "$dir/node/host.before" ]; then
    for p in /run/containerd/s /run/containerd/fifo /run/containerd /var/lib/cni/results /var/lib/cni \
      /var/log/containers /var/lib/kubelet/device-plugins /var/lib/kubelet; do
      if [ $others = 0 ] || ! grep -qx "$p" "$dir/node/host.before"; then rmdir "$p" 2>/dev/null || true; fi
    done
  fi
  if [ -f "$dir/node/net.env" ]; then
    ip netns del "$NODE_NETNS" 2>/dev/null || true
  fi
  log "node stopped"
}

case "${1:-}" in
  net) [ $# -eq 2 ] || die "usage: $0 net DIR"; cmd_net "$2" ;;
  up) [ $# -eq 2 ] || die "usage: $0 up DIR"; cmd_up "$2" ;;
  down) [ $# -eq 2 ] || die "usage: $0 down DIR"; cmd_down "$2" ;;
  *) echo "usage: $0 net|up|down DIR" >&2; exit 2 ;;
esac
