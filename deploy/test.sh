#!/usr/bin/env bash
# The test command. In order, stopping at the first failure:
#   1. set-up (Debian packages, .venv), the real SmolLM2 and Gemma 3 models and llama.cpp's tokenizer
#      vectors;
#   2. the release build and every test (ctest labels unit, slow, dist, e2e);
#   3. the whole unit suite again under AddressSanitizer + UBSan (asan preset, -O1 -g1; the
#      slow real-model tests run in step 2 only);
#   4. the thread pool, in-process communicator, parallel-layer and engine-across-ranks
#      tests under ThreadSanitizer (tsan preset);
#   5. every fuzz target for 30 s over its corpus (deploy/fuzz.sh; libFuzzer, ASan + UBSan).
# TESSERA_TEST_QUICK=1 stops after step 2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { echo; echo "== test.sh: $* ($(date +%T))"; }

step "set-up and test data"
deploy/setup.sh
deploy/fetch-model.sh smollm2-135m-instruct
deploy/fetch-model.sh gemma3-270m-it
deploy/fetch-test-data.sh

step "release build, all tests"
deploy/build.sh release
ctest --preset release -j2
if [[ ${TESSERA_TEST_QUICK:-0} == 1 ]]; then exit 0; fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
step "ASan + UBSan: unit suite"
deploy/build.sh asan
ctest --preset asan -j2 -L unit

step "TSan: thread pool, in-process communicator, parallel layers, ring attention, engine across ranks"
tsan_tests=(kernels_test communicator_test linear_tp_test moe_ep_test engine_ranks_test ring_attention_test)
deploy/build.sh tsan "${tsan_tests[@]}"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --preset tsan -j2 -L unit -E '_NOT_BUILT$|^fuzz_replay_'  # every test of those binaries

step "fuzz targets, 30 s each"
deploy/fuzz.sh 30
step "all passed"
