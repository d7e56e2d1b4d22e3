#!/bin/sh
# What the control node sends to push the agent to N hosts: the binary as it is (before) and
# gzip-compressed as the upload now sends it (after, the fast level as in src/transport/upload.rs).
# A host that already has this very build gets nothing either way (content-addressed).
#
#   bench/agent_bytes.sh [BINARY] [HOSTS]     (default: target/release/mp-remote, 10)
set -eu
cd "$(dirname "$0")/.."
bin=${1:-target/release/mp-remote}
hosts=${2:-10}
[ -f "$bin" ] || cargo build --release --locked
raw=$(stat -c %s "$bin")
gz=$(gzip -1 -c "$bin" | wc -c)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "agent $bin: $(mib "$raw"), gzip -1 $(mib "$gz") ($(awk -v a="$gz" -v b="$raw" 'BEGIN { printf "%.0f%%", 100 * a / b }') of it)"
echo "$hosts hosts: before $(mib $((raw * hosts))), after $(mib $((gz * hosts)))"
