#!/usr/bin/env bash
# Fills the caBundle placeholder of a webhook configuration with a CA.
#
#   certs/patch-ca-bundle.sh [--in-place] [--url URL] CA_FILE [MANIFEST]
#
# Replaces every __LANDGATE_CA_BUNDLE__ in MANIFEST (a file, or stdin when
# MANIFEST is absent or "-") with the base64 of CA_FILE (PEM, one or more
# certificates) and prints the result, or rewrites MANIFEST with --in-place.
# Fails if there is no placeholder, so a forgotten step is noticed.
#
#   --url URL   also replace each webhook's clientConfig.service block with
#               url: URL, for a webhook running outside the cluster (e.g.
#               https://127.0.0.1:8443/mutate, with a certificate made by
#               EXTRA_SANS=IP:127.0.0.1 certs/generate.sh).
#
# Examples:
#   certs/patch-ca-bundle.sh certs/out/ca.crt manifests/base/mutatingwebhookconfiguration.yaml > mwc.yaml
#   kubectl kustomize manifests/base | certs/patch-ca-bundle.sh certs/out/ca.crt | kubectl apply -f -
set -euo pipefail

PLACEHOLDER=__LANDGATE_CA_BUNDLE__

die() { printf 'certs/patch-ca-bundle.sh: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

in_place=false
url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    -i|--in-place) in_place=true; shift ;;
    --url) [ $# -ge 2 ] || die "--url needs a value"; url=$2; shift 2 ;;
    --url=*) url=${1#--url=}; shift ;;
    --) shift; break ;;
    -?*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage 2; fi
ca_file=$1
manifest=${2:--}

if [ -n "$url" ]; then
  # The API server only calls webhooks over https, and the URL must not carry
  # user info, a fragment or a query.
  [[ $url =~ ^https://[^/@?#[:space:]]+(/[^?#[:space:]]*)?$ ]] \
    || die "--url '$url' must be https://host[:port][/path] without user, query or fragment"
fi
$in_place && [ "$manifest" = "-" ] && die "--in-place needs a MANIFEST file, not stdin"

[ -r "$ca_file" ] || die "cannot read CA_FILE '$ca_file'"
openssl x509 -noout -in "$ca_file" 2>/dev/null || die "CA_FILE '$ca_file' is not a PEM certificate"
if ! openssl x509 -noout -ext basicConstraints -in "$ca_file" 2>/dev/null | grep -q 'CA:TRUE'; then
  printf 'certs/patch-ca-bundle.sh: warning: %s is not a CA certificate (no basicConstraints CA:TRUE); pass ca.crt, not tls.crt\n' "$ca_file" >&2
fi
bundle=$(base64 -w0 <"$ca_file")

if [ "$manifest" = "-" ]; then
  input=$(cat)
else
  [ -r "$manifest" ] || die "cannot read MANIFEST '$manifest'"
  input=$(<"$manifest")
fi
[[ $input == *"$PLACEHOLDER"* ]] || die "no $PLACEHOLDER placeholder in ${manifest/#-/stdin} (already patched?)"

output=${input//"$PLACEHOLDER"/"$bundle"}

if [ -n "$url" ]; then
  # Swap `service:` (and the lines indented beneath it) for `url:` wherever it
  # sits directly under a `clientConfig:` key. Block-style YAML only, as
  # written in manifests/ and printed by kustomize.
  output=$(awk -v url="$url" '
    function indent(s) { match(s, /^ */); return RLENGTH }
    {
      n = indent($0)
      if (skipping) {
        if ($0 ~ /^ *$/ || n > skip_indent) next
        skipping = 0
      }
      if (in_cc && $0 !~ /^ *$/ && n <= cc_indent) in_cc = 0
      if ($0 ~ /^ *(- )?clientConfig: *$/) {
        in_cc = 1; cc_indent = n; if ($0 ~ /^ *- /) cc_indent = n + 2
        print; next
      }
      if (in_cc && $0 ~ /^ *service: *$/) {
        printf "%surl: \"%s\"\n", substr($0, 1, n), url
        skipping = 1; skip_indent = n; replaced++
        next
      }
      print
    }
    END { if (!replaced) exit 3 }
  ' <<<"$output") || die "--url given but no clientConfig.service block found in ${manifest/#-/stdin}"
fi

if $in_place; then
  tmp=$(mktemp "$(dirname "$manifest")/.patch-ca-bundle.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  printf '%s\n' "$output" >"$tmp"
  chmod --reference="$manifest" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$manifest"
else
  printf '%s\n' "$output"
fi
