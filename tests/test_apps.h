// Shell-script apps shared by the multi-process tests. Each runs inside the
// sandbox (/bin/sh is dash; cwd /artel/work; outputs in $ARTEL_OUTPUT_DIR).
#pragma once

#include "artel/v1/artel.pb.h"

namespace artel::testing {

// About 3 s of work, then a fixed answer.
inline constexpr char kSlowApp[] = R"(#!/bin/sh
i=0
while [ $i -lt 15 ]; do sleep 0.2; i=$((i+1)); done
echo "slept $i times"
)";

// Counts from the checkpointed value (or 0) to 30, saving each step, and
// reports where it started and every number it computed itself.
inline constexpr char kCountingApp[] = R"(#!/bin/sh
set -e
n=0
if [ -f "$ARTEL_CHECKPOINT_DIR/n" ]; then n=$(cat "$ARTEL_CHECKPOINT_DIR/n"); fi
echo "$n" > "$ARTEL_OUTPUT_DIR/start"
computed=""
while [ "$n" -lt 30 ]; do
  n=$((n+1))
  computed="$computed $n"
  echo "$n" > "$ARTEL_CHECKPOINT_DIR/n.tmp"
  mv "$ARTEL_CHECKPOINT_DIR/n.tmp" "$ARTEL_CHECKPOINT_DIR/n"
  sleep 0.1
done
echo "$n" > "$ARTEL_OUTPUT_DIR/final"
echo "computed:$computed"
)";

// A short deterministic task: its answer depends only on its argument.
inline constexpr char kSquareApp[] = R"(#!/bin/sh
sleep 0.2
echo $(($1 * $1)) > "$ARTEL_OUTPUT_DIR/square"
)";

// True if some replica of `t` is in `state`.
inline bool HasReplicaIn(const v1::TaskInfo& t, v1::ReplicaState state) {
  for (const auto& r : t.replicas()) {
    if (r.state() == state) return true;
  }
  return false;
}

}  // namespace artel::testing
