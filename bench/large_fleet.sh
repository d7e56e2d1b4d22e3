#!/usr/bin/env bash
# Benchmark: a recorded run (`facts`) on N hosts that all refuse the connection, so what is
# measured is the control node's own work per host (fan-out, run record, events, host logs),
# not the network. Prints wall time and the control node's peak RSS for each N.
# Not a test: it asserts nothing. No test hosts, no Docker.
#
#   bench/large_fleet.sh [N ...]            (default: 1000 2000 5000)
#   MP_REMOTE=path/to/mp-remote bench/large_fleet.sh 5000
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 2000 5000)
bin=${MP_REMOTE:-}
if [ -z "$bin" ]; then
    cargo build --release --locked -q
    bin="${CARGO_TARGET_DIR:-target}/release/mp-remote"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A loopback port nothing listens on: every connection is refused at once.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

for n in "${counts[@]}"; do
    inv="$dir/fleet-$n.toml"
    {
        printf '[defaults]\nknown_hosts = "%s/known_hosts"\nconnect_timeout = "5s"\n\n' "$dir"
        for i in $(seq 1 "$n"); do
            printf '[[hosts]]\nname = "h%05d"\naddress = "127.0.0.1"\nport = %s\nroles = ["collector"]\n\n' "$i" "$port"
        done
    } >"$inv"
    runs="$dir/runs-$n"
    # Exit 3 (unreachable) is what this run should end with; anything else is a problem.
    set +e
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%e %M' -o "$dir/time" \
            "$bin" -i "$inv" --runs-dir "$runs" --forks 50 facts >/dev/null 2>"$dir/stderr"
        code=$?
        read -r wall rss_kib < <(tail -1 "$dir/time")
    else
        start=$(date +%s.%N)
        "$bin" -i "$inv" --runs-dir "$runs" --forks 50 facts >/dev/null 2>"$dir/stderr"
        code=$?
        wall=$(echo "$(date +%s.%N) - $start" | bc)
        rss_kib=0
    fi
    set -e
    if [ "$code" -ne 3 ]; then
        echo "facts on $n hosts exited $code, not 3:" >&2
        tail -5 "$dir/stderr" >&2
        exit 1
    fi
    recorded=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["hosts"]))' "$runs"/*/run.json)
    printf 'facts on %5d unreachable hosts: wall %6.2f s, peak RSS %6.1f MiB (%s hosts in run.json)\n' \
        "$n" "$wall" "$(echo "$rss_kib / 1024" | bc -l)" "$recorded"
done
