#!/usr/bin/env bash
# Makes (or reuses) a CA and issues a fresh serving certificate for the
# landgate webhook Service, with openssl only.
#
#   certs/generate.sh OUT_DIR
#
# Environment:
#   NAMESPACE   namespace of the Service            (default landgate)
#   SERVICE     name of the Service                 (default landgate)
#   DAYS        validity of the serving certificate (default 365)
#   CA_DAYS     validity of a newly created CA      (default 3650)
#   EXTRA_SANS  more subjectAltNames, openssl syntax, comma-separated,
#               e.g. "IP:127.0.0.1,DNS:localhost" for a webhook on loopback
#
# Writes OUT_DIR/ca.crt, ca.key, tls.crt, tls.key (keys 0600). If
# OUT_DIR/ca.key exists the CA is reused, so running this again rotates the
# serving certificate while the caBundle registered with the API server stays
# valid. The new tls.key and tls.crt are each written to a temporary file and
# renamed into place, because a running webhook re-reads them.
set -euo pipefail

die() { printf 'certs/generate.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'certs/generate.sh: %s\n' "$*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

case "${1:-}" in
  -h|--help) usage 0 ;;
  ""|-*) usage 2 ;;
esac
[ $# -eq 1 ] || usage 2

OUT_DIR=$1
NAMESPACE=${NAMESPACE:-landgate}
SERVICE=${SERVICE:-landgate}
DAYS=${DAYS:-365}
CA_DAYS=${CA_DAYS:-3650}
EXTRA_SANS=${EXTRA_SANS:-}

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive number of days, got '$DAYS'"
[[ $CA_DAYS =~ ^[1-9][0-9]*$ ]] || die "CA_DAYS must be a positive number of days, got '$CA_DAYS'"
# DNS-1123 labels: anything else cannot be a Service DNS name anyway.
dns_label='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ $NAMESPACE =~ $dns_label ]] || die "NAMESPACE '$NAMESPACE' is not a valid namespace name"
[[ $SERVICE =~ $dns_label ]] || die "SERVICE '$SERVICE' is not a valid Service name"

# The API server calls the Service as <service>.<namespace>.svc; the other two
# names cover in-cluster clients that use the longer or shorter forms.
sans="DNS:${SERVICE}.${NAMESPACE}.svc,DNS:${SERVICE}.${NAMESPACE}.svc.cluster.local,DNS:${SERVICE}.${NAMESPACE}"
if [ -n "$EXTRA_SANS" ]; then
  IFS=',' read -r -a extra <<<"$EXTRA_SANS"
  for san in "${extra[@]}"; do
    san=${san//[[:space:]]/}
    [ -n "$san" ] || continue
    [[ $san =~ ^(DNS|IP|URI|email):[^,]+$ ]] \
      || die "EXTRA_SANS entry '$san' must look like DNS:name, IP:address, URI:uri or email:addr"
    sans+=",$san"
  done
fi

mkdir -p "$OUT_DIR"
# Private keys must never be readable by others, not even for a moment.
umask 077
work=$(mktemp -d "$OUT_DIR/.generate.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $sans
EOF

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# Random positive 128-bit serial: Go rejects negative serials, and reusing one
# under the same CA confuses clients that cache by issuer and serial.
serial() { printf '0x%s' "$(openssl rand -hex 16)"; }
pubkey() { openssl pkey -pubin -in <(openssl x509 -noout -pubkey -in "$1") -outform DER | openssl dgst -sha256 -r; }

# === CA ===
if [ -e "$OUT_DIR/ca.key" ]; then
  [ -e "$OUT_DIR/ca.crt" ] || die "$OUT_DIR/ca.key exists but $OUT_DIR/ca.crt does not; restore it or remove ca.key to make a new CA"
  ca_pub_from_key=$(openssl pkey -in "$OUT_DIR/ca.key" -pubout -outform DER | openssl dgst -sha256 -r) \
    || die "cannot read the CA key $OUT_DIR/ca.key"
  [ "$ca_pub_from_key" = "$(pubkey "$OUT_DIR/ca.crt")" ] \
    || die "$OUT_DIR/ca.crt does not belong to $OUT_DIR/ca.key"
  openssl x509 -noout -checkend 0 -in "$OUT_DIR/ca.crt" >/dev/null \
    || die "the CA $OUT_DIR/ca.crt has expired; remove ca.key and ca.crt to make a new one (and re-register the caBundle)"
  if ! openssl x509 -noout -checkend $((DAYS * 86400)) -in "$OUT_DIR/ca.crt" >/dev/null; then
    log "warning: the CA expires before the new serving certificate ($(openssl x509 -noout -enddate -in "$OUT_DIR/ca.crt")); clients will reject it from then on"
  fi
  log "reusing the CA in $OUT_DIR/ca.crt"
else
  new_key "$work/ca.key"
  openssl req -new -x509 -config "$work/openssl.cnf" -extensions v3_ca \
    -key "$work/ca.key" -subj "/CN=landgate-ca" -set_serial "$(serial)" \
    -days "$CA_DAYS" -sha256 -out "$work/ca.crt"
  chmod 0644 "$work/ca.crt"
  # ca.crt first: ca.key is what marks the CA as present on the next run.
  mv -f "$work/ca.crt" "$OUT_DIR/ca.crt"
  mv -f "$work/ca.key" "$OUT_DIR/ca.key"
  log "created a new CA in $OUT_DIR/ca.crt"
fi

# === serving certificate ===
new_key "$work/tls.key"
openssl req -new -config "$work/openssl.cnf" -key "$work/tls.key" \
  -subj "/CN=${SERVICE}.${NAMESPACE}.svc" -out "$work/tls.csr"
openssl x509 -req -in "$work/tls.csr" -CA "$OUT_DIR/ca.crt" -CAkey "$OUT_DIR/ca.key" \
  -set_serial "$(serial)" -days "$DAYS" -sha256 \
  -extfile "$work/openssl.cnf" -extensions v3_server -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$OUT_DIR/ca.crt" -purpose sslserver "$work/tls.crt" >/dev/null \
  || die "the new serving certificate does not verify against $OUT_DIR/ca.crt"
chmod 0600 "$work/tls.key"
chmod 0644 "$work/tls.crt"
# Two renames cannot be one atomic step. A reader that sees the new key with
# the old certificate finds them mismatched and keeps serving the previous
# pair until the certificate lands a moment later.
mv -f "$work/tls.key" "$OUT_DIR/tls.key"
mv -f "$work/tls.crt" "$OUT_DIR/tls.crt"

log "issued $OUT_DIR/tls.crt for ${sans//,/, } (valid $DAYS days)"
