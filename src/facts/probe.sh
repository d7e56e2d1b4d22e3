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
# Fixed names without spaces (run::agent_exec::agent_dirs), split where used.
agent_dirs=$*
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
# One uname for four facts (every process counts on a busy fleet): sysname, node name,
# release and machine, in that order, none with a space.
uname_s= uname_n= uname_r= uname_m=
read -r uname_s uname_n uname_r uname_m _ <<EOF_UNAME
$(uname -snrm 2>/dev/null </dev/null)
EOF_UNAME
kv hostname "$uname_n"
kv uname_s "$uname_s"
kv kernel "$uname_r"

# OS identity: os-release on Linux, sw_vers on macOS.
for f in /etc/os-release /usr/lib/os-release; do
    if [ -r "$f" ]; then
        os_release=
        while IFS= read -r line || [ -n "$line" ]; do
            os_release="$os_release$line$nl"
        done <"$f"
        section os-release "${os_release%"$nl"}"
        break
    fi
done
if have sw_vers; then
    section sw_vers "$(sw_vers 2>/dev/null </dev/null)"
fi
kv arch "$uname_m"

cpus=$(nproc 2>/dev/null </dev/null)
isnum "$cpus" || cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null </dev/null)
isnum "$cpus" || cpus=$(sysctl -n hw.ncpu 2>/dev/null </dev/null)
isnum "$cpus" || cpus=
kv cpus "$cpus"

# Read with builtins where a file will do: each process costs a host about a millisecond.
if [ -r /proc/meminfo ]; then
    while read -r m_k m_v m_u; do
        if [ "$m_k" = MemTotal: ]; then
            kv meminfo "$m_k $m_v $m_u"
            break
        fi
    done </proc/meminfo
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
df_out=$(df -Pk "$d" 2>/dev/null </dev/null)
kv disk_df "${df_out##*"$nl"}"

# Init: systemd's own test (sd_booted) is /run/systemd/system; PID 1 tells containers apart.
pid1=
[ -r /proc/1/comm ] && read -r pid1 </proc/1/comm
[ -n "$pid1" ] || pid1=$(ps -p 1 -o comm= 2>/dev/null </dev/null)
kv pid1 "$pid1"
kv run_systemd_system "$(yesno [ -d /run/systemd/system ])"

# `uid=0(root) gid=0(root) ...` (POSIX): both from one `id`.
id_out=$(id 2>/dev/null </dev/null)
uid=${id_out#uid=}
uid=${uid%%[!0-9]*}
user=
case $id_out in
    "uid=$uid("*) user=${id_out#"uid=$uid("} && user=${user%%")"*} ;;
esac
[ -n "$user" ] || user=$(id -un 2>/dev/null </dev/null)
kv uid "$uid"
kv user "$user"
if [ "$uid" = 0 ]; then
    kv sudo "not asked: root" # root needs none, and sudo's PAM session is dear
elif have sudo; then
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
# One `wc` for all of them: `SIZE PATH` per file (and a total when there are several).
set --
for d in $agent_dirs; do
    for f in "$d"/mp-remote-*; do
        [ -f "$f" ] && set -- "$@" "$f"
    done
done
agents=
if [ $# -gt 0 ]; then
    while read -r w_size w_path; do
        [ -f "$w_path" ] && agents="$agents$w_path $w_size$nl"
    done <<EOF_WC
$(wc -c -- "$@" 2>/dev/null </dev/null)
EOF_WC
fi
section agents "$agents"

# The host's own IP addresses: a server binds its private address only when the host has it.
addrs=
if have ip; then
    while read -r _ _ _ ip_a _; do
        addrs="$addrs$ip_a$nl"
    done <<EOF_IP
$(ip -o addr show 2>/dev/null </dev/null)
EOF_IP
    addrs=${addrs%"$nl"}
elif have hostname; then
    addrs=$(hostname -I 2>/dev/null </dev/null)
fi
section addresses "$addrs"

# Installed package version, only if really installed (dpkg keeps removed packages' configs).
# dpkg is asked once for both servers: NAME|STATUS|VERSION per package it knows.
dpkg_list=
if have dpkg-query; then
    dpkg_list=$nl$(dpkg-query -W -f '${Package}|${Status}|${Version}\n' nats-server clickhouse-server 2>/dev/null </dev/null)
fi
pkg_version() {
    case $dpkg_list in *"$nl$1|install ok installed|"*)
        pv=${dpkg_list#*"$nl$1|install ok installed|"}
        printf '%s\n' "${pv%%"$nl"*}"
        return 0
        ;;
    esac
    if have rpm; then
        pv=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$1" 2>/dev/null </dev/null) && printf '%s\n' "$pv"
    fi
    return 0
}

# bin_version NAME ARGS...: the first line of `NAME ARGS` (its --version), remembered per binary
# (path, inode, size, mtime) in the agents' directory: ClickHouse takes ~25 ms of CPU to say it,
# on every host at every re-run. The cache is only a copy: a changed binary is asked again.
cache_dir=
for d in $agent_dirs; do
    if [ -d "$d" ] && [ -w "$d" ]; then
        cache_dir=$d
        break
    fi
done
bin_version() {
    bv_path=$(command -v "$1" 2>/dev/null) || return 0
    bv_key="$bv_path $(stat -L -c '%i %s %Y' "$bv_path" 2>/dev/null </dev/null)"
    bv_file="$cache_dir/version-cache-$1"
    if [ -n "$cache_dir" ] && [ -f "$bv_file" ]; then
        bv_k= bv_v=
        { read -r bv_k && read -r bv_v; } <"$bv_file"
        if [ "$bv_k" = "$bv_key" ]; then
            printf '%s\n' "$bv_v"
            return 0
        fi
    fi
    bv_v=$(t "$@" 2>/dev/null | head -n 1)
    [ -n "$cache_dir" ] && printf '%s\n%s\n' "$bv_key" "$bv_v" >"$bv_file" 2>/dev/null
    printf '%s\n' "$bv_v"
}

v=
have nats-server && v=$(bin_version nats-server --version)
kv nats_server_bin "$v"
kv nats_server_pkg "$(pkg_version nats-server)"

v=
if have clickhouse-server; then
    v=$(bin_version clickhouse-server --version)
elif have clickhouse; then
    v=$(bin_version clickhouse server --version)
fi
kv clickhouse_server_bin "$v"
kv clickhouse_server_pkg "$(pkg_version clickhouse-server)"

echo 'probe_end=ok'
exit 0
