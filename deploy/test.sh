#!/usr/bin/env bash
# The test command: set up, fetch the real model and llama.cpp's tokenizer vectors, build,
# run every test with ctest, then rebuild the parsers' malformed-input tests under
# AddressSanitizer + UBSan and run those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/setup.sh
deploy/fetch-model.sh smollm2-135m-instruct
deploy/fetch-test-data.sh
deploy/build.sh release
ctest --preset release -j2

asan_tests=(gguf_test safetensors_test dequant_test tokenizer_unit_test)
deploy/build.sh asan "${asan_tests[@]}"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --preset asan -j2 -R '^(Gguf|Safetensors|HfDir|Dequant|GgufVocabTest|HfJsonTest|RobustnessTest|RoundTripTest)\.'
