#!/usr/bin/env bash
# Benchmark: the pipeline services on this machine, against a temporary nats-server (JetStream)
# and a temporary clickhouse-server, both on high loopback ports in a temp dir (removed at the
# end). Not a test: it prints numbers and checks only that nothing was lost.
#   1. the collector publishes MESSAGES synthetic messages as fast as JetStream acks them
#      (storage not running): publish msg/s;
#   2. storage starts on that backlog and stores all of it: rows/s into one ClickHouse;
#   3. count(DISTINCT trade_id) in ClickHouse must equal the trades the collector published.
# Streams and schema are created by `mp-remote agent run` with the deploy's own actions.
#   bench/pipeline.sh [MESSAGES]          (default 200000)
#   MP_BENCH_BATCH=1000 bench/pipeline.sh (storage batch_size; default 5000, storage's own)
#   MP_BENCH_PORT_BASE=35000              (ports used: BASE+85 ... BASE+900)
#   MP_BENCH_BIN=target/debug/mp-remote   (skip the release build)
#   MP_BENCH_TMP=/dev/shm                 (where the servers keep their files; default /tmp)
# Besides the end-to-end rate (which includes start-up and the last, partial fetch waiting its
# flush_interval) it prints the drain rate between 10 % and 90 % acked, the CPU seconds each
# process spent meanwhile, and storage's own per-stage times (its debug log).
# On ext4, creating a file skips inodes deleted in the last minutes: right after another run
# (or anything else deleting many files) ClickHouse's part files cost several times more.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-200000}
batch=${MP_BENCH_BATCH:-5000}
base=${MP_BENCH_PORT_BASE:-35000}
nats_port=$((base + 222)) nats_mon=$((base + 822))
ch_http=$((base + 123)) ch_tcp=$((base + 900))
col_health=$((base + 87)) col_metrics=$((base + 93))
st_health=$((base + 85)) st_metrics=$((base + 94))
nats_server=${NATS_SERVER:-/usr/sbin/nats-server}
clickhouse_server=${CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}

# MP_BENCH_BIN: an mp-remote build to use instead of building the release one.
bin=${MP_BENCH_BIN:-}
if [[ -z $bin ]]; then
    cargo build --release --locked -q
    bin=$PWD/target/release/mp-remote
