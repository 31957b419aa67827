#!/usr/bin/env bash
# The volunteer benchmark of docs/BENCHMARKS.md: every artel worker runs as
# its own simulated machine, in its own CPU cgroup with a quota of CPU cores
# and, with --net, in its own network namespace behind a veth pair whose two
# ends are rate-limited with tbf. The single-process baseline runs under the
# same quota. Prints time to a test accuracy on Fashion-MNIST for the baseline
# and for each mode, with the speed-up, MiB per epoch and compute utilization,
# as a table and as JSON lines.
#
#   bench/volunteers.sh [-n WORKERS] [-c|--cpu CPUS] [--net RATE] [-s "MODES"]
#                       [-t TARGET] [-l LIMIT_S] [-o RESULTS.jsonl] [-m "C1 C2"]
#                       [--period MS] [--burst B] [--keep] [-- ARTEL-BENCH-TRAIN FLAGS...]
#
#   -n WORKERS   worker processes, each a simulated machine [4]
#   -c CPUS      CPU quota of each worker and of the baseline, in cores [0.4]
#   --period MS  the quota's period (cpu.cfs_period_us) in ms [10]: a throttled
#                process runs CPUS x MS of every MS, so a short period stands
#                for a slower CPU; the kernel's default of 100 ms would stop a
#                0.4-CPU worker for 60 ms at a time, which no slow machine does
#   --net RATE   tc rate of each worker's link, each direction, e.g. 20mbit
#                [none: workers share loopback with the coordinator]
#   -s MODES     any of single (the baseline) sync local async fullbatch
#                ["single local sync"]
#   -t TARGET    test accuracy to reach [0.90]
#   -l LIMIT_S   an artel run gives up after this many seconds [900]
#   --burst B    tbf burst [32kbit]
#   --keep       keep each artel run's directory (logs) under /tmp
#   -- FLAGS     passed to every artel-bench-train run, replacing the script's
#                own value of the same flag, e.g. -- --eval-every 8
#
# Every mode runs with the coordinator's defaults for that mode; only the
# optimizer (adam), lr (0.002) and batch size per task (64) are given, as the
# baseline uses them. In sync with 4 workers a step covers 4 x 64 samples.
#
# Needs root (cgroups, namespaces), the cgroup v1 cpu controller at
# /sys/fs/cgroup/cpu, iproute2 with tbf for --net, a build (make build),
# /usr/bin/python3 with torch and Fashion-MNIST (scripts/setup.sh installs
# them). Cgroups artel-bench-PID-*, namespaces artel-bench-PID-K and veths
# abPID-K{h,n} are removed at the end, on failure and on Ctrl-C. Links use
# 10.231.K.0/30 (K = worker number): host side .1, namespace side .2.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
workers=4 cpu=0.4 period_ms=10 rate="" burst=32kbit modes="single local sync" target=0.90 limit=900
out=${BUILD_DIR:-build}/bench-volunteers.jsonl channels="32 64" keep=()
extra=()
usage() { sed -n '2,25p' "$0"; exit 2; }
while (($#)); do
  case $1 in
    -n | --workers) workers=$2; shift ;;
    -c | --cpu) cpu=$2; shift ;;
    --period) period_ms=$2; shift ;;
    --net) rate=$2; shift ;;
    --burst) burst=$2; shift ;;
    -s | --modes) modes=$2; shift ;;
    -t | --target) target=$2; shift ;;
    -l | --time-limit) limit=$2; shift ;;
    -o | --out) out=$2; shift ;;
    -m | --channels) channels=$2; shift ;;
    --keep) keep=(--keep) ;;
    --) shift; extra=("$@"); break ;;
    *) usage ;;
  esac
  shift
done

die() { echo "volunteers: $*" >&2; exit 1; }
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive number of workers"
[[ $period_ms =~ ^[1-9][0-9]*$ ]] && ((period_ms <= 1000)) ||
  die "--period must be a whole number of milliseconds from 1 to 1000"
