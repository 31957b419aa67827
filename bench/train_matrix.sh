#!/usr/bin/env bash
# The training benchmark of docs/BENCHMARKS.md: time to a test accuracy on
# Fashion-MNIST for a single libtorch process, for artel in each mode with N
# workers, and for fullbatch (the seeds' algorithm, capped in time).
#
#   bench/train_matrix.sh [-n WORKERS] [-t TARGET] [-o RESULTS.jsonl] [-m "C1 C2"]
#                         [-f FULLBATCH_LIMIT_S] [-l LIMIT_S] [-s "MODES"]
#
# MODES: any of single local local-carry sync async fullbatch [all]. Every
# artel run gives up after LIMIT_S [300] (fullbatch after FULLBATCH_LIMIT_S
# [300]) and then reports the accuracy it reached.
#
# Needs a build (make build), /usr/bin/python3 with torch, and Fashion-MNIST
# (scripts/setup.sh installs both). Each run prints its progress; the JSON
# summaries are collected in RESULTS.jsonl and printed as a table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
workers=2 target=0.90 out=${BUILD_DIR:-build}/bench-train.jsonl channels="32 64" full_limit=300 limit=300
modes="single local local-carry sync async fullbatch"
while getopts "n:t:o:m:f:l:s:h" opt; do
  case $opt in
    n) workers=$OPTARG ;;
    t) target=$OPTARG ;;
    o) out=$OPTARG ;;
    m) channels=$OPTARG ;;
    f) full_limit=$OPTARG ;;
    l) limit=$OPTARG ;;
    s) modes=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
for b in artel artel-ml artel-bench-train artel-bench-single; do
  [[ -x $BIN/$b ]] || { echo "train_matrix: $BIN/$b is missing; run make build" >&2; exit 1; }
done
model=$(mktemp /tmp/artel-bench-model-XXXXXX.pt)
trap 'rm -f "$model"' EXIT
# shellcheck disable=SC2086
/usr/bin/python3 bench/model.py "$model" $channels
: >"$out"
echo "== machine: $(nproc) cores, $(uname -m); model: 2-conv CNN ($channels channels); target $target"

run() {  # name, command...
  local name=$1
  shift
  echo "== $name: $*"
  # Progress lines arrive on stderr; stdout is the run's JSON summary.
  "$@" | tee -a "$out"
}

# Adam with lr 0.002 everywhere. The single process steps on batches of 64.
# local: tasks of 64 such steps, each from a fresh Adam (the default), with a
# light outer Nesterov momentum. local-carry: the round averages the deltas
# and the Adam states (plain averaging, --inner-state carry). sync and
# async: one gradient of 256 samples per task (a task of 64 samples would be
# mostly process start-up). fullbatch: one step per epoch.
for mode in $modes; do
  lim=$limit
  case $mode in
    single)
      run "single process, 1 thread" "$BIN/artel-bench-single" --model "$model" \
        --target-accuracy "$target" --epochs 10 --json || true
      continue
      ;;
    local) flags=(--mode local --local-steps 64 --outer-lr 0.8 --outer-momentum 0.5) ;;
    local-carry)
      flags=(--mode local --local-steps 64 --inner-state carry --outer-lr 1 --outer-momentum 0)
      ;;
    sync | async) flags=(--mode "$mode" --batch-size 256) ;;
    fullbatch) flags=(--mode fullbatch --lr 0.01 --epochs 1000) lim=$full_limit ;;
    *)
      echo "train_matrix: unknown mode '$mode'; use single local local-carry sync async fullbatch" >&2
      exit 2
      ;;
  esac
  run "artel $mode, $workers workers" "$BIN/artel-bench-train" --model "$model" \
    --workers "$workers" --target-accuracy "$target" --time-limit "$lim" "${flags[@]}" \
    --json || true
done

echo
echo "== results ($out)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
base = next((r["time_to_target_s"] for r in rows if r["run"] == "single" and r["reached"]), None)
print(f"{'run':28} {'reached':>7} {'time (s)':>9} {'epochs':>7} {'accuracy':>8} {'MiB/epoch':>9} {'speed-up':>8}")
for r in rows:
    mode = r.get("mode", "") + ("-carry" if r.get("inner_state") == "carry" else "")
    name = "single process" if r["run"] == "single" else f"artel {mode} x{r['workers']}"
    acc = f"{r['accuracy'] * 100:.2f}%" if r["accuracy"] >= 0 else "-"
    t = r["time_to_target_s"] if r["reached"] else r.get("elapsed_s", r["time_to_target_s"])
    speed = f"{base / t:.2f}" if base and r["reached"] else "-"
    print(f"{name:28} {str(r['reached']):>7} {t:9.1f} {r.get('epochs_to_target', -1) if r['reached'] else r.get('epochs', 0):7.2f} "
          f"{acc:>8} {r.get('mib_per_epoch', 0):9.1f} {speed:>8}")
PY
