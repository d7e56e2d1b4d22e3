#!/usr/bin/env bash
# The collector's normalisation path on one core (Binance depth diffs and trades), release
# build. Usage: bench/normalise.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench normalise
