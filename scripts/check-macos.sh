#!/usr/bin/env bash
# Type-checks the control node for macOS (x86_64-apple-darwin and aarch64-apple-darwin) on a
# Linux machine: what a laptop on macOS would build, without Apple's SDK. The `ring` crate's
# build script wants a C compiler for the target; for a type-check nothing is linked, so a
# stand-in "compiler" that writes empty objects is enough.
#
#   scripts/check-macos.sh          exit 0 checked, 1 the code does not build for macOS,
#                                   2 rustup's darwin targets cannot be added here
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(x86_64-apple-darwin aarch64-apple-darwin)
for t in "${targets[@]}"; do
    rustup target list --installed | grep -qx "$t" && continue
    rustup target add "$t" >&2 || {
        echo "check-macos: rustup cannot add $t here: the control node is not type-checked for macOS" >&2
        exit 2
    }
done
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
cat >"$fake/cc" <<'CC'
#!/bin/sh
# Compiles nothing. To cc-rs's family probe it answers as clang (`-E` prints "clang", the
# MSVC flag `-?` is refused); every compile writes an empty object.
out=
for a in "$@"; do
    case $a in
        -E) echo '"clang"'; exit 0 ;;
        '-?') exit 1 ;;
    esac
done
while [ $# -gt 0 ]; do
    case $1 in
        -o) out=$2; shift ;;
        -o*) out=${1#-o} ;;
    esac
    shift
done
[ -n "$out" ] && : >"$out"
exit 0
CC
chmod +x "$fake/cc"
args=()
for t in "${targets[@]}"; do
    export "CC_${t//-/_}=$fake/cc" "AR_${t//-/_}=ar"
    args+=(--target "$t")
done
# The same target dir as the Linux build: its build scripts and proc macros are reused.
cargo check --locked "${args[@]}" --lib --bins || exit 1
echo "check-macos: the control node type-checks for ${targets[*]}" >&2
