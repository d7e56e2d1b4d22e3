#!/usr/bin/env bash
# Benchmark: fresh deploy and idempotent re-run on N test hosts (roles nats + clickhouse, from
# Debian's packages), for each N given (default: 3 10). Prints wall times and how much of the
# fresh deploy was package installation (the agent's own step timings), then where the time of
# the fresh deploy and of a re-run went (bench/critical_path.py on their records). Not a test.
#   bench/deploy.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-3}")
[[ $# -gt 0 ]] || counts=(3 10)
hosts=tests/hosts/testhosts
"$hosts" engine
"$hosts" image >/dev/null
cargo build --release --locked -q
bin=./target/release/mp-remote

for n in "${counts[@]}"; do
    prefix=mpbench-deploy$n
    dir=$(mktemp -d)
    trap '"$hosts" down --prefix "$prefix" >/dev/null; rm -rf "$dir"' EXIT
    "$hosts" up --prefix "$prefix" --count "$n" --dir "$dir" >&2
    # Every host runs NATS (one cluster of n nodes) and ClickHouse.
    sed -i 's/^roles = .*/roles = ["nats", "clickhouse"]/' "$dir/inventory.toml"
    printf '\n[components.nats]\nsource = "os"\n\n[components.clickhouse]\nsource = "os"\n' >>"$dir/inventory.toml"
    python3 - "$bin" "$dir/inventory.toml" "$n" <<'PY'
import re, subprocess, sys, time
binary, inventory, n = sys.argv[1], sys.argv[2], sys.argv[3]
def deploy():
    start = time.monotonic()
    done = subprocess.run([binary, "-i", inventory, "deploy", "-v"], capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout
fresh, out = deploy()
# Step lines: [HH:MM:SS] HOST LAYER STATUS STEP MS "ms" MESSAGE (the clock without a
# terminal); the slowest host's package steps.
per_host = {}
for line in out.splitlines():
    m = re.match(r"(?:\d\d:\d\d:\d\d )?(\S+)\s+\S+\s+\S+\s+(\S+)\s+(\d+) ms", line)
    if m and m.group(2).endswith(".packages"):
        per_host[m.group(1)] = per_host.get(m.group(1), 0) + int(m.group(3))
packages = max(per_host.values(), default=0) / 1000
import glob, os
runs_dir = os.path.join(os.path.dirname(inventory), ".mp-remote", "runs")
def latest_run():
    return max(glob.glob(os.path.join(runs_dir, "*", "run.json")), key=os.path.getmtime)
fresh_record = latest_run()
reruns = sorted(deploy()[0] for _ in range(5))
print(f"{n} hosts: fresh deploy {fresh:.2f} s (package installs {packages:.2f} s on the slowest host, "
      f"the rest {fresh - packages:.2f} s); idempotent re-run best {reruns[0]:.3f} s, median {reruns[2]:.3f} s")
# Where the time went: the fresh deploy's record, then the last re-run's.
for record in (fresh_record, latest_run()):
    print(flush=True)
    subprocess.run([sys.executable, "bench/critical_path.py", record], check=True)
PY
    "$hosts" down --prefix "$prefix" >/dev/null
    rm -rf "$dir"
    trap - EXIT
done
