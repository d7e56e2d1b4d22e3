#!/bin/sh
# Builds the static agents a control node pushes to hosts it cannot serve itself (another
# CPU, an older glibc, a laptop that is not Linux): mp-remote for ARCH-unknown-linux-musl,
# fully static, into an agents directory with its sha256 beside it.
#
#   scripts/build-agents.sh [ARCH...]     ARCH: x86_64, aarch64 (default: both)
#   AGENTS_DIR=dir PROFILE=release|dev    (defaults: ~/.cache/mp-remote/agents, release)
#
# Needs rustup's musl targets (added here) and, for aarch64, Debian's gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross (the C of the `ring` crate); the link is rust-lld's, with the musl libc
# rustup ships.
set -eu
cd "$(dirname "$0")/.."
dir=${AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mp-remote/agents}
profile=${PROFILE:-release}
[ $# -gt 0 ] || set -- x86_64 aarch64
mkdir -p "$dir"
for arch in "$@"; do
    case $arch in
        x86_64|aarch64) ;;
        *) echo "build-agents: mp-remote builds agents for x86_64 and aarch64, not $arch" >&2; exit 1 ;;
    esac
    target=$arch-unknown-linux-musl
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
    # The C compiler for ring's C and assembly: the host's gcc for its own arch, Debian's
    # cross gcc for the other (no libc of its own is linked: rust-lld takes rustup's musl).
    if [ "$arch" = "$(uname -m)" ]; then cc=gcc; else cc=$arch-linux-gnu-gcc; fi
    command -v "$cc" >/dev/null 2>&1 || {
        echo "build-agents: $cc is missing: apt-get install gcc-$arch-linux-gnu libc6-dev-$( [ "$arch" = aarch64 ] && echo arm64 || echo amd64)-cross" >&2
        exit 1
    }
    env_cc="CC_$(echo "$target" | tr '-' '_')=$cc"
    # Without debug info: the agent is uploaded to every host.
    env $env_cc "CARGO_TARGET_${upper}_LINKER=rust-lld" \
        "CARGO_TARGET_${upper}_RUSTFLAGS=-C strip=debuginfo" \
        cargo build --locked --profile "$profile" --target "$target" --bin mp-remote
    out=target/$target/$( [ "$profile" = dev ] && echo debug || echo "$profile")/mp-remote
    cp "$out" "$dir/mp-remote-$target.tmp"
    mv "$dir/mp-remote-$target.tmp" "$dir/mp-remote-$target"
    (cd "$dir" && sha256sum "mp-remote-$target" > "mp-remote-$target.sha256")
    echo "build-agents: $dir/mp-remote-$target ($(du -h "$dir/mp-remote-$target" | cut -f1))"
done
