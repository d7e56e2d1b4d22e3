#!/usr/bin/env bash
# Benchmark: a rolling update of N test hosts (default 10) with `--serial 2` against the same
# kind of update all at once, while the collectors publish. Layout: h1 runs NATS, ClickHouse
# and storage, h2 and h3 NATS and a collector, the rest a collector each (200 msgs/s each).
# Each update pushes a new build (one byte appended), so every storage and collector
# restarts. Prints per update its wall time, its batches, the messages the collectors
# published during it and the rows stored during it, and that storage caught up after. Not a
# test.
#   bench/rolling.sh [N]        MP_REMOTE_BIN=path to use a build other than the release one
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
source bench/fleet.sh
bench_fleet roll "$n"
python3 - "$MP_REMOTE_BIN" "$dir" "$prefix" "$n" <<'PY'
import json, re, shutil, subprocess, sys, time
binary, dir, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
inventory = f"{dir}/inventory.toml"
text = open(inventory).read()
def roles(match):
    name = match.group(1)
    if name == "h1":
        r = '["nats", "clickhouse", "storage"]'
    elif name in ("h2", "h3"):
        r = '["nats", "collector"]'
    else:
        r = '["collector"]'
    return f'name = "{name}"{match.group(2)}roles = {r}\nvars = {{ collector_rate = 200 }}'
text = re.sub(r'name = "(h\d+)"(.*?)roles = \[[^\]]*\]', roles, text, flags=re.S)
text += '\n[components.nats]\nsource = "os"\n\n[components.clickhouse]\nsource = "os"\n'
open(inventory, "w").write(text)
collectors = [f"h{i}" for i in range(2, n + 1)]

def on(host, command):
    return subprocess.run(["tests/hosts/testhosts", "exec", "--prefix", prefix, host, "--", "sh", "-c", command],
                          capture_output=True, text=True).stdout
def published():
    # Messages in both streams (their last sequence), as the NATS node on h1 sees them.
    jsz = json.loads(on("h1", "curl -s -m 3 'http://127.0.0.1:8222/jsz?streams=true'") or "{}")
    return sum(s["state"]["last_seq"] for a in jsz.get("account_details", [])
               for s in a.get("stream_detail", []))
def rows():
    q = " UNION ALL ".join(f"SELECT count() FROM marketprism_hot.{t}" for t in
        ["trades", "orderbooks", "funding_rates", "open_interests", "liquidations",
         "lsr_top_positions", "lsr_all_accounts", "volatility_indices"])
    out = on("h1", "curl -s -H 'X-ClickHouse-User: marketprism' -H \"X-ClickHouse-Key: $(cat /etc/marketprism/clickhouse-password)\" "
                   f"--data-binary '{q}' http://127.0.0.1:8123/")
    return sum(int(x) for x in out.split())
def storage_lag():
    # Messages storage has not stored yet: not delivered to it, or delivered and not acked.
    try:
        h = json.loads(on("h1", "curl -s -m 3 http://127.0.0.1:8085/health"))
        return sum(h["consumer_lag"].values()) + sum(h["consumer_ack_pending"].values())
    except Exception:
        return None
def mp(*args):
    start = time.monotonic()
    done = subprocess.run([binary, "-i", inventory, *args], capture_output=True, text=True)
    return time.monotonic() - start, done

wall, done = mp("deploy")
if done.returncode != 0:
    sys.exit(f"deploy failed:\n{done.stdout}\n{done.stderr}")
print(f"{n} hosts deployed in {wall:.1f} s (3 NATS nodes, ClickHouse + storage on h1, {len(collectors)} collectors, 2 of them on NATS nodes)")
for label, extra in [("rolling --serial 2", ["--serial", "2"]), ("all at once", [])]:
    build = f"{dir}/mp-remote-{len(label)}"
    shutil.copy(binary, build)
    with open(build, "ab") as f:
        f.write(label.encode())
    p0, r0 = published(), rows()
    wall, done = mp("update", "--agent-binary", build, *extra)
    p1, r1 = published(), rows()
    if done.returncode != 0:
        sys.exit(f"update failed:\n{done.stdout}\n{done.stderr}")
    batches = len(re.findall(r"^batch +\d+/\d+", done.stdout, flags=re.M)) or 1
    # Storage catches up with what was published during the update: its lag falls below two
    # batches (the collectors keep publishing, so it is rarely 0 at the moment we look).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (storage_lag() or 0) > 2000:
        time.sleep(0.5)
    print(f"update {label}: {wall:.1f} s in {batches} batch(es); {p1 - p0} msgs published into the "
          f"streams during it, {r1 - r0} rows stored during it; storage lag afterwards {storage_lag()} msgs")
PY
