// The engine on the golden tiny models: 32 requests of different lengths at once through
// the scheduler (chunked prefill, block boundaries crossed, a KV pool small enough that
// requests are preempted and recomputed) give the same tokens and log-probabilities as
// each request generated alone by Generate(); seeded sampling too; with 16-bit KV too;
// cancellation frees.
#include "runtime/engine/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "runtime/engine/generate.h"

namespace tessera {
namespace {

struct Loaded {
  std::unique_ptr<ModelSource> source;
  std::unique_ptr<parallel::Communicator> comm;
  std::unique_ptr<Transformer> model;
};

Loaded Load(const std::string& arch) {
  Loaded l;
  auto source = ModelSource::Open(std::string(TESSERA_TEST_DATA_DIR) + "/golden/" + arch);
  EXPECT_TRUE(source.ok()) << source.status();
  l.source = std::move(*source);
  l.comm = parallel::MakeSoloCommunicator();
  auto model = Transformer::Load(*l.source, l.comm.get(), LoadOptions{});
  EXPECT_TRUE(model.ok()) << model.status();
  l.model = std::move(*model);
  return l;
}

struct Result {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::optional<serving::FinishReason> finish;
};

std::map<serving::RequestId, Result> RunAll(Engine& e) {
  std::map<serving::RequestId, Result> out;
  for (int steps = 0; !e.idle() && steps < 100000; ++steps) {
    absl::StatusOr<std::vector<EngineOutput>> step = e.Step();
    EXPECT_TRUE(step.ok()) << step.status();
    if (!step.ok()) break;
    for (const EngineOutput& o : *step) {
      Result& r = out[o.id];
      r.tokens.insert(r.tokens.end(), o.tokens.begin(), o.tokens.end());
      r.logprobs.insert(r.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
      r.finish = o.finish;
    }
  }
  EXPECT_TRUE(e.idle());
  return out;
}

std::vector<EngineRequest> Requests(int n, int64_t vocab, int64_t context, float temperature) {
  std::mt19937 rng(17);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < n; ++i) {
    EngineRequest r;
    r.id = 100 + i;
    const int64_t len = i == 0 ? 1 : i == 1 ? 90 : 1 + static_cast<int64_t>(rng() % 80);
    for (int64_t k = 0; k < len; ++k) r.prompt.push_back(static_cast<int32_t>(rng() % vocab));
    r.sampling.max_new_tokens = static_cast<int32_t>(
        std::min<int64_t>(4 + rng() % 20, context - len));
    r.sampling.temperature = temperature;
    r.sampling.top_k = temperature > 0 ? 20 : 0;
    r.sampling.seed = rng();
    reqs.push_back(std::move(r));
  }
  return reqs;
}

void ExpectSameAsAlone(const std::string& arch, float temperature,
                       kernels::DType kv_type = kernels::DType::kF32) {
  Loaded l = Load(arch);
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  const std::vector<EngineRequest> reqs = Requests(32, c.vocab, c.context, temperature);
  std::map<serving::RequestId, GenerateResult> alone;
  for (const EngineRequest& r : reqs) {
    GenerateOptions opts;
    opts.sampling = r.sampling;
    opts.kv_type = kv_type;
    absl::StatusOr<GenerateResult> g = Generate(*l.model, r.prompt, opts);
    ASSERT_TRUE(g.ok()) << g.status();
    alone[r.id] = *std::move(g);
  }
  // A roomy pool, and one of 24 blocks of 8 (192 positions for 32 requests) that forces
  // preemption; a 24-token budget cuts the longer prompts into chunks.
  for (int64_t blocks : {int64_t{256}, int64_t{24}}) {
    auto engine = Engine::Create(*l.model, {.kv_blocks = blocks, .block_size = 8,
                                            .max_batch_tokens = 24, .max_seqs = 32,
                                            .kv_type = kv_type});
    ASSERT_TRUE(engine.ok()) << engine.status();
    for (const EngineRequest& r : reqs) ASSERT_TRUE((*engine)->Add(r).ok());
    const auto together = RunAll(**engine);
    for (const EngineRequest& r : reqs) {
      const Result& got = together.at(r.id);
      const GenerateResult& want = alone.at(r.id);
      EXPECT_EQ(got.tokens, want.ids) << arch << " request " << r.id << " pool " << blocks;
      ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
      for (size_t i = 0; i < got.logprobs.size(); ++i) {
        EXPECT_NEAR(got.logprobs[i], want.logprobs[i], 1e-4 * std::max(1.0f, std::abs(want.logprobs[i])))
            << arch << " request " << r.id << " token " << i;
      }
      EXPECT_EQ(got.finish.has_value(), true);
    }
    if (blocks == 24) {
      EXPECT_GT((*engine)->stats().preemptions, 0) << arch;
    }
    EXPECT_EQ((*engine)->cache().free_blocks(), blocks) << arch;
    std::printf("[ engine ] %s pool %lld blocks: %lld preemptions\n", arch.c_str(),
                static_cast<long long>(blocks),
                static_cast<long long>((*engine)->stats().preemptions));
  }
}

TEST(EngineTest, GreedyBatchEqualsAlone) {
  for (const char* arch : {"llama", "mistral", "qwen2", "mixtral"}) ExpectSameAsAlone(arch, 0.0f);
}

TEST(EngineTest, SeededSamplingBatchEqualsAlone) { ExpectSameAsAlone("llama", 0.9f); }

TEST(EngineTest, HalfKvBatchEqualsAlone) {
  ExpectSameAsAlone("llama", 0.0f, kernels::DType::kF16);
  ExpectSameAsAlone("mixtral", 0.9f, kernels::DType::kBF16);
}

TEST(EngineTest, BadRequestsAndCancellation) {
  Loaded l = Load("llama");
  auto engine = Engine::Create(*l.model, {.kv_blocks = 8, .block_size = 8});
  ASSERT_TRUE(engine.ok()) << engine.status();
  Engine& e = **engine;
  EngineRequest bad{.id = 1, .prompt = {1, 999}};
  EXPECT_EQ(e.Add(bad).code(), absl::StatusCode::kInvalidArgument);
  EngineRequest hot{.id = 2, .prompt = {1, 2}};
  hot.sampling.temperature = -1;
  EXPECT_EQ(e.Add(hot).code(), absl::StatusCode::kInvalidArgument);
  EngineRequest huge{.id = 3, .prompt = std::vector<int32_t>(100, 1)};
  huge.sampling.max_new_tokens = 27;
  EXPECT_EQ(e.Add(huge).code(), absl::StatusCode::kResourceExhausted);  // 127 > 8 x 8 positions
  EngineRequest ok{.id = 4, .prompt = {1, 2, 3}};
  ok.sampling.max_new_tokens = 50;
  ASSERT_TRUE(e.Add(ok).ok());
  ASSERT_TRUE(e.Step().ok());
  ASSERT_TRUE(e.Step().ok());
  EXPECT_TRUE(e.Cancel(4));
  std::optional<serving::FinishReason> finish;
  while (!e.idle()) {
    auto out = e.Step();
    ASSERT_TRUE(out.ok()) << out.status();
    for (const EngineOutput& o : *out) finish = o.finish;
  }
  EXPECT_EQ(finish, serving::FinishReason::kCancelled);
  EXPECT_EQ(e.cache().free_blocks(), 8);
}

}  // namespace
}  // namespace tessera
