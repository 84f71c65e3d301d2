// The real SmolLM2-135M-Instruct (GGUF Q4_1) and Gemma 3 270M instruct (GGUF Q4_K_M)
// against Hugging Face transformers, which loads the same GGUF and dequantizes it
// (tests/data/smollm2 and tests/data/gemma3, made by tools/golden/make_model_reference.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/engine/generate.h"
#include "runtime/engine/transformer.h"
#include "runtime/tokenizer/prompt.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/engine/engine_test_util.h"

namespace tessera {
namespace {


using json = nlohmann::json;

std::string DataDir(const std::string& model) {
  return std::string(TESSERA_TEST_DATA_DIR) + "/" + model;
}

json Reference(const std::string& model = "smollm2") {
  std::ifstream in(DataDir(model) + "/reference.json");
  return json::parse(in);
}

// Reads a float32 C-order .npy file (as numpy.save writes it) into rows of `cols`.
std::vector<float> ReadNpy(const std::string& path, int64_t* rows, int64_t* cols) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  in.read(magic, 8);
  uint16_t len;
  in.read(reinterpret_cast<char*>(&len), 2);
  std::string header(len, ' ');
  in.read(header.data(), len);
  EXPECT_NE(header.find("'<f4'"), std::string::npos) << header;
  const size_t open = header.find("'shape': (");
  sscanf(header.c_str() + open + 10, "%ld, %ld", rows, cols);
  std::vector<float> data(*rows * *cols);
  in.read(reinterpret_cast<char*>(data.data()), data.size() * sizeof(float));
  return data;
}

// Every position's logits of `ids` in one forward (only the last position's with
// all = false).
std::vector<float> AllLogits(const Transformer& m, const std::vector<int32_t>& ids,
                             kernels::DType kv_type = kernels::DType::kF32, bool all = true) {
  std::unique_ptr<KvCache> cache_owner =
      test_util::NewCache(m.CacheShape(static_cast<int64_t>(ids.size()), 16, kv_type));
  std::vector<float> logits;
  if (cache_owner == nullptr) return logits;
  KvCache& cache = *cache_owner;
  const SeqChunk chunk{1, ids, all};
  EXPECT_TRUE(m.Forward({&chunk, 1}, cache, logits).ok());
  return logits;
}

class SmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto source = ModelSource::Open("smollm2-135m-instruct");
    ASSERT_TRUE(source.ok()) << source.status()
                             << " (run deploy/fetch-model.sh smollm2-135m-instruct)";
    source_ = std::move(*source).release();
    comm_ = parallel::MakeSoloCommunicator().release();
    auto exact = Transformer::Load(*source_, comm_, LoadOptions{.exact = true});
    ASSERT_TRUE(exact.ok()) << exact.status();
    exact_ = std::move(*exact).release();
    auto fast = Transformer::Load(*source_, comm_, LoadOptions{});
    ASSERT_TRUE(fast.ok()) << fast.status();
    fast_ = std::move(*fast).release();
  }
  static void TearDownTestSuite() {
    delete fast_;
    delete exact_;
    delete comm_;
    delete source_;
  }
  static ModelSource* source_;
  static parallel::Communicator* comm_;
  static Transformer* exact_;
  static Transformer* fast_;
};
ModelSource* SmolLM2::source_ = nullptr;
parallel::Communicator* SmolLM2::comm_ = nullptr;
Transformer* SmolLM2::exact_ = nullptr;
Transformer* SmolLM2::fast_ = nullptr;

// A model against transformers' reference (tests/data/MODEL): every prompt's last logits
// to `tolerance` of the largest, every position's top token (prompts up to kAllLogitsTokens
// long: the logits of a longer one, [T, V], would be large), the greedy continuations.
struct RealModelCase {
  std::string model = "smollm2";  // the tests/data folder
  int64_t vocab = 49152;
  kernels::DType kv_type = kernels::DType::kF32;
  double tolerance = 1e-3;
  size_t max_tokens = SIZE_MAX;  // prompts longer than this are skipped
};
constexpr size_t kAllLogitsTokens = 128;