period_us=$((period_ms * 1000))
quota_us=$(/usr/bin/python3 -c "import sys; q = float(sys.argv[1]); print(round(q * int(sys.argv[2])) if q > 0 else -1)" "$cpu" "$period_us") ||
  die "--cpu must be a number of cores, e.g. 0.4"
((quota_us >= 1000)) || die "--cpu x --period must be at least 1 ms (the kernel's smallest quota)"
((EUID == 0)) || die "needs root: it creates cgroups${rate:+ and network namespaces}; run it with sudo"
CPU_ROOT=/sys/fs/cgroup/cpu
[[ -e $CPU_ROOT/cpu.cfs_quota_us ]] ||
  die "needs the cgroup v1 cpu controller at $CPU_ROOT (cpu.cfs_quota_us is missing); mount it with
  mount -t cgroup -o cpu cgroup $CPU_ROOT"
# CPU time used, where the cpuacct controller is mounted (with cpu, or apart).
ACCT_ROOT=""
if [[ -e $CPU_ROOT/cpuacct.usage ]]; then ACCT_ROOT=$CPU_ROOT
elif [[ -e /sys/fs/cgroup/cpuacct/cpuacct.usage ]]; then ACCT_ROOT=/sys/fs/cgroup/cpuacct; fi
if [[ -n $rate ]]; then
  if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    die "--net needs ip and tc (apt-get install iproute2)"
  fi
  ((workers <= 250)) || die "--net supports at most 250 workers (one 10.231.K.0/30 each)"
  for ((k = 1; k <= workers; k++)); do
    if ip -4 -o addr show | grep -q " 10\.231\.$k\.[0-3]/"; then
      die "10.231.$k.0/30 is already in use on this machine (another run of this benchmark?)"
    fi
  done
fi
for b in artel artel-ml artel-bench-train artel-bench-single; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing; run make build"
done

tag=artel-bench-$$
model=$(mktemp /tmp/artel-bench-model-XXXXXX.pt)
run_out=$(mktemp /tmp/artel-bench-run-XXXXXX.json)
child=""
cgroups=()  # every cgroup directory made, removed by cleanup

# Kills what is left in one of our cgroups (processes this script started),
# then removes it.
remove_cgroup() {
  local dir=$1 pid i
  [[ -d $dir ]] || return 0
  # The processes die asynchronously; the directory goes once they are gone.
  for ((i = 0; i < 100; i++)); do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$dir/cgroup.procs"
    rmdir "$dir" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "volunteers: could not remove cgroup $dir; remove it with rmdir once its processes exit" >&2
}

