#!/usr/bin/env bash
# Bytes the control node sends to put the agent on N test hosts of one private network, counted
# on the wire: the transmit counter of the fleet's bridge, which sees the control node's SSH
# traffic to the hosts but not the hosts' traffic to each other. Three runs of
# `deploy --check` (which pushes the agent like a deploy, changing nothing else), each after
# the agents were removed from every host: the upload as it was (raw, `--no-relay` with
# compression off), compressed to every host (`--no-relay`), and compressed once plus the
# relay (the default). Not a test.
#   bench/agent_relay.sh [N]        (default 10)   MP_REMOTE_BIN=path: another build
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
source bench/fleet.sh
bench_fleet relay "$n"
printf '\n[components.nats]\nsource = "os"\n\n[components.clickhouse]\nsource = "os"\n' >>"$dir/inventory.toml"
bridge=br-$(docker network inspect "$prefix-net" -f '{{.Id}}' | cut -c1-12)
sent() { cat "/sys/class/net/$bridge/statistics/tx_bytes"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
measure() { # label, then mp-remote's arguments before `deploy`
    local label=$1 before after start took
    shift
    for i in $(seq 1 "$n"); do
        "$hosts" exec --prefix "$prefix" "h$i" -- sh -c 'rm -f /var/lib/mp-remote/bin/mp-remote-*'
    done
    before=$(sent)
    start=$(date +%s.%N)
    "$MP_REMOTE_BIN" -i "$dir/inventory.toml" --runs-dir "$dir/runs" "$@" deploy --check >/dev/null || true
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    after=$(sent)
    printf '%-34s %12s  %6ss\n' "$label" "$(mib $((after - before)))" "$took"
}
echo "agent $MP_REMOTE_BIN: $(mib "$(stat -c %s "$MP_REMOTE_BIN")"), $n hosts, bytes on the wire from the control node:"
MP_REMOTE_UPLOAD_RAW=1 measure "raw to every host (before)" --no-relay
measure "compressed to every host" --no-relay
measure "compressed once + relay (now)"