void ExpectMatchesTransformers(const Transformer& m, const RealModelCase& c) {
  const json ref = Reference(c.model);
  int64_t rows, V;
  const std::vector<float> last = ReadNpy(DataDir(c.model) + "/last_logits.npy", &rows, &V);
  ASSERT_EQ(V, c.vocab);
  ASSERT_EQ(rows, static_cast<int64_t>(ref["prompts"].size()));
  for (size_t p = 0; p < ref["prompts"].size(); ++p) {
    const json& pr = ref["prompts"][p];
    const auto ids = pr["ids"].get<std::vector<int32_t>>();
    if (ids.size() > c.max_tokens) continue;
    const bool all = ids.size() <= kAllLogitsTokens;
    const std::vector<float> logits = AllLogits(m, ids, c.kv_type, all);
    ASSERT_EQ(logits.size(), (all ? ids.size() : 1) * V);
    // Last position: max |diff| relative to the largest logit.
    const float* got = logits.data() + logits.size() - V;
    const float* want = last.data() + p * V;
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < V; ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(got[i] - want[i])));
      scale = std::max(scale, static_cast<double>(std::abs(want[i])));
    }
    std::printf("%s %s: %zu tokens, %s KV, last-position max relative error %.2e\n",
                c.model.c_str(), pr["name"].get<std::string>().c_str(), ids.size(),
                std::string(kernels::Name(c.kv_type)).c_str(), diff / scale);
    EXPECT_LT(diff / scale, c.tolerance) << pr["name"];
    // Every position's top token; with a 16-bit KV cache, unless transformers' top token is a
    // near tie here, within `tolerance` of the largest logit (bf16 KV flips 2 of 286 such
    // ties, margins of 6e-4 and 9e-3 on logits of 18, below its 3e-3 relative error).
    const double tie = c.kv_type == kernels::DType::kF32 ? 0.0 : c.tolerance;
    const auto argmax = pr["argmax"].get<std::vector<int64_t>>();
    for (size_t t = all ? 0 : ids.size() - 1; t < ids.size(); ++t) {
      const float* row = logits.data() + (all ? t : 0) * V;
      const int64_t top = std::max_element(row, row + V) - row;
      if (top == argmax[t]) continue;
      float row_scale = 0;
      for (int64_t i = 0; i < V; ++i) row_scale = std::max(row_scale, std::abs(row[i]));
      EXPECT_LE(row[top] - row[argmax[t]], tie * row_scale)
          << pr["name"] << " position " << t << ": top token " << top << " not " << argmax[t];
    }
    GenerateOptions opts;
    opts.sampling.max_new_tokens = static_cast<int32_t>(pr["greedy"].size());
    opts.kv_type = c.kv_type;
    auto gen = Generate(m, ids, opts);
    ASSERT_TRUE(gen.ok()) << gen.status();
    EXPECT_EQ(gen->ids, pr["greedy"].get<std::vector<int32_t>>()) << pr["name"];
  }
}

// The prompts' token ids, text through the tokenizer and chat through the chat format, as
// transformers made them.
void ExpectTokenizerMatches(const ModelSource& source, const std::string& model) {
  auto tok = tokenizer::Tokenizer::FromGguf(*source.gguf());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const json ref = Reference(model);  // a range-for over Reference()["prompts"] would dangle
  for (const json& pr : ref["prompts"]) {
    std::vector<int32_t> ids;
    if (pr["chat"].get<bool>()) {
      std::vector<tokenizer::ChatMessage> msgs;
      if (pr.contains("system")) msgs.push_back({"system", pr["system"].get<std::string>()});
      msgs.push_back({"user", pr["text"].get<std::string>()});
      auto enc = tokenizer::EncodeMessages(**tok, msgs, /*parse_special=*/false);
      ASSERT_TRUE(enc.ok()) << enc.status();
      ids = *enc;
    } else {
      ids = (*tok)->Encode(pr["text"].get<std::string>(), {}).value();
    }
    EXPECT_EQ(ids, pr["ids"].get<std::vector<int32_t>>()) << model << " " << pr["name"];
  }
}

