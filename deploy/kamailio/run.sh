#!/usr/bin/env bash
# Runs Kamailio in the foreground in front of dialbridge nodes, with kamailio.cfg beside
# this script: writes the node list (dispatcher set 1) and the TLS settings into DIR,
# then execs kamailio (so the caller's PID is Kamailio's, to stop it by).
#
#   run.sh DIR LISTEN_IP SIP_PORT TLS_PORT NODE_URI...
#
# e.g. run.sh target/cluster/kamailio 127.0.0.1 5060 5061 sip:127.0.1.1:5060 sip:127.0.1.2:5060
# Environment: TLS_CERT, TLS_KEY (default fixtures/tls/), TLS_CA (optional: callers are
# asked for a client certificate, verified against it, never required), PING_S (node
# OPTIONS interval, default 2), SHM_MB (shared memory, MiB, default 256: transactions
# linger a few seconds after they end, about 100 MiB per 1,000 calls a second; 64 ran
# out at 500 calls a second; scripts/cluster-load.sh gives 512), KAMAILIO (the binary, default /usr/sbin/kamailio).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fixtures=$(cd "$here/../../fixtures" && pwd)
if [ $# -lt 5 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
dir=$1 ip=$2 sip_port=$3 tls_port=$4
shift 4
mkdir -p "$dir/run"
dir=$(cd "$dir" && pwd)

: > "$dir/dispatcher.list"
for node in "$@"; do
    echo "1 $node 0 0" >> "$dir/dispatcher.list"
done

cert=${TLS_CERT:-$fixtures/tls/cert.pem}
key=${TLS_KEY:-$fixtures/tls/key.pem}
{
    echo "[server:default]"
    echo "method = TLSv1.2+"
    echo "certificate = $cert"
    echo "private_key = $key"
    if [ -n "${TLS_CA:-}" ]; then
        echo "ca_list = $TLS_CA"
        echo "verify_certificate = yes"
    else
        echo "verify_certificate = no"
    fi
    echo "require_certificate = no"
    echo
    # Kamailio talks to the nodes over UDP; a client profile only for completeness.
    echo "[client:default]"
    echo "method = TLSv1.2+"
    echo "verify_certificate = no"
    echo "require_certificate = no"
} > "$dir/tls.cfg"

exec "${KAMAILIO:-/usr/sbin/kamailio}" -f "$here/kamailio.cfg" -DD -E \
    -Y "$dir/run" -m "${SHM_MB:-256}" -M 8 \
    -A "LISTEN_IP=$ip" -A "SIP_PORT=$sip_port" -A "TLS_PORT=$tls_port" \
    -A "PING_S=${PING_S:-2}" \
    -A "DS_LIST=\"$dir/dispatcher.list\"" -A "TLS_CFG=\"$dir/tls.cfg\""
