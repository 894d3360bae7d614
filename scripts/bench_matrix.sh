#!/usr/bin/env bash
# Runs the bench for 1, 4 and 7 validators on fresh local networks and writes docs/bench/*.json + .png.
#   scripts/bench_matrix.sh [OUT_DIR] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/bench}
DUR=${2:-60}
PY=.venv/bin/python
mkdir -p "$OUT"
for V in 1 4 7; do
    HOME_DIR=$(mktemp -d /tmp/paynet-bench-XXXX)
    $PY scripts/testnet.py up --validators "$V" --home "$HOME_DIR" --base-port 29100 >/dev/null
    $PY scripts/bench.py --home "$HOME_DIR" --rate 1000 --duration "$DUR" --out "$OUT/v${V}-rate1000.json"
    # flat out builds a deep queue: allow it time to drain so every submitted tx is counted final
    $PY scripts/bench.py --home "$HOME_DIR" --rate 0 --duration "$DUR" --drain 120 --out "$OUT/v${V}-max.json"
    $PY scripts/testnet.py down --home "$HOME_DIR" >/dev/null
    rm -rf "$HOME_DIR"
done
