// CPU kernel benchmarks: MatMul (f32 activations, the engine's path) against
// MatMulQ8Activations (8-bit activations, llama.cpp style) for SmolLM2-135M's shapes, in the
// weight types that model ships in:
//   decode  T = 1   memory bound: weight_GB = weight bytes streamed per second;
//   prefill T = 64, 512   compute bound: GFLOP = 2·T·K·N per call, per second.
// Shapes (K×N): FFN gate/up 576×1536 and down 1536×576 (same bytes), LM head 576×49152
// (Q8_0, T = 1 and 64 only: the engine computes logits for the last token). K-quants need
// K % 256 == 0, so they run only the down shape (llama.cpp likewise stores 576-wide rows of
// a Q4_K model in a 32-block type).
//
// Rates are per wall-clock second; the CPU column is the whole process's CPU time (all pool
// threads), so on a shared machine compare it with Time to see whether threads got cores.
//   build/<dir>/bench/kernels_bench [--benchmark_filter=Q4_1]; TESSERA_THREADS sets threads.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"
#include "kernels/matmul.h"

namespace tessera::kernels {
namespace {

// Random bytes are valid blocks of every type; scales are then set to sane small halves so
// no f16 scale is inf/NaN (the values do not change the work done).
std::vector<uint8_t> RandomWeights(DType type, int64_t n, int64_t k) {
  const int64_t bytes = *BytesFor(type, n * k);
  std::vector<uint8_t> w(bytes);
  std::mt19937 rng(1);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  const uint16_t small = FloatToHalf(0.01f);
  const DTypeInfo info = Info(type);
  for (int64_t off = 0; off < bytes; off += info.block_bytes) {
    uint8_t* blk = w.data() + off;
    auto put = [&](int at) { blk[at] = small & 0xFF, blk[at + 1] = small >> 8; };
    if (type == DType::kF32) *reinterpret_cast<float*>(blk) = 0.01f;  // random bits could be NaN
    if (type == DType::kF16) put(0);
    for (int at : HalfFieldsOf(type).at) {
      if (at >= 0) put(at);
    }
  }
  return w;
}

using MatMulFn = void (*)(Tensor, ConstTensor, ConstTensor);

void BM_MatMul(benchmark::State& state, MatMulFn matmul, DType type, int64_t t, int64_t kK,
               int64_t kN) {
  const auto w = RandomWeights(type, kN, kK);
  std::vector<float> x(t * kK), out(t * kN);
  std::mt19937 rng(2);
  for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  Tensor o(out.data(), DType::kF32, {t, kN});
  ConstTensor xv(x.data(), DType::kF32, {t, kK});
  ConstTensor wv(w.data(), type, {kN, kK});
  for (auto _ : state) {
    matmul(o, xv, wv);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double calls = static_cast<double>(state.iterations());
  if (t == 1) {
    state.counters["weight_GB"] = benchmark::Counter(calls * static_cast<double>(w.size()) / 1e9,
                                                     benchmark::Counter::kIsRate);
  } else {
    state.counters["GFLOP"] =
        benchmark::Counter(calls * 2.0 * t * kK * kN / 1e9, benchmark::Counter::kIsRate);
  }
  state.counters["threads"] = NumThreads();
}

void Register() {
  struct Shape {
    const char* name;
    int64_t k, n;
  };
  const Shape up{"up_576x1536", 576, 1536}, down{"down_1536x576", 1536, 576},
      head{"lm_head_576x49152", 576, 49152};
  const std::pair<const char*, MatMulFn> paths[] = {{"f32act", MatMul},
                                                    {"q8act", MatMulQ8Activations}};
  for (DType type : {DType::kF32, DType::kQ4_1, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K,
                     DType::kQ5_1, DType::kQ2_K, DType::kQ3_K, DType::kQ5_K, DType::kIQ4_NL,
                     DType::kIQ4_XS}) {
    const std::string name(Name(type).data(), Name(type).size());
    std::vector<Shape> shapes;
    if (Info(type).block_elems != 256) shapes.push_back(up);
    shapes.push_back(down);
    if (type == DType::kQ8_0) shapes.push_back(head);
    for (int64_t t : {1, 64, 512}) {
      const std::string phase = t == 1 ? "decode_T1/" : "prefill_T" + std::to_string(t) + "/";
      for (const Shape& s : shapes) {
        if (s.n == head.n && t > 64) continue;
        for (const auto& [path, fn] : paths) {
          if (!Info(type).quantized && fn != MatMul) continue;  // same code for float w
          benchmark::RegisterBenchmark(
              ("MatMul/" + phase + s.name + "/" + name + "/" + path).c_str(), BM_MatMul, fn, type,
              t, s.k, s.n)
              ->UseRealTime()
              ->MeasureProcessCPUTime();
        }
      }
    }
  }
}

}  // namespace
}  // namespace tessera::kernels

int main(int argc, char** argv) {
  tessera::kernels::Register();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
