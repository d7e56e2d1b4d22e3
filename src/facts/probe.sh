# mp-remote facts probe (layer 1, "detect"). Run as: sh -c "$PROBE_SCRIPT" mp-facts DEPLOY_DIR
# (or piped into `sh -s -- DEPLOY_DIR`). The output format is documented in src/facts/mod.rs and
# parsed by src/facts/parse.rs; keep the two in step.
#
# Rules, because one failing probe must not cost us the whole host:
# - POSIX sh only (dash, bash, macOS /bin/sh); no `set -e`, every probe guarded, stderr discarded;
# - the script only reports raw facts, all interpretation happens in Rust where it can be tested;
# - every external command reads </dev/null, so the script also works when fed through stdin;
# - commands that could hang (sudo, the server binaries) run under `timeout` when it exists.

set +e +u 2>/dev/null
deploy_dir=${1:-/opt/marketprism}
# Further arguments: directories where mp-remote keeps its agents (content-addressed names).
[ $# -gt 0 ] && shift
# Non-login SSH sessions often lack sbin (ss, sysctl) and Homebrew in PATH.
PATH="$PATH:/usr/sbin:/sbin:/usr/local/bin:/usr/local/sbin:/opt/homebrew/bin"
LC_ALL=C
export PATH LC_ALL
nl='
'

# kv KEY VALUE: one `key=value` line; a value never spans lines, so cut at the first newline.
kv() {
    kv_v=$2
    kv_v=${kv_v%%"$nl"*}
    printf '%s=%s\n' "$1" "$kv_v"
}
# section NAME TEXT: multi-line data between `--- NAME ---` and `--- end NAME ---`.
section() {
    printf -- '--- %s ---\n' "$1"
    [ -n "$2" ] && printf '%s\n' "$2"
    printf -- '--- end %s ---\n' "$1"
}
have() { command -v "$1" >/dev/null 2>&1; }
yesno() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
if have timeout; then
    t() { timeout 10 "$@" </dev/null; }
else
    t() { "$@" </dev/null; }
fi
isnum() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

echo 'mp_facts=1'
kv deploy_dir "$deploy_dir"
# The pipeline release mp-remote installed there, if any (the id is the link's last part).
if [ -L "$deploy_dir/current" ]; then
    app_release=$(readlink "$deploy_dir/current" 2>/dev/null)
    kv app_release "${app_release##*/}"
fi
kv hostname "$(uname -n 2>/dev/null)"
uname_s=$(uname -s 2>/dev/null)
kv uname_s "$uname_s"
kv kernel "$(uname -r 2>/dev/null)"

# OS identity: os-release on Linux, sw_vers on macOS.
for f in /etc/os-release /usr/lib/os-release; do
    if [ -r "$f" ]; then
        section os-release "$(cat "$f" 2>/dev/null)"
        break
    fi
done
if have sw_vers; then
    section sw_vers "$(sw_vers 2>/dev/null </dev/null)"
fi
kv arch "$(uname -m 2>/dev/null)"

cpus=$(nproc 2>/dev/null </dev/null)
isnum "$cpus" || cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null </dev/null)
isnum "$cpus" || cpus=$(sysctl -n hw.ncpu 2>/dev/null </dev/null)
isnum "$cpus" || cpus=
kv cpus "$cpus"

if [ -r /proc/meminfo ]; then
    kv meminfo "$(grep '^MemTotal:' /proc/meminfo 2>/dev/null)"
fi
if [ "$uname_s" = Darwin ]; then
    kv hw_memsize "$(sysctl -n hw.memsize 2>/dev/null </dev/null)"
fi

# Free disk where the deploy dir is or will be: walk up to the nearest existing parent.
d=$deploy_dir
i=0
while [ ! -d "$d" ] && [ "$i" -lt 64 ]; do
    case $d in
        */*) d=${d%/*} && [ -n "$d" ] || d=/ ;;
        *) d=. ;;
    esac
    i=$((i + 1))
done
kv disk_path "$d"
kv disk_df "$(df -Pk "$d" 2>/dev/null </dev/null | tail -n 1)"

# Init: systemd's own test (sd_booted) is /run/systemd/system; PID 1 tells containers apart.
pid1=
[ -r /proc/1/comm ] && pid1=$(cat /proc/1/comm 2>/dev/null)
[ -n "$pid1" ] || pid1=$(ps -p 1 -o comm= 2>/dev/null </dev/null)
kv pid1 "$pid1"
kv run_systemd_system "$(yesno [ -d /run/systemd/system ])"

kv uid "$(id -u 2>/dev/null)"
kv user "$(id -un 2>/dev/null)"
if have sudo; then
    kv sudo "$(yesno t sudo -n true)"
else
    kv sudo missing
fi

# glibc decides whether the prebuilt agent binary can run at all.
g=$(getconf GNU_LIBC_VERSION 2>/dev/null </dev/null)
[ -n "$g" ] || g=$(ldd --version 2>/dev/null </dev/null | head -n 1)
kv glibc_raw "$g"

for c in curl tar systemctl apt-get dnf yum sha256sum ss sudo; do
    kv "tool.$c" "$(yesno have "$c")"
done

# Listening TCP sockets, raw; `listen_source` says which format the section is in.
src=none
out=
if have ss && out=$(ss -Htln 2>/dev/null </dev/null); then
    src=ss
elif have ss && out=$(ss -tln 2>/dev/null </dev/null); then
    src=ss # iproute2 before 4.14 has no -H; the header line is skipped by the parser
elif have netstat && out=$(netstat -an 2>/dev/null </dev/null); then
    src=netstat
    out=$(printf '%s\n' "$out" | grep '^tcp.*LISTEN')
elif [ -r /proc/net/tcp ]; then
    src=proc
    out=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
else
    out=
fi
kv listen_source "$src"
section listen "$out"

# The agents already here, with their sizes: a re-run finds its agent without another exec.
agents=
for d in "$@"; do
    for f in "$d"/mp-remote-*; do
        [ -f "$f" ] && agents="$agents$f $(wc -c <"$f" 2>/dev/null)$nl"
    done
done
section agents "$agents"

# The host's own IP addresses: a server binds its private address only when the host has it.
addrs=
if have ip; then
    addrs=$(ip -o addr show 2>/dev/null </dev/null | awk '{print $4}')
elif have hostname; then
    addrs=$(hostname -I 2>/dev/null </dev/null)
fi
section addresses "$addrs"

# Installed package version, only if really installed (dpkg keeps removed packages' configs).
pkg_version() {
    if have dpkg-query; then
        pv=$(dpkg-query -W -f '${Status}|${Version}' "$1" 2>/dev/null </dev/null)
        case $pv in *" installed|"*)
            printf '%s\n' "${pv#*|}"
            return 0
            ;;
        esac
    fi
    if have rpm; then
        pv=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$1" 2>/dev/null </dev/null) && printf '%s\n' "$pv"
    fi
    return 0
}

v=
have nats-server && v=$(t nats-server --version 2>/dev/null | head -n 1)
kv nats_server_bin "$v"
kv nats_server_pkg "$(pkg_version nats-server)"

v=
if have clickhouse-server; then
    v=$(t clickhouse-server --version 2>/dev/null | head -n 1)
elif have clickhouse; then
    v=$(t clickhouse server --version 2>/dev/null | head -n 1)
fi
kv clickhouse_server_bin "$v"
kv clickhouse_server_pkg "$(pkg_version clickhouse-server)"

echo 'probe_end=ok'
exit 0