net_down() {
  local k
  for ((k = 1; k <= workers; k++)); do
    ip link del "ab$$-${k}h" 2>/dev/null || true
    ip netns del "$tag-$k" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true  # artel-bench-train stops its cluster
    for ((i = 0; i < 100; i++)); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null || true
  fi
  local dir
  for dir in "${cgroups[@]}"; do remove_cgroup "$dir"; done
  [[ -z $rate ]] || net_down
  rm -f "$model" "$run_out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_cgroup NAME: a cpu cgroup with the quota (and a cpuacct one, when
# mounted apart); prints the directories.
make_cgroup() {
  local dir=$CPU_ROOT/$tag-$1
  mkdir "$dir"
  cgroups+=("$dir")
  echo "$period_us" >"$dir/cpu.cfs_period_us"
  echo "$quota_us" >"$dir/cpu.cfs_quota_us"
  if [[ -n $ACCT_ROOT && $ACCT_ROOT != "$CPU_ROOT" ]]; then
    mkdir "$ACCT_ROOT/$tag-$1"
    cgroups+=("$ACCT_ROOT/$tag-$1")
  fi
}

# cgroup_dirs NAME: the directories a process joins to be in cgroup NAME.
cgroup_dirs() {
  echo "$CPU_ROOT/$tag-$1"
  if [[ -n $ACCT_ROOT && $ACCT_ROOT != "$CPU_ROOT" ]]; then echo "$ACCT_ROOT/$tag-$1"; fi
}

# cgroup_stats NAME: "CPU_S THROTTLED_S" used so far (CPU_S -1 without cpuacct).
cgroup_stats() {
  local used=-1 throttled
  [[ -z $ACCT_ROOT ]] || used=$(cat "$ACCT_ROOT/$tag-$1/cpuacct.usage")
  throttled=$(awk '$1 == "throttled_time" {print $2}' "$CPU_ROOT/$tag-$1/cpu.stat")
  echo "$used ${throttled:-0}"
}

seconds() {  # nanoseconds to seconds; -1 stays -1 (not measured)
  awk -v ns="$1" 'BEGIN { if (ns < 0) print -1; else printf "%.1f\n", ns / 1e9 }'
}

drop_cgroup() {
  local dir keep_dirs=()
  for dir in $(cgroup_dirs "$1"); do remove_cgroup "$dir"; done
  for dir in "${cgroups[@]}"; do [[ -d $dir ]] && keep_dirs+=("$dir"); done
  cgroups=("${keep_dirs[@]}")
}

# Runs "$@" in the background (so that a signal reaches the trap at once)
# with stdout in $run_out; returns its exit code and sets $run_wall_s.
run_child() {
  local start rc=0
  start=$(date +%s.%N)
  "$@" >"$run_out" &
  child=$!
  wait "$child" || rc=$?
  child=""
  run_wall_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  return "$rc"
}

net_up() {
  local k ns h n
  for ((k = 1; k <= workers; k++)); do
    ns=$tag-$k h=ab$$-${k}h n=ab$$-${k}n
    ip netns add "$ns"
    ip link add "$h" type veth peer name "$n"
    ip link set "$n" netns "$ns"
    ip addr add "10.231.$k.1/30" dev "$h"
    ip link set "$h" up
    ip -n "$ns" addr add "10.231.$k.2/30" dev "$n"
    ip -n "$ns" link set "$n" up
    ip -n "$ns" link set lo up
    # Both ends, so that both directions are limited.
    tc qdisc add dev "$h" root tbf rate "$rate" burst "$burst" latency 400ms
    tc -n "$ns" qdisc add dev "$n" root tbf rate "$rate" burst "$burst" latency 400ms
  done
}

# probe FROM_NS TO_NS TO_HOST: Mbit/s of a 5 MB transfer ("" = this host).
probe() {
  local from=$1 to=$2 host=$3 port line fifo
  fifo=$(mktemp -u /tmp/artel-bench-probe-XXXXXX)
  mkfifo "$fifo"
  ${to:+ip netns exec "$to"} /usr/bin/python3 bench/net_probe.py serve "$host" >"$fifo" &
  local server=$!
  exec {fd}<"$fifo"
  read -r -t 30 port <&"$fd" || die "the link check could not start its receiver"
  ${from:+ip netns exec "$from"} /usr/bin/python3 bench/net_probe.py send "$host" "$port" 5000000
  read -r -t 120 line <&"$fd" || die "the link check's transfer did not finish"
  exec {fd}<&-
  wait "$server" || true
  rm -f "$fifo"
  awk '{printf "%.1f", $1 * 8 / $2 / 1e6}' <<<"$line"
}

veth_bytes() {  # "DOWN UP" bytes over every worker's link so far
  local k down=0 up=0
  for ((k = 1; k <= workers; k++)); do
    down=$((down + $(cat "/sys/class/net/ab$$-${k}h/statistics/tx_bytes")))
    up=$((up + $(cat "/sys/class/net/ab$$-${k}h/statistics/rx_bytes")))
  done
  echo "$down $up"
}

# add_fields JSON_FILE KEY=VALUE...: the run's JSON summary with fields added
# (values are JSON), appended to $out.
add_fields() {
  /usr/bin/python3 - "$@" <<'PY' | tee -a "$out"
import json, sys
row = json.loads(next(l for l in open(sys.argv[1]) if l.startswith("{")))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    row[k] = json.loads(v)
print(json.dumps(row))
PY
}

# shellcheck disable=SC2086
/usr/bin/python3 bench/model.py "$model" $channels
mkdir -p "$(dirname "$out")"
: >"$out"
echo "== machine: $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg); model: 2-conv CNN ($channels channels)"
echo "== $workers workers at $cpu CPU each (quota $((quota_us / 1000)) of every $period_ms ms)${rate:+, links of $rate each way}; target $target"
net_json=null
if [[ -n $rate ]]; then
  net_up
  down=$(probe "" "$tag-1" 10.231.1.2)
  up=$(probe "$tag-1" "" 10.231.1.1)
  echo "== link check (worker 1): $down Mbit/s down, $up Mbit/s up (tbf rate $rate, burst $burst)"
  net_json="\"$rate\""
  echo "{\"run\": \"link\", \"rate\": \"$rate\", \"down_mbit_s\": $down, \"up_mbit_s\": $up}" >>"$out"
fi
common=(cpu="$cpu" period_ms="$period_ms" net="$net_json")

for mode in $modes; do
  case $mode in
    single)
      echo "== single process, 1 thread, $cpu CPU"
      load="\"$(cut -d' ' -f1-3 /proc/loadavg)\""
      make_cgroup base
      rc=0
      # shellcheck disable=SC2016  # the inner shell expands them
      run_child /bin/sh -c 'for d in $1; do echo $$ >"$d/cgroup.procs" || exit 126; done; shift; exec "$@"' \
        sh "$(cgroup_dirs base | tr '\n' ' ')" "$BIN/artel-bench-single" --model "$model" \
        --target-accuracy "$target" --epochs 10 --json || rc=$?
      read -r used throttled < <(cgroup_stats base)
      drop_cgroup base
      if ((rc == 0 || rc == 3)); then
        add_fields "$run_out" "${common[@]}" load_start="$load" workers=1 cpu_s="$(seconds "$used")" \
          throttled_s="$(seconds "$throttled")" run_wall_s="$run_wall_s"
      else
        echo "volunteers: the baseline failed (exit $rc)" >&2
      fi
      continue
      ;;
    sync | local | async | fullbatch) ;;
    *) die "unknown mode '$mode'; use single sync local async fullbatch" ;;
  esac
  echo "== artel $mode, $workers workers"
  load="\"$(cut -d' ' -f1-3 /proc/loadavg)\""
  for ((k = 1; k <= workers; k++)); do make_cgroup "w$k"; done
  placement=(--worker-cgroup "$CPU_ROOT/$tag-w{i}")
  [[ -z $ACCT_ROOT || $ACCT_ROOT == "$CPU_ROOT" ]] || placement+=(--worker-cgroup "$ACCT_ROOT/$tag-w{i}")
  if [[ -n $rate ]]; then
    placement+=(--coordinator-host 0.0.0.0 --worker-netns "$tag-{i}"
      --worker-coordinator-host "10.231.{i}.1")
    read -r down0 up0 < <(veth_bytes)
  fi
  # The mode's defaults (0: the coordinator's), unless given after --.
  flags=()
  for kv in optimizer=adam lr=0.002 batch-size=64 local-steps=0 evals-per-epoch=0 epochs=100; do
    case " ${extra[*]} " in
      *" --${kv%%=*} "* | *" --${kv%%=*}="*) ;;
      *" --eval-every "* | *" --eval-every="*) [[ $kv == evals-per-epoch=* ]] || flags+=("--${kv%%=*}" "${kv#*=}") ;;
      *) flags+=("--${kv%%=*}" "${kv#*=}") ;;
    esac
  done
  rc=0
  run_child "$BIN/artel-bench-train" --model "$model" --mode "$mode" --workers "$workers" \
    "${flags[@]}" --target-accuracy "$target" --time-limit "$limit" --json "${keep[@]}" \
    "${placement[@]}" "${extra[@]}" || rc=$?
  cpu_total=0 throttled_total=0 per_worker=()
  for ((k = 1; k <= workers; k++)); do
    read -r used throttled < <(cgroup_stats "w$k")
    per_worker+=("$(seconds "$used")")
    cpu_total=$((used < 0 ? -1 : cpu_total + used))
    throttled_total=$((throttled_total + throttled))
    drop_cgroup "w$k"
  done
  fields=(cpu_s="$(seconds "$cpu_total")" worker_cpu_s="[$(IFS=,; echo "${per_worker[*]}")]"
    throttled_s="$(seconds "$throttled_total")" run_wall_s="$run_wall_s")
  if [[ -n $rate ]]; then
    read -r down1 up1 < <(veth_bytes)
    fields+=(link_down_bytes=$((down1 - down0)) link_up_bytes=$((up1 - up0)))
  fi
  if ((rc == 0 || rc == 3)); then
    add_fields "$run_out" "${common[@]}" load_start="$load" "${fields[@]}"
  else
    echo "volunteers: artel $mode failed (exit $rc)${keep:+; logs under /tmp/artel-bench-train-*}" >&2
  fi
