#!/usr/bin/env bash
# A mixed fleet, proven: one x86_64 test host and one aarch64 test host (Debian 12 arm64 with
# systemd and sshd, run under qemu-user through binfmt_misc) on one private network, deployed
# in one run with NATS (a 2-node cluster) and ClickHouse from Debian's packages, each host with
# the agent of its own arch; then a re-run that changes nothing.
#
# Not part of `tests/run`: it takes about 15 minutes on a 2-core machine (debootstrap of arm64
# under emulation, the aarch64 agent's build, ClickHouse's install under emulation), twice
# CI's whole budget for the rest. Run it by hand:
#
#   tests/arm64/mixed_fleet.sh        (as root; installs what it needs from Debian's packages)
#
# Needs: binfmt_misc (mounted here if it is not), qemu-user-static, debootstrap,
# gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (for the agent's build).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
hosts=tests/hosts/testhosts
work=${TESTHOSTS_WORK:-$root/tests/.work}/arm64
mkdir -p "$work"
say() { printf 'mixed_fleet: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in qemu-user-static debootstrap gcc-aarch64-linux-gnu libc6-dev-arm64-cross; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get -qq update </dev/null
    apt-get -qq install -y --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# binfmt: the kernel runs aarch64 ELF files through qemu-aarch64-static (F: the interpreter is
# opened now, so it works inside containers too).
[ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || fail "cannot mount binfmt_misc"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OCF' \
        >/proc/sys/fs/binfmt_misc/register || fail "cannot register qemu-aarch64 with binfmt_misc"
fi
say "binfmt: $(head -n 2 /proc/sys/fs/binfmt_misc/qemu-aarch64 | tr '\n' ' ')"

"$hosts" engine
"$hosts" image >/dev/null

# The arm64 image: the x86_64 test-host recipe (customise_rootfs of testhosts) on an arm64
# debootstrap.
image=mp-remote-testhost-arm64:1
if ! docker image inspect "$image" >/dev/null 2>&1; then
    rootfs=$work/rootfs
    rm -rf --one-file-system "$rootfs"
    say "debootstrap arm64 (under emulation, several minutes)"
    debootstrap --arch=arm64 --variant=minbase \
        --include=systemd,systemd-sysv,dbus,openssh-server,ca-certificates,curl,procps,iproute2,sudo \
        bookworm "$rootfs" "${TESTHOSTS_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
        fail "debootstrap (log: $work/debootstrap.log)"
    sed -n '/^customise_rootfs() {/,/^}/p' "$hosts" >"$work/customise.sh"
    NOSUDO_PASSWORD=nosudo-password bash -c "source '$work/customise.sh'; set -e; customise_rootfs '$rootfs'" \
        >>"$work/debootstrap.log" 2>&1 || fail "customising the arm64 root (log: $work/debootstrap.log)"
    tar --numeric-owner -C "$rootfs" -c . |
        docker import -c 'CMD ["/sbin/init"]' -c 'ENV container=docker' - "$image" >/dev/null
    rm -rf --one-file-system "$rootfs"
fi
[ "$(docker run --rm "$image" uname -m)" = aarch64 ] || fail "$image does not run as aarch64"

# The aarch64 agent.
agents=$work/agents
PROFILE=dev AGENTS_DIR=$agents scripts/build-agents.sh aarch64 >&2
cargo build --locked -q
bin=$root/target/debug/mp-remote

# The fleet: an x86_64 test host, and the arm64 one on its network.
prefix=mpt-arm64
dir=$(mktemp -d)
cleanup() {
    docker rm -f "$prefix-a1" >/dev/null 2>&1 || true
    "$hosts" down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
"$hosts" up --prefix "$prefix" --count 1 --dir "$dir" >&2
docker rm -f "$prefix-a1" >/dev/null 2>&1 || true
docker run -d --name "$prefix-a1" --hostname "$prefix-a1" --network "$prefix-net" \
    --stop-signal SIGRTMIN+3 --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -p 127.0.0.1::22 "$image" >/dev/null
docker exec -i "$prefix-a1" sh -c 'mkdir -p /root/.ssh && cat >/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' <"$dir/id_ed25519.pub"
a1_port=$(docker port "$prefix-a1" 22/tcp | head -n 1 | sed 's/.*://')
a1_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$prefix-net\").IPAddress}}" "$prefix-a1")
x86_port=$(sed -n 's/^port = //p' "$dir/inventory.toml" | head -n 1)
x86_ip=$(sed -n 's/^private_address = "\(.*\)"/\1/p' "$dir/inventory.toml" | head -n 1)
for _ in $(seq 1 120); do
    docker exec "$prefix-a1" systemctl is-active --quiet ssh 2>/dev/null && break
    sleep 1
done
cat >"$dir/mixed.toml" <<EOF
[defaults]
user = "root"
identity_file = "$dir/id_ed25519"
known_hosts = "$dir/known_hosts"
host_key_checking = "accept-new"
connect_timeout = "30s"

[[hosts]]
name = "x86"
address = "127.0.0.1"
port = $x86_port
private_address = "$x86_ip"
roles = ["nats", "clickhouse"]

[[hosts]]
name = "arm"
address = "127.0.0.1"
port = $a1_port
private_address = "$a1_ip"
roles = ["nats", "clickhouse"]

[components.nats]
source = "os"

[components.clickhouse]
source = "os"
EOF
run() { "$bin" -i "$dir/mixed.toml" --runs-dir "$dir/runs" --agents-dir "$agents" "$@"; }

run facts | tee "$work/facts.txt" >&2
grep -Eq '^arm +ok +debian 12 +aarch64' "$work/facts.txt" || fail "facts: the arm host is not aarch64"
start=$SECONDS
run deploy >"$work/deploy.txt" 2>&1 || { cat "$work/deploy.txt" >&2; fail "the mixed deploy"; }
say "mixed deploy ok in $((SECONDS - start)) s"
tail -n 6 "$work/deploy.txt" >&2
# Each host got the agent of its own arch.
want_arm=$(cut -c1-16 "$agents/mp-remote-aarch64-unknown-linux-musl.sha256")
docker exec "$prefix-a1" test -x "/var/lib/mp-remote/bin/mp-remote-$want_arm" ||
    fail "the arm host has no aarch64 agent $want_arm"
[ "$(docker exec "$prefix-a1" sh -c "head -c 20 /var/lib/mp-remote/bin/mp-remote-$want_arm | od -An -tx1 | tr -d ' \n'")" = \
    7f454c460201010000000000000000000200b700 ] || fail "the arm host's agent is not an aarch64 ELF"
want_x86=$(sha256sum "$bin" | cut -c1-16)
"$hosts" exec --prefix "$prefix" h1 -- test -x "/var/lib/mp-remote/bin/mp-remote-$want_x86" ||
    fail "the x86 host has no agent $want_x86"
# Both servers answer on both hosts; the streams span the two-node cluster.
for c in "$prefix-h1" "$prefix-a1"; do
    docker exec "$c" curl -sf http://127.0.0.1:8222/healthz | grep -q '"ok"' || fail "$c: NATS not healthy"
    docker exec "$c" curl -sf --data-binary 'SELECT 1' http://127.0.0.1:8123/ | grep -q '^1$' || fail "$c: ClickHouse"
done
docker exec "$prefix-a1" curl -sf 'http://127.0.0.1:8222/jsz?streams=true' | grep -q MARKET_DATA ||
    fail "the arm host's NATS does not see the streams"
run deploy >"$work/rerun.txt" 2>&1 || { cat "$work/rerun.txt" >&2; fail "the re-run"; }
grep -q 'nothing changed' "$work/rerun.txt" || { cat "$work/rerun.txt" >&2; fail "the re-run changed something"; }
say "re-run: nothing changed"
say "PASSED: x86_64 and aarch64 deployed in one run, each with its own agent"