fi
dir=$(mktemp -d "${MP_BENCH_TMP:-/tmp}/mp-bench-pipeline.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

wait_http() { # URL WHAT
    for _ in $(seq 1 150); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.2
    done
    echo "$2 did not answer at $1; its log:" >&2
    tail -n 20 "$dir"/*.log >&2 || true
    exit 1
}
ch() { curl -sf "http://127.0.0.1:$ch_http/" -u marketprism:benchpw --data-binary "$1"; }
health() { curl -s "http://127.0.0.1:$1/health"; }

# --- servers ---------------------------------------------------------------------------------
mkdir -p "$dir/js" "$dir/ch/data" "$dir/ch/tmp" "$dir/ch/user_files" "$dir/ch/format_schemas"
"$nats_server" -js -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" -sd "$dir/js" >"$dir/nats.log" 2>&1 &
pids+=($!)
cat >"$dir/ch/config.xml" <<EOF
<yandex>
    <logger><level>warning</level><log>$dir/ch/server.log</log><errorlog>$dir/ch/error.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$ch_http</http_port>
    <tcp_port>$ch_tcp</tcp_port>
    <path>$dir/ch/data/</path>
    <tmp_path>$dir/ch/tmp/</tmp_path>
    <user_files_path>$dir/ch/user_files/</user_files_path>
    <format_schema_path>$dir/ch/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>536870912</mark_cache_size>
    <timezone>UTC</timezone>
</yandex>
EOF
cat >"$dir/ch/users.xml" <<'EOF'
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <marketprism>
            <password>benchpw</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </marketprism>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
"$clickhouse_server" --config-file="$dir/ch/config.xml" >"$dir/clickhouse.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$nats_mon/healthz" nats-server
wait_http "http://127.0.0.1:$ch_http/ping" clickhouse-server
nats_version=$("$nats_server" --version 2>&1 | head -n 1)
ch_version=$(ch "SELECT version()")

# --- streams and schema, with the deploy's own actions --------------------------------------
stream() { # NAME SUBJECTS-JSON
    printf '{"name":"%s","subjects":%s,"storage":"file","discard":"old","max_msgs":5000000,"max_bytes":2147483648,"max_age_secs":172800,"duplicate_window_secs":300,"replicas":1}' "$1" "$2"
}
cat >"$dir/plan.json" <<EOF
{"format":1,"host":"bench","run_id":"bench","state_dir":"$dir/agent","check_only":false,"layers":[
 {"name":"init","steps":[
  {"id":"streams","title":"create streams","action":{"kind":"nats_streams","url":"nats://127.0.0.1:$nats_port","streams":[
    $(stream MARKET_DATA '["trade.>","funding_rate.>","open_interest.>","liquidation.>","volatility_index.>","lsr_top_position.>","lsr_all_account.>"]'),
    $(stream ORDERBOOK_SNAP '["orderbook.>"]')]}},
  {"id":"schema","title":"create schema","action":{"kind":"click_house_schema","url":"http://127.0.0.1:$ch_http","user":"marketprism","password":"benchpw"}}
 ]}]}
EOF
if ! "$bin" agent run --plan "$dir/plan.json" >"$dir/agent.jsonl" 2>&1; then
    echo "creating the streams and the schema failed:" >&2
    cat "$dir/agent.jsonl" >&2
    exit 1
fi

# --- 1. collector: publish rate ---------------------------------------------------------------
cat >"$dir/collector.toml" <<EOF
id = "bench"
nats_urls = ["nats://127.0.0.1:$nats_port"]
health_listen = "127.0.0.1:$col_health"
metrics_listen = "127.0.0.1:$col_metrics"
[source]
rate = 4000000000
EOF
"$bin" service collector --config "$dir/collector.toml" --max-messages "$messages" \
    >"$dir/collector.json" 2>"$dir/collector.log"
read -r published publish_rate trades < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["published"], round(s["per_second"]), s["published_by_type"].get("trade", 0))' "$dir/collector.json")

# --- 2. storage: insert rate on that backlog --------------------------------------------------
printf 'benchpw\n' >"$dir/password"
cat >"$dir/storage.toml" <<EOF
nats_urls = ["nats://127.0.0.1:$nats_port"]
health_listen = "127.0.0.1:$st_health"
metrics_listen = "127.0.0.1:$st_metrics"
batch_size = $batch
flush_interval = "1s"
[clickhouse]
url = "http://127.0.0.1:$ch_http"
user = "marketprism"
password_file = "$dir/password"
EOF
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime
nats_pid=${pids[0]} clickhouse_pid=${pids[1]}
nats_cpu=$(cpu_ticks "$nats_pid") clickhouse_cpu=$(cpu_ticks "$clickhouse_pid")
start=$(date +%s.%N)
MP_REMOTE_LOG=mp_remote=info,mp_remote::pipeline::storage::consumer=debug \
    "$bin" service storage --config "$dir/storage.toml" 2>"$dir/storage.log" &
storage_pid=$!
pids+=("$storage_pid")
acked=0 at10="" at90=""
for _ in $(seq 1 6000); do
    acked=$(health "$st_health" | grep -o '"acked":[0-9]*' | cut -d: -f2)
    acked=${acked:-0}
    [[ -z $at10 && $acked -ge $((published / 10)) ]] && at10=$(date +%s.%N)
    [[ -z $at90 && $acked -ge $((published * 9 / 10)) ]] && at90=$(date +%s.%N)
    [[ $acked -ge $published ]] && break
    sleep 0.1
done
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
cpu="nats-server $((($(cpu_ticks "$nats_pid") - nats_cpu) * 100 / hz))"
cpu+=" clickhouse-server $((($(cpu_ticks "$clickhouse_pid") - clickhouse_cpu) * 100 / hz))"
cpu+=" storage $(($(cpu_ticks "$storage_pid") * 100 / hz))"
kill -TERM "$storage_pid"
wait "$storage_pid" || true
if [[ $acked -lt $published ]]; then
    echo "storage acked only $acked of $published messages; its log:" >&2
    tail -n 20 "$dir/storage.log" >&2
    exit 1
fi

# --- 3. nothing lost ----------------------------------------------------------------------------
rows=0
for t in orderbooks trades funding_rates open_interests liquidations lsr_top_positions lsr_all_accounts volatility_indices; do
    rows=$((rows + $(ch "SELECT count() FROM marketprism_hot.$t")))
done
distinct_trades=$(ch "SELECT uniqExact(trade_id) FROM marketprism_hot.trades")

python3 - "$published" "$publish_rate" "$start" "$end" "$rows" "$trades" "$distinct_trades" "$batch" \
    "$nats_version" "$ch_version" "$at10" "$at90" "$cpu" "$dir/storage.log" <<'PY'
import re, sys
published, rate, start, end, rows, trades, distinct, batch = sys.argv[1:9]
nats, ch, at10, at90, cpu, log = sys.argv[9:15]
secs = float(end) - float(start)
print(f"servers: {nats}; ClickHouse {ch} (legacy or modern schema as the deploy renders it)")
print(f"collector: {int(published)} messages published and acked at {int(rate)} msg/s")
print(f"storage:   {int(rows)} rows stored in {secs:.1f} s = {int(rows) / secs:.0f} rows/s "
      f"(batch_size {batch}, one ClickHouse, from storage start to the last ack)")
if at10 and at90 and float(at90) > float(at10):
    drain = int(published) * 0.8 / (float(at90) - float(at10))
    print(f"drain:     {drain:.0f} msgs/s acked between 10 % and 90 % of the backlog")
cpu = cpu.split()
print("cpu:       " + ", ".join(f"{cpu[i]} {int(cpu[i + 1]) / 100:.2f} s" for i in range(0, len(cpu), 2))
      + " while storage ran")
# Storage's debug line per insert: "STREAM: stored N message(s): parse A µs, insert B µs, ack C µs".
line = re.compile(r"(\w+): stored (\d+) message\(s\): parse (\d+) µs, insert (\d+) µs, ack (\d+) µs")
stages = {}
for text in open(log, encoding="utf-8", errors="replace"):
    m = line.search(text)
    if m:
        s = stages.setdefault(m[1], [0] * 5)
        s[0] += 1
        for i in range(4):
            s[i + 1] += int(m[i + 2])
for stream, (n, msgs, parse, insert, ack) in sorted(stages.items()):
    print(f"stages:    {stream}: {n} inserts of {msgs / n:.0f} messages on average; "
          f"parse {parse / 1e6:.2f} s, insert {insert / 1e6:.2f} s, ack {ack / 1e6:.2f} s")
print(f"no loss:   {distinct} distinct trade ids in ClickHouse for {trades} trades published"
      + ("" if distinct == trades else "  <-- MISMATCH"))
sys.exit(0 if distinct == trades else 1)
PY
