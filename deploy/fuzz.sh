#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, ASan + UBSan) and runs each for
# SECONDS over a copy of its seed corpus: deploy/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target, default 30
#   TARGET   gguf safetensors config tokenizer chat_template step_plan (default: all, one
#            at a time)
# Prints each target's executions, coverage (cov/ft) and findings. Exits non-zero on any
# crash, leak, timeout or OOM, naming the reproducer; replay one with
#   build/fuzz/tests/fuzz/<target>_fuzz <reproducer>
# Work files (corpus copies, logs, reproducers) live in build/fuzz/work/<target>/, so the
# seeds in tests/fuzz/corpus/ stay as they are. New reproducers worth keeping go in
# tests/fuzz/regressions/<target>/, which the unit test fuzz_replay_<target> runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source deploy/lib.sh

seconds=${1:-30}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "fuzz: SECONDS must be a positive integer, got '$seconds'"
shift || true
all=(gguf safetensors config tokenizer chat_template step_plan)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ -f tests/fuzz/${t}_fuzz.cc ]] || die "fuzz: unknown target '$t' (known: ${all[*]})"
done

deploy/build.sh fuzz "${targets[@]/%/_fuzz}"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:symbolize=1
failed=()
for t in "${targets[@]}"; do
  work=build/fuzz/work/$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$work/corpus/"
  log=$work/fuzz.log
  echo "fuzz: $t for ${seconds}s (log $log)" >&2
  rc=0
  "build/fuzz/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -dict="tests/fuzz/$t.dict" -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    "$work/corpus" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last" || true)
  repro=$(find "$work/artifacts" -type f | sort | tr '\n' ' ')
  if ((rc != 0)) || [[ -n $repro ]]; then
    summary=$(grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY:|.*runtime error:|ERROR: libFuzzer)' "$log" || true)
    # The innermost frame in Tessera's own code, to tell findings apart at a glance.
    frame=$(grep -m 1 -oE ' in tessera::([A-Za-z0-9_]+::|\(anonymous namespace\)::)*[A-Za-z0-9_~]+' \
      "$log" || true)
    echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} runs, ${cov:-no coverage line}: ${summary:-see $log}" >&2
    [[ -z $frame ]] || echo "fuzz: $t: first Tessera frame:$frame" >&2
    echo "fuzz: $t: reproducer: ${repro:-none written; see $log}" >&2
    failed+=("$t")
  else
    echo "fuzz: $t: ok, ${execs:-?} runs, ${cov:-no coverage line}, no findings" >&2
  fi
done

if ((${#failed[@]})); then
  die "fuzz: findings in ${failed[*]} (reproducers under build/fuzz/work/<target>/artifacts/)"
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each with no findings" >&2
