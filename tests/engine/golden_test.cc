// Tessera against Hugging Face transformers on tiny random checkpoints of each
// architecture (tests/data/golden, made by tools/golden/make_golden.py): logits of every
// prompt position and greedy continuations, from safetensors and from GGUF (F32 and
// quantized; the quantized references are transformers run on gguf-py's dequantization).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "nlohmann/json.hpp"
#include "runtime/engine/generate.h"
#include "runtime/engine/transformer.h"
#include "tests/engine/engine_test_util.h"

namespace tessera {
namespace {


using json = nlohmann::json;

std::string GoldenDir(const std::string& arch) {
  return std::string(TESSERA_TEST_DATA_DIR) + "/golden/" + arch;
}

json ReadGolden(const std::string& arch) {
  std::ifstream in(GoldenDir(arch) + "/golden.json");
  return json::parse(in);
}

struct Loaded {
  std::unique_ptr<ModelSource> source;
  std::unique_ptr<parallel::Communicator> comm;
  std::unique_ptr<Transformer> model;
};

Loaded Load(const std::string& arch, const std::string& file, bool exact) {
  Loaded l;
  const std::string path = file == "hf" ? GoldenDir(arch) : GoldenDir(arch) + "/" + file;
  auto source = ModelSource::Open(path);
  EXPECT_TRUE(source.ok()) << source.status();
  l.source = std::move(*source);
  l.comm = parallel::MakeSoloCommunicator();
  auto model = Transformer::Load(*l.source, l.comm.get(), LoadOptions{.exact = exact});
  EXPECT_TRUE(model.ok()) << model.status();
  l.model = std::move(*model);
  return l;
}

// max |a - b| / max |b| over one row of logits.
double RowError(const float* a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

std::vector<int32_t> Ids(const json& j) { return j.get<std::vector<int32_t>>(); }

std::vector<int32_t> Greedy(const Transformer& m, const std::vector<int32_t>& prompt, int n) {
  GenerateOptions opts;
  opts.sampling.max_new_tokens = n;
  auto r = Generate(m, prompt, opts);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->ids : std::vector<int32_t>{};
}

struct Case {
  std::string arch, file;
  bool exact;
  double tolerance;
};

class Golden : public ::testing::TestWithParam<Case> {};

TEST_P(Golden, LogitsAndGreedyMatchTransformers) {
  const Case& c = GetParam();
  const json golden = ReadGolden(c.arch);
  const json& ref = golden["files"][c.file];
  Loaded l = Load(c.arch, c.file, c.exact);
  ASSERT_NE(l.model, nullptr);
  const int64_t V = l.model->config().vocab;
  for (size_t p = 0; p < ref["prompts"].size(); ++p) {
    const std::vector<int32_t> prompt = Ids(ref["prompts"][p]);
    std::unique_ptr<KvCache> cache_owner = test_util::NewCache(l.model->CacheShape(static_cast<int64_t>(prompt.size())));
    ASSERT_NE(cache_owner, nullptr);
    KvCache& cache = *cache_owner;
    std::vector<float> logits;
    const SeqChunk chunk{1, prompt, /*all_logits=*/true};
    ASSERT_TRUE(l.model->Forward({&chunk, 1}, cache, logits).ok());
    double worst = 0;
    for (size_t t = 0; t < prompt.size(); ++t) {
      const auto want = ref["logits"][p][t].get<std::vector<float>>();
      worst = std::max(worst, RowError(logits.data() + t * V, want));
    }
    EXPECT_LT(worst, c.tolerance) << "prompt " << p;
    RecordProperty("max_rel_error_prompt" + std::to_string(p), std::to_string(worst));
    EXPECT_EQ(Greedy(*l.model, prompt, 8), Ids(ref["greedy"][p])) << "prompt " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, Golden,
    ::testing::Values(Case{"llama", "hf", false, 1e-4}, Case{"llama", "model-f32.gguf", false, 1e-4},
                      Case{"llama", "model-q8_0.gguf", true, 1e-4},
                      Case{"llama", "model-q4_1.gguf", true, 1e-4},
                      Case{"mistral", "hf", false, 1e-4},
                      Case{"mistral", "model-f32.gguf", false, 1e-4},
                      Case{"mistral", "model-q8_0.gguf", true, 1e-4},
                      Case{"qwen2", "hf", false, 1e-4}, Case{"qwen2", "model-f32.gguf", false, 1e-4},
                      Case{"qwen2", "model-q8_0.gguf", true, 1e-4},
                      Case{"mixtral", "hf", false, 1e-4},
                      Case{"mixtral", "model-f32.gguf", false, 1e-4},
                      Case{"mixtral", "model-q8_0.gguf", true, 1e-4},
                      Case{"qwen2_moe", "hf", false, 1e-4},
                      Case{"qwen2_moe", "model-f32.gguf", false, 1e-4},
                      Case{"qwen2_moe", "model-q8_0.gguf", true, 1e-4},
                      Case{"qwen3_moe", "hf", false, 1e-4},
                      Case{"qwen3_moe", "model-f32.gguf", false, 1e-4},
                      Case{"qwen3_moe", "model-q8_0.gguf", true, 1e-4},
                      // Llama 3.1 RoPE scaling: from the config (hf) and as GGUF rope_freqs.weight.
                      Case{"llama31", "hf", false, 1e-4},
                      Case{"llama31", "model-f32.gguf", false, 1e-4},
                      Case{"llama31", "model-q8_0.gguf", true, 1e-4},
                      Case{"qwen3", "hf", false, 1e-4}, Case{"qwen3", "model-f32.gguf", false, 1e-4},
                      Case{"qwen3", "model-q8_0.gguf", true, 1e-4},
                      Case{"llama_uneven", "hf", false, 1e-4},
                      Case{"llama_uneven", "model-f32.gguf", false, 1e-4},
                      // Gemma 3: local and global layers, post-norms, GeGLU, scaled
                      // embeddings; HF norms hold scale - 1, GGUF norms the scale.
                      Case{"gemma3", "hf", false, 1e-4}, Case{"gemma3", "model-f32.gguf", false, 1e-4},
                      Case{"gemma3", "model-q8_0.gguf", true, 1e-4},
                      // DeepSeek-V3: latent attention (HF kv_b; GGUF k_b/v_b), a dense layer
                      // then MoE layers with sigmoid grouped routing and a shared expert.
                      Case{"deepseek_v3", "hf", false, 1e-4},
                      Case{"deepseek_v3", "model-f32.gguf", false, 1e-4},
                      Case{"deepseek_v3", "model-q8_0.gguf", true, 1e-4},
                      // The query projected directly; GGUF in the older one-kv_b layout.
                      Case{"deepseek_v3_direct_q", "hf", false, 1e-4},
                      Case{"deepseek_v3_direct_q", "model-f32.gguf", false, 1e-4},
                      Case{"deepseek_v3_direct_q", "model-q8_0.gguf", true, 1e-4}),
    [](const auto& info) {
      std::string n = info.param.arch + "_" + info.param.file + (info.param.exact ? "_exact" : "");
      for (char& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

// The tp rules see the file's storage blocks: Qwen3's FFN of 96 splits over tp 2 as floats
// (48 columns each) but not as Q8_0 (blocks of 32), and the refusal says what works.
TEST(ShapeOfTest, WeightBlockComesFromTheFile) {
  for (const auto& [file, block] : std::vector<std::pair<std::string, int64_t>>{
           {"", 1}, {"/model-f32.gguf", 1}, {"/model-q8_0.gguf", 32}}) {
    auto source = ModelSource::Open(GoldenDir("qwen3") + file);
    ASSERT_TRUE(source.ok()) << source.status();
    const parallel::ModelShape shape = ShapeOf(**source);
    EXPECT_EQ(shape.o_block, block) << file;
    EXPECT_EQ(shape.down_block, block) << file;
    const absl::Status tp2 = parallel::CheckTensorParallel(2, shape);
    if (block == 1) {
      EXPECT_TRUE(tp2.ok()) << tp2;
    } else {
      EXPECT_NE(tp2.message().find("valid tp for this model: 1"), std::string::npos) << tp2;
    }
  }
}

// The fast path on quantized files (weights decoded in registers, f32 activations) stays
// as close to transformers as the exact path.
TEST(GoldenFastPath, QuantizedLogitsStayClose) {
  for (const auto& [arch, file] : std::vector<std::pair<std::string, std::string>>{
           {"llama", "model-q8_0.gguf"}, {"llama", "model-q4_1.gguf"},
           {"mistral", "model-q8_0.gguf"}, {"qwen2", "model-q8_0.gguf"},
           {"gemma3", "model-q8_0.gguf"}, {"deepseek_v3", "model-q8_0.gguf"}}) {
    const json ref = ReadGolden(arch)["files"][file];
    Loaded l = Load(arch, file, /*exact=*/false);
    const int64_t V = l.model->config().vocab;
    double worst = 0;
    for (size_t p = 0; p < ref["prompts"].size(); ++p) {
      const std::vector<int32_t> prompt = Ids(ref["prompts"][p]);
      std::unique_ptr<KvCache> cache_owner = test_util::NewCache(l.model->CacheShape(static_cast<int64_t>(prompt.size())));
      ASSERT_NE(cache_owner, nullptr);
      KvCache& cache = *cache_owner;
      std::vector<float> logits;
      const SeqChunk chunk{1, prompt, true};
      ASSERT_TRUE(l.model->Forward({&chunk, 1}, cache, logits).ok());
      for (size_t t = 0; t < prompt.size(); ++t) {
        worst = std::max(worst, RowError(logits.data() + t * V,
                                         ref["logits"][p][t].get<std::vector<float>>()));
      }
    }
    std::printf("%s %s: fast path max relative logit error %.2e\n", arch.c_str(), file.c_str(), worst);
    EXPECT_LT(worst, 1e-4) << arch << " " << file;  // measured 8e-7 .. 3e-6
  }
}

// Sequences in one batch, mixing a prefill chunk, a whole prompt and a decode token, get
// the same logits as when each runs alone.
TEST(Batching, MixedBatchEqualsSequencesAlone) {
  for (const std::string arch :
       {"llama", "mistral", "qwen2", "qwen3", "llama31", "mixtral", "qwen3_moe", "gemma3",
        "deepseek_v3"}) {
    const json ref = ReadGolden(arch)["files"]["hf"];
    Loaded l = Load(arch, "hf", false);
    const int64_t V = l.model->config().vocab;
    const std::vector<int32_t> a = Ids(ref["prompts"][0]);  // 11 tokens
    std::vector<int32_t> b = Ids(ref["prompts"][1]);        // 3 tokens, then one decode
    auto alone = [&](const std::vector<int32_t>& ids) {
      std::unique_ptr<KvCache> cache_owner = test_util::NewCache(l.model->CacheShape(static_cast<int64_t>(ids.size())));
      std::vector<float> logits;
      if (cache_owner == nullptr) return logits;
      KvCache& cache = *cache_owner;
      const SeqChunk chunk{5, ids, true};
      EXPECT_TRUE(l.model->Forward({&chunk, 1}, cache, logits).ok());
      return logits;
    };
    const std::vector<float> a_alone = alone(a);
    std::vector<int32_t> b_plus = b;
    b_plus.push_back(Ids(ref["greedy"][1])[0]);
    const std::vector<float> b_alone = alone(b_plus);

    std::unique_ptr<KvCache> cache_owner = test_util::NewCache(l.model->CacheShape(64));
    ASSERT_NE(cache_owner, nullptr);
    KvCache& cache = *cache_owner;
    std::vector<float> logits;
    const std::span<const int32_t> a_span(a);
    // Step 1: A's first 6 tokens (prefill chunk) and all of B.
    const SeqChunk step1[] = {{10, a_span.subspan(0, 6), true}, {20, b, false}};
    ASSERT_TRUE(l.model->Forward(step1, cache, logits).ok());
    for (int t = 0; t < 6; ++t) {
      std::vector<float> want(a_alone.begin() + t * V, a_alone.begin() + (t + 1) * V);
      EXPECT_LT(RowError(logits.data() + t * V, want), 1e-5) << arch << " A token " << t;
    }
    // Step 2: B's decode token and the rest of A.
    const SeqChunk step2[] = {{20, {&b_plus.back(), 1}, false}, {10, a_span.subspan(6), true}};
    ASSERT_TRUE(l.model->Forward(step2, cache, logits).ok());
    std::vector<float> b_want(b_alone.end() - V, b_alone.end());
    EXPECT_LT(RowError(logits.data(), b_want), 1e-5) << arch << " B decode";
    for (int t = 6; t < 11; ++t) {
      std::vector<float> want(a_alone.begin() + t * V, a_alone.begin() + (t + 1) * V);
      EXPECT_LT(RowError(logits.data() + (1 + t - 6) * V, want), 1e-5) << arch << " A token " << t;
    }
  }
}

TEST(BadInput, ClearErrors) {
  Loaded l = Load("llama", "hf", false);
  std::unique_ptr<KvCache> cache_owner = test_util::NewCache(l.model->CacheShape(8));
  ASSERT_NE(cache_owner, nullptr);
  KvCache& cache = *cache_owner;
  std::vector<float> logits;
  const std::vector<int32_t> bad = {1, 256};
  const SeqChunk chunk{1, bad, false};
  absl::Status s = l.model->Forward({&chunk, 1}, cache, logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 256 is outside the vocabulary [0, 256)"), std::string::npos);
  EXPECT_EQ(cache.length(1), 0);  // nothing appended

  const std::vector<int32_t> too_long(17, 1);  // the cache holds one block of 16
  const SeqChunk big{1, too_long, false};
  EXPECT_EQ(l.model->Forward({&big, 1}, cache, logits).code(), absl::StatusCode::kResourceExhausted);

  GenerateOptions opts;
  opts.sampling.max_new_tokens = 200;
  auto r = Generate(*l.model, {1, 2, 3}, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exceeds the model's context of 128"), std::string::npos)
      << r.status();
  r = Generate(*l.model, std::vector<int32_t>(129, 1), GenerateOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than the model's context"), std::string::npos);
}

// A copy of the golden Llama checkpoint with its config.json edited by `edit`.
std::string EditedCopy(const std::string& name, const std::function<void(json&)>& edit) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tessera_golden_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(GoldenDir("llama") + "/model.safetensors", dir / "model.safetensors");
  std::ifstream in(GoldenDir("llama") + "/config.json");
  json config = json::parse(in);
  edit(config);
  std::ofstream(dir / "config.json") << config.dump();
  return dir.string();
}

TEST(BadInput, UnknownArchitectureAndMismatchedTensors) {
  auto comm = parallel::MakeSoloCommunicator();
  auto source = ModelSource::Open(EditedCopy("arch", [](json& c) { c["model_type"] = "gpt2"; }));
  ASSERT_TRUE(source.ok()) << source.status();
  auto model = Transformer::Load(**source, comm.get(), {});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("architecture 'gpt2' is not supported (supported: llama"),
            std::string::npos)
      << model.status();

  source = ModelSource::Open(EditedCopy("shape", [](json& c) { c["intermediate_size"] = 192; }));
  ASSERT_TRUE(source.ok()) << source.status();
  model = Transformer::Load(**source, comm.get(), {});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find(
                "tensor model.layers.0.mlp.gate_proj.weight: shape [128, 64] does not match the "
                "config's [192, 64]"),
            std::string::npos)
      << model.status();

  // A layer count the file does not back is named before anything is sized by it (a
  // billion layers used to end in std::bad_alloc).
  source = ModelSource::Open(
      EditedCopy("layers", [](json& c) { c["num_hidden_layers"] = 1000000000; }));
  ASSERT_TRUE(source.ok()) << source.status();
  model = Transformer::Load(**source, comm.get(), {});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(model.status().message().find(
                "the config has 1000000000 layers, but tensor "
                "model.layers.999999999.input_layernorm.weight is missing"),
            std::string::npos)
      << model.status();
}

// DeepSeek-V3's KV cache holds the compressed latent and the shared RoPE key per token and
// layer (64 + 16 here), not each head's key and value (4 heads x (48 + 32)): 4x smaller
// (DeepSeek-V3 itself: 128 heads x (192 + 128) against 512 + 64, 71x).
TEST(LatentAttention, KvBytesPerTokenAreTheCompressedSize) {
  Loaded l = Load("deepseek_v3", "hf", false);
  const ModelConfig& c = l.model->config();
  const KvCacheShape shape = l.model->CacheShape(1, 1, kernels::DType::kF32);
  EXPECT_TRUE(shape.shared_kv);
  EXPECT_EQ(shape.kv_dim, c.kv_lora_rank + c.head_dim);
  EXPECT_EQ(shape.bytes_per_token(), c.n_layers * (64 + 16) * 4);
  const int64_t per_head_kv =
      c.n_layers * c.n_heads * ((c.qk_nope_dim + c.head_dim) + c.v_head_dim) * 4;
  EXPECT_EQ(per_head_kv / shape.bytes_per_token(), 4);  // 4 heads x 80 / 80
  std::unique_ptr<KvCache> cache = test_util::NewCache(l.model->CacheShape(32, 16, kernels::DType::kF16));
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->bytes(), c.n_layers * 32 * (64 + 16) * 2);
}

}  // namespace
}  // namespace tessera
