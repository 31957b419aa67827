#!/bin/sh
# Robust aggregation under attack: the Fashion-MNIST CNN on 8 workers, 2 of
# which attack, one attack at a time; each run with --aggregate mean and
# centered-clip, plus both without attack. Prints one JSON line per run
# (artel-bench-train --json) into bench-robust.jsonl and a table at the end.
#
#   bench/robust.sh [-n WORKERS] [-k ATTACKERS] [-e EPOCHS] [-a "sign-flip noise scale:-4 label-flip"]
set -eu
workers=8 attackers=2 epochs=3
attacks="sign-flip noise scale:-4 label-flip"
rules="mean centered-clip"
while getopts n:k:e:a:r: opt; do
  case $opt in
    n) workers=$OPTARG ;;
    k) attackers=$OPTARG ;;
    e) epochs=$OPTARG ;;
    a) attacks=$OPTARG ;;
    r) rules=$OPTARG ;;
    *) echo "usage: $0 [-n WORKERS] [-k ATTACKERS] [-e EPOCHS] [-a ATTACKS] [-r RULES]" >&2; exit 2 ;;
  esac
done
BIN=${BIN:-build/bin}
out=${OUT:-bench-robust.jsonl}
model=$(mktemp /tmp/artel-bench-model-XXXXXX.pt)
trap 'rm -f "$model"' EXIT
/usr/bin/python3 bench/model.py "$model"
: >"$out"
run() {  # rule attack
  k=$attackers
  [ "$2" = none ] && k=0
  echo "== --aggregate $1, attack $2 on $k of $workers workers, $epochs epochs" >&2
  "$BIN/artel-bench-train" --model "$model" --workers "$workers" --epochs "$epochs" \
    --target-accuracy 1.0 --aggregate "$1" --attackers "$k" --attack "${2#none}" --json \
    >>"$out" || [ $? -eq 3 ]
}
for rule in $rules; do run "$rule" none; done
for attack in $attacks; do
  for rule in $rules; do run "$rule" "$attack"; done
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
clean = {r["aggregate"]: r for r in rows if r["attack"] == "none"}
print("| attack | aggregate | epochs | test accuracy | vs clean mean | excluded | worker compute (s) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    base = clean.get("mean")
    diff = (r["accuracy"] - base["accuracy"]) * 100 if base else float("nan")
    print(f'| {r["attack"]} | {r["aggregate"]} | {r["epochs"]:.2f} | {r["accuracy"]*100:.2f} % | '
          f'{diff:+.2f} | {r["excluded"]} | {r["compute_ms"]/1000:.1f} |')
if "mean" in clean and "centered-clip" in clean:
    print(f'compute overhead, centered-clip / mean without attack: '
          f'{clean["centered-clip"]["compute_ms"] / clean["mean"]["compute_ms"]:.3f}x')
PY
