// Model-config validation: every value that sizes an allocation or reaches a kernel is
// checked, with an error naming the file and the field (it used to reach a KCHECK abort in
// RoPE, or std::bad_alloc).
#include "runtime/model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/model/gguf_builder.h"

namespace tessera {
namespace {

using json = nlohmann::json;

// The golden llama's config.json, small and valid.
json Llama() {
  return json::parse(R"({"model_type":"llama","num_hidden_layers":2,"hidden_size":64,
    "num_attention_heads":8,"num_key_value_heads":4,"head_dim":8,"intermediate_size":128,
    "vocab_size":256,"max_position_embeddings":128,"rms_norm_eps":1e-5,"rope_theta":10000.0})");
}

void ExpectError(const json& config, absl::StatusCode code, const std::string& fragment) {
  auto c = ConfigFromHf(config, "m/config.json");
  ASSERT_FALSE(c.ok()) << "expected an error containing: " << fragment << "\n" << config.dump();
  EXPECT_EQ(c.status().code(), code) << c.status();
  EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status();
  EXPECT_EQ(c.status().message().rfind("m/config.json: ", 0), 0u) << c.status();
}

json With(json j, const std::string& key, json value) {
  j[key] = std::move(value);
  return j;
}

TEST(ModelConfig, ValidConfigPasses) {
  auto c = ConfigFromHf(Llama(), "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->context, 128);
}

TEST(ModelConfig, OddHeadDimIsRefusedBeforeRope) {
  ExpectError(With(Llama(), "head_dim", 7), absl::StatusCode::kInvalidArgument,
              "head dim 7 must be even");
}

TEST(ModelConfig, EverySizeMustBePositive) {
  for (auto [key, label] : {std::pair<const char*, const char*>{"num_hidden_layers", "layer count 0"},
                            {"hidden_size", "hidden size 0"},
                            {"num_key_value_heads", "KV head count 0"},
                            {"intermediate_size", "FFN size 0"},
                            {"vocab_size", "vocabulary size 0"},
                            {"max_position_embeddings", "context length 0"}}) {
    ExpectError(With(Llama(), key, 0), absl::StatusCode::kInvalidArgument,
                std::string(label) + " must be positive");
  }
  ExpectError(With(Llama(), "num_attention_heads", -8), absl::StatusCode::kInvalidArgument,
              "attention head count -8 must be positive");
  json no_context = Llama();
  no_context.erase("max_position_embeddings");
  ExpectError(no_context, absl::StatusCode::kInvalidArgument, "max_position_embeddings: missing");
  ExpectError(With(Llama(), "num_key_value_heads", 3), absl::StatusCode::kInvalidArgument,
              "8 attention heads are not a multiple of 3 KV heads");
}

TEST(ModelConfig, EpsilonThetaScalingAndWindowRanges) {
  for (double eps : {0.0, -1e-6, 1.0, 2.0}) {
    ExpectError(With(Llama(), "rms_norm_eps", eps), absl::StatusCode::kInvalidArgument,
                "RMSNorm epsilon");
  }
  for (double theta : {0.0, -10000.0, 1e39}) {  // 1e39 does not fit the kernels' f32
    ExpectError(With(Llama(), "rope_theta", theta), absl::StatusCode::kInvalidArgument,
                "RoPE theta");
  }
  ExpectError(With(Llama(), "rope_scaling", {{"rope_type", "linear"}, {"factor", 0.0}}),
              absl::StatusCode::kInvalidArgument, "RoPE scaling factor 0");
  ExpectError(With(Llama(), "rope_scaling",
                   {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                    {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}}),
              absl::StatusCode::kInvalidArgument, "low_freq_factor < high_freq_factor");
  ExpectError(With(Llama(), "sliding_window", -1), absl::StatusCode::kInvalidArgument,
              "sliding window -1 must be >= 0");
  ExpectError(With(Llama(), "partial_rotary_factor", 0.5), absl::StatusCode::kUnimplemented,
              "partial_rotary_factor: 0.5");
}

TEST(ModelConfig, SizesThatOverflowInt64AreRefused) {
  json huge = With(Llama(), "num_hidden_layers", int64_t{1} << 40);
  huge["max_position_embeddings"] = int64_t{1} << 30;
  ExpectError(huge, absl::StatusCode::kInvalidArgument,
              "the byte size of the KV cache for the full context overflows int64");
  ExpectError(With(With(Llama(), "vocab_size", int64_t{1} << 40), "max_position_embeddings",
                   int64_t{1} << 30),
              absl::StatusCode::kInvalidArgument, "overflows int64");
  ExpectError(With(Llama(), "intermediate_size", int64_t{1} << 62),
              absl::StatusCode::kInvalidArgument, "the weights at f32 overflows int64");
}

TEST(ModelConfig, NonFiniteGgufValuesAndPartialRotaryAreNamed) {
  auto build = [](float eps, float theta, uint32_t rope_dims) {
    return testing::GgufBuilder()
        .KvString("general.architecture", "llama")
        .KvU32("llama.block_count", 2)
        .KvU32("llama.embedding_length", 64)
        .KvU32("llama.attention.head_count", 8)
        .KvU32("llama.feed_forward_length", 128)
        .KvU32("llama.context_length", 128)
        .KvU32("llama.vocab_size", 256)
        .KvU32("llama.rope.dimension_count", rope_dims)
        .KvF32("llama.attention.layer_norm_rms_epsilon", eps)
        .KvF32("llama.rope.freq_base", theta)
        .Build();
  };
  auto config = [](const std::vector<uint8_t>& bytes) -> absl::StatusOr<ModelConfig> {
    auto f = gguf::GgufFile::Parse(bytes, "m.gguf");
    if (!f.ok()) return f.status();
    return ConfigFromGguf(**f);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<uint8_t> good = build(1e-5f, 10000.0f, 8);
  ASSERT_TRUE(config(good).ok()) << config(good).status();
  for (auto [bytes, fragment] :
       {std::pair<std::vector<uint8_t>, const char*>{build(nan, 10000.0f, 8), "RMSNorm epsilon nan"},
        {build(1e-5f, inf, 8), "RoPE theta inf"},
        {build(1e-5f, nan, 8), "RoPE theta nan"}}) {
    auto c = config(bytes);
    ASSERT_FALSE(c.ok()) << fragment;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status();
    EXPECT_EQ(c.status().message().rfind("m.gguf: ", 0), 0u) << c.status();
  }
  auto partial = config(build(1e-5f, 10000.0f, 4));
  EXPECT_EQ(partial.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(partial.status().message().find("llama.rope.dimension_count: 4 rotary dims"),
            std::string::npos)
      << partial.status();
}

}  // namespace
}  // namespace tessera
