#!/usr/bin/env bash
# Benchmark: `mp-remote facts` on N test hosts (default 20): wall time and the control node's
# peak RSS, best and median of several runs. Not a test: it prints numbers, it asserts nothing.
#   bench/facts.sh [HOSTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20}
runs=${2:-5}
prefix=mpbench-facts
dir=$(mktemp -d)
hosts=tests/hosts/testhosts

"$hosts" engine
"$hosts" image >/dev/null
trap '"$hosts" down --prefix "$prefix"; rm -rf "$dir"' EXIT
cargo build --release --locked -q
"$hosts" up --prefix "$prefix" --count "$count" --dir "$dir" >&2

# Warm-up run records the host keys, as a user's second run would find them.
./target/release/mp-remote -i "$dir/inventory.toml" facts >/dev/null

python3 - "$dir/inventory.toml" "$runs" "$count" <<'PY'
import resource, statistics, subprocess, sys, time
inventory, runs, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
walls, rss = [], []
for _ in range(runs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    done = subprocess.run(["./target/release/mp-remote", "-i", inventory, "facts", "--json"],
                          capture_output=True)
    walls.append(time.monotonic() - start)
    if done.returncode != 0:
        sys.exit(f"facts failed ({done.returncode}): {done.stderr.decode()}")
    # ru_maxrss of children is the largest child so far: every run is the same program.
    rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"facts on {count} hosts, {runs} runs: wall best {min(walls):.3f} s, "
      f"median {statistics.median(walls):.3f} s; peak RSS {max(rss) / 1024:.1f} MiB")
PY