TEST_F(SmolLM2, ExactPathMatchesTransformers) { ExpectMatchesTransformers(*exact_, {}); }

// f16 KV keeps every fidelity check above (measured: at most 8.2e-4). bf16 KV keeps the
// greedy continuations and the top tokens but near ties, but its 8-bit mantissa moves the
// logits more (measured: 2.6e-3 to 6.1e-3), so its bound is 1e-2.
TEST_F(SmolLM2, HalfKvMatchesTransformers) {
  ExpectMatchesTransformers(*exact_, {.kv_type = kernels::DType::kF16});
  ExpectMatchesTransformers(*exact_, {.kv_type = kernels::DType::kBF16, .tolerance = 1e-2});
}

// The fast path (quantized weights decoded in registers) must pick the exact path's top
// token at >= 99% of positions. It keeps activations in f32; the 8-bit-activation path
// (MatMulQ8Activations, llama.cpp's approach) measured 273/286 = 95.5% here, which is why
// it is not the default.
TEST_F(SmolLM2, FastPathAgreesWithExactPath) {
  const json ref = Reference();
  int agree = 0, total = 0;
  double kl_sum = 0;
  const int64_t V = 49152;
  for (const json& pr : ref["prompts"]) {
    const auto ids = pr["ids"].get<std::vector<int32_t>>();
    const std::vector<float> a = AllLogits(*exact_, ids), b = AllLogits(*fast_, ids);
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* pa = a.data() + t * V;
      const float* pb = b.data() + t * V;
      agree += (std::max_element(pa, pa + V) - pa) == (std::max_element(pb, pb + V) - pb);
      ++total;
      // KL(exact || fast) of the softmax distributions.
      const double ma = *std::max_element(pa, pa + V), mb = *std::max_element(pb, pb + V);
      double za = 0, zb = 0;
      for (int64_t i = 0; i < V; ++i) za += std::exp(pa[i] - ma), zb += std::exp(pb[i] - mb);
      double kl = 0;
      for (int64_t i = 0; i < V; ++i) {
        const double la = pa[i] - ma - std::log(za), lb = pb[i] - mb - std::log(zb);
        kl += std::exp(la) * (la - lb);
      }
      kl_sum += kl;
    }
  }
  std::printf("fast vs exact: top-1 agreement %d/%d, mean KL %.3e nats\n", agree, total,
              kl_sum / total);
  RecordProperty("mean_kl", std::to_string(kl_sum / total));
  EXPECT_GE(agree * 100, total * 99);
  EXPECT_LT(kl_sum / total, 1e-2);
}

TEST_F(SmolLM2, TokenizerMatchesTransformersOnThePrompts) {
  ExpectTokenizerMatches(*source_, "smollm2");
}

// Gemma 3 270M: local layers (window 512) and global ones, a 262k SentencePiece vocabulary,
// Gemma's chat format (the GGUF has no template: the vocabulary's turn markers select it).
// The long prompt (589 tokens) runs past the window, on the fast path (Q4_K, Q5_0, Q6_K
// and Q8_0 weights decoded in registers, f32 activations), held to the same bound as the
// exact path on the short prompts (the exact path's f32 copy of the weights makes the long
// one take minutes under AddressSanitizer).
TEST(Gemma3, MatchesTransformers) {
  auto source = ModelSource::Open("gemma3-270m-it");
  ASSERT_TRUE(source.ok()) << source.status() << " (run deploy/fetch-model.sh gemma3-270m-it)";
  ExpectTokenizerMatches(**source, "gemma3");
  std::unique_ptr<parallel::Communicator> comm = parallel::MakeSoloCommunicator();
  for (bool exact : {true, false}) {
    auto m = Transformer::Load(**source, comm.get(), LoadOptions{.exact = exact});
    ASSERT_TRUE(m.ok()) << m.status();
    std::printf("%s path\n", exact ? "exact" : "fast");
    ExpectMatchesTransformers(**m, {.model = "gemma3", .vocab = 262144,
                                    .max_tokens = exact ? kAllLogitsTokens : SIZE_MAX});
  }
}

}  // namespace
}  // namespace tessera
