# Sourced by the bench scripts that need test hosts: bench_fleet NAME N makes sure the engine
# and the image exist, builds the release binary unless MP_REMOTE_BIN names one, and brings up
# N test hosts as prefix mpbench-NAME<N> in a temp dir ($dir, removed with the hosts on exit).
# Sets hosts, prefix, dir and MP_REMOTE_BIN.
bench_fleet() {
    local name=$1 count=$2
    hosts=tests/hosts/testhosts
    "$hosts" engine
    "$hosts" image >/dev/null
    if [[ -z ${MP_REMOTE_BIN:-} ]]; then
        cargo build --release --locked -q
        MP_REMOTE_BIN=./target/release/mp-remote
    fi
    prefix=mpbench-$name$count
    dir=$(mktemp -d)
    trap '"$hosts" down --prefix "$prefix" >/dev/null; rm -rf "$dir"' EXIT
    "$hosts" up --prefix "$prefix" --count "$count" --dir "$dir" >&2
}
