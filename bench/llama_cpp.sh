# Sourced by the benchmarks (bench/run.sh, bench/models.sh): builds llama.cpp once from the
# llama-cpp-python source distribution on PyPI (its vendored llama.cpp) into
# $TESSERA_CACHE/llama.cpp-<version>, none of it committed, and sets llama_version,
# llama_bench, llama_batched and llama_quantize to its tools.
#
# llama.cpp is built with -march=native: a build made on another CPU (the cache directory
# outlives machines) can die of an illegal instruction, so the CPU's flags stamp the build.
# AMX is off: on a Xeon VM that lists amx_tile, llama-bench died of SIGILL on `tilezero`
# (2026-12-03), with GGML_AMX_* OFF too, since -march=native still defines __AMX_INT8__ and
# ggml's CPU backend then compiles its AMX kernels in: -mno-amx-* takes them out.
llama_version=0.3.36
llama_sdist_sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
llama_dir="$TESSERA_CACHE/llama.cpp-$llama_version"
llama_bench="$llama_dir/build/bin/llama-bench"
llama_batched="$llama_dir/build/bin/llama-batched-bench"
llama_quantize="$llama_dir/build/bin/llama-quantize"

build_llama_cpp() {
  local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  local cpu_stamp
  cpu_stamp=$( (grep -m1 '^flags' /proc/cpuinfo; echo "$no_amx") | sha256sum | cut -c1-16)
  if [[ -x "$llama_bench" && -x "$llama_batched" && -x "$llama_quantize" &&
        "$(cat "$llama_dir/build/cpu-flags" 2>/dev/null)" == "$cpu_stamp" ]]; then
    return
  fi
  rm -rf "$llama_dir"
  local tmp
  tmp=$(mktemp -d)
  pip_fetch_sdist "$tmp" "llama-cpp-python==$llama_version"
  verify_sha256 "$tmp/llama_cpp_python-$llama_version.tar.gz" "$llama_sdist_sha"
  mkdir -p "$llama_dir"
  tar -xzf "$tmp/llama_cpp_python-$llama_version.tar.gz" -C "$llama_dir" --strip-components=2 \
    "llama_cpp_python-$llama_version/vendor/llama.cpp"
  rm -rf "$tmp"
  cmake -S "$llama_dir/llama.cpp" -B "$llama_dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
    -DGGML_CCACHE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$llama_dir/build" -j2 --target llama-bench llama-batched-bench llama-quantize
  echo "$cpu_stamp" > "$llama_dir/build/cpu-flags"
}