done

echo
echo "== results ($out)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
runs = [r for r in rows if r["run"] in ("single", "artel")]
base = next((r for r in runs if r["run"] == "single" and r["reached"]), None)
print(f"{'run':28} {'reached':>7} {'time (s)':>9} {'epochs':>7} {'ep/min':>6} {'accuracy':>8} {'speed-up':>8} "
      f"{'MiB/epoch':>9} {'link MiB':>8} {'compute util':>12} {'CPU s':>7} {'quota used':>10}")
for r in runs:
    cpu = f"{r['cpu']} CPU" + (f", {r['net']}" if r.get("net") else "")
    if r["run"] == "single":
        name = f"single ({cpu})"
        t, ep = r["time_to_target_s"], r["epochs_to_target"]
        util = "-"
    else:
        name = f"{r['mode']} x{r['workers']} ({cpu})"
        t = r["time_to_target_s"] if r["reached"] else r["elapsed_s"]
        ep = r["epochs_to_target"] if r["reached"] else r["epochs"]
        util = f"{r['utilization'] * 100:.0f}%" if r.get("compute_ms", 0) > 0 and r["utilization"] >= 0 else "-"
    acc = f"{r['accuracy'] * 100:.2f}%" if r["accuracy"] >= 0 else "-"
    rate = f"{ep / t * 60:.2f}" if t > 0 and ep > 0 else "-"
    speed = f"{base['time_to_target_s'] / t:.2f}" if base and r["reached"] and t > 0 else "-"
    mib = f"{r['mib_per_epoch']:.1f}" if "mib_per_epoch" in r else "-"
    link = (f"{(r['link_down_bytes'] + r['link_up_bytes']) / 1048576:.1f}"
            if "link_down_bytes" in r else "-")
    cpu_s = f"{r['cpu_s']:.0f}" if r.get("cpu_s", -1) >= 0 else "-"
    # CPU the cgroups measured over what the quotas allowed while it ran.
    wall = r.get("run_wall_s", 0)
    used = (f"{r['cpu_s'] / (r['cpu'] * wall * r['workers']) * 100:.0f}%"
            if r.get("cpu_s", -1) >= 0 and wall > 0 else "-")
    print(f"{name:28} {str(r['reached']):>7} {t:9.1f} {ep:7.2f} {rate:>6} {acc:>8} {speed:>8} "
          f"{mib:>9} {link:>8} {util:>12} {cpu_s:>7} {used:>10}")
for r in rows:
    if r["run"] == "link":
        print(f"link check: {r['down_mbit_s']} Mbit/s down, {r['up_mbit_s']} Mbit/s up (tbf {r['rate']})")
print("time: the baseline's training steps only; artel's from submitting the job to the client "
      "seeing the target (or giving up). ep/min: epochs per minute of that time.\ncompute util: the job's compute_ms / (running time x workers). "
      "CPU s: what the cgroups measured (workers and all their tasks), including start-up;\n"
      "quota used: CPU s / (quota x the run's whole wall time x workers). link MiB: bytes over the workers' "
      "links, shards and the app included.")
PY
