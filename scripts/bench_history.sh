#!/usr/bin/env bash
# Flat-out throughput of earlier commits, for 1, 4 and 7 validators: the "before and after each
# optimisation" rows of docs/performance.md.
#   scripts/bench_history.sh OUT_DIR DURATION_S COMMIT:BATCH [COMMIT:BATCH ...]
# Each commit is checked out in a temporary git worktree; its validators run that commit's code (the node
# processes start with the worktree as their working directory, so `python -m node.cli` imports it),
# while provisioning and the load generator are this checkout's, so every row is measured the same way.
# BATCH is txs per request (1 for commits before POST /tx-batches existed).
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=$(pwd)
OUT=$1; DUR=$2; shift 2
PY=$MAIN/.venv/bin/python
mkdir -p "$OUT"
TREE=""; HOME_DIR=""
stop_net() {
    if [ -n "$HOME_DIR" ]; then
        [ -f "$HOME_DIR/localnet.json" ] && $PY scripts/testnet.py down --home "$HOME_DIR" >/dev/null 2>&1
        rm -rf "$HOME_DIR"; HOME_DIR=""
    fi
    return 0
}
drop_tree() {
    if [ -n "$TREE" ]; then git worktree remove --force "$TREE" >/dev/null 2>&1; TREE=""; fi
    return 0
}
trap 'stop_net; drop_tree' EXIT
for SPEC in "$@"; do
    COMMIT=${SPEC%%:*}; BATCH=${SPEC##*:}
    TREE=$(mktemp -d /tmp/paynet-history-XXXX)
    git worktree add --detach "$TREE" "$COMMIT" >/dev/null 2>&1
    for V in 1 4 7; do
        HOME_DIR=$(mktemp -d /tmp/paynet-bench-XXXX)
        (cd "$TREE" && $PY "$MAIN/scripts/testnet.py" up --validators "$V" --home "$HOME_DIR" --base-port 29300 >/dev/null)
        # Per-IP API limits off (all load comes from one IP here; old defaults would answer 429), then restart.
        $PY scripts/testnet.py down --home "$HOME_DIR" >/dev/null
        sed -i -e 's/^ip_rate_per_s = .*/ip_rate_per_s = 1000000.0/' -e 's/^ip_burst = .*/ip_burst = 1000000/' \
            "$HOME_DIR"/node*/config.toml
        (cd "$TREE" && $PY "$MAIN/scripts/testnet.py" up --home "$HOME_DIR" >/dev/null)
        $PY scripts/bench.py --home "$HOME_DIR" --rate 0 --duration "$DUR" --drain 120 --batch "$BATCH" \
            --out "$OUT/history-$COMMIT-v$V-max.json" | tail -n 12
        stop_net
    done
    drop_tree
done
