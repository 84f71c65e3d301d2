// Model-config validation: every value that sizes an allocation or reaches a kernel is
// checked, with an error naming the file and the field (it used to reach a KCHECK abort in
// RoPE, or std::bad_alloc).
#include "runtime/model/model_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <tuple>
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

// GGUF: {arch}.attention.sliding_window_pattern as a period or one entry per layer, the
// local RoPE base, and soft-capping refused.
TEST(ModelConfig, LocalAndGlobalLayersFromGguf) {
  auto build = [](const std::function<void(testing::GgufBuilder&)>& extra) {
    testing::GgufBuilder b;
    b.KvString("general.architecture", "gemma3")
        .KvU32("gemma3.block_count", 4)
        .KvU32("gemma3.embedding_length", 64)
        .KvU32("gemma3.attention.head_count", 8)
        .KvU32("gemma3.feed_forward_length", 128)
        .KvU32("gemma3.context_length", 128)
        .KvU32("gemma3.vocab_size", 256)
        .KvU32("gemma3.attention.sliding_window", 16)
        .KvF32("gemma3.rope.freq_base_swa", 10000.0f);
    extra(b);
    return b.Build();
  };
  auto config = [](const std::vector<uint8_t>& bytes) -> absl::StatusOr<ModelConfig> {
    auto f = gguf::GgufFile::Parse(bytes, "m.gguf");
    if (!f.ok()) return f.status();
    return ConfigFromGguf(**f);
  };
  auto c = config(build([](testing::GgufBuilder& b) {
    b.KvU32("gemma3.attention.sliding_window_pattern", 2);
  }));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_layers, (std::vector<uint8_t>{1, 0, 1, 0}));
  EXPECT_EQ(c->rope_local_theta, 10000.0);
  c = config(build([](testing::GgufBuilder& b) {}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->sliding_layers.empty());  // the architecture's default then applies
  for (auto [extra, code, fragment] :
       {std::tuple<std::function<void(testing::GgufBuilder&)>, absl::StatusCode, const char*>{
            [](testing::GgufBuilder& b) { b.KvU32("gemma3.attention.sliding_window_pattern", 0); },
            absl::StatusCode::kInvalidArgument, "sliding_window_pattern: 0 must be in [1, 2^20]"},
        {[](testing::GgufBuilder& b) { b.KvU8s("gemma3.attention.sliding_window_pattern", 4); },
         absl::StatusCode::kInvalidArgument, "expected an integer or an array of bools"},
        {[](testing::GgufBuilder& b) { b.KvF32("gemma3.final_logit_softcapping", 30.0f); },
         absl::StatusCode::kUnimplemented, "logit soft-capping is not supported"}}) {
    auto bad = config(build(extra));
    ASSERT_FALSE(bad.ok()) << fragment;
    EXPECT_EQ(bad.status().code(), code) << bad.status();
    EXPECT_NE(bad.status().message().find(fragment), std::string::npos) << bad.status();
  }
}

// Gemma 3's local and global layers: the layer pattern from layer_types or
// sliding_window_pattern, transformers 5's per-layer-type rope_parameters, the query scale;
// soft-capping (Gemma 2), bidirectional attention and unknown layer types are refused.
TEST(ModelConfig, LocalAndGlobalLayersFromHfConfigs) {
  json g = With(With(Llama(), "model_type", "gemma3_text"), "num_hidden_layers", 6);
  g["sliding_window"] = 4;
  g["query_pre_attn_scalar"] = 24;
  g["rope_parameters"] = json::parse(R"({"full_attention": {"rope_type": "linear", "factor": 8.0,
      "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})");
  g["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention",
                      "sliding_attention", "sliding_attention", "full_attention"};
  auto c = ConfigFromHf(g, "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_layers, (std::vector<uint8_t>{1, 0, 1, 1, 1, 0}));
  EXPECT_EQ(c->sliding_window, 4);
  EXPECT_EQ(c->rope_theta, 1000000.0);
  EXPECT_EQ(c->rope_local_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling, "linear");
  EXPECT_EQ(c->rope_factor, 8.0);
  EXPECT_EQ(c->query_scale, 24.0);

  json older = g;  // transformers 4: a pattern and a separate local base
  older.erase("layer_types");
  older.erase("rope_parameters");
  older["sliding_window_pattern"] = 3;
  older["rope_local_base_freq"] = 5000.0;
  c = ConfigFromHf(older, "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_layers, (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));
  EXPECT_EQ(c->rope_local_theta, 5000.0);

  ExpectError(With(g, "layer_types", json::array({"sliding_attention"})),
              absl::StatusCode::kInvalidArgument, "has 1 entries for 6 layers");
  ExpectError(With(g, "layer_types", json::array({"chunked_attention"})),
              absl::StatusCode::kInvalidArgument, "unknown layer type \"chunked_attention\"");
  ExpectError(With(g, "final_logit_softcapping", 30.0), absl::StatusCode::kUnimplemented,
              "final_logit_softcapping: logit soft-capping is not supported");
  ExpectError(With(g, "use_bidirectional_attention", true), absl::StatusCode::kUnimplemented,
              "only causal");
  ExpectError(With(g, "query_pre_attn_scalar", -1.0), absl::StatusCode::kInvalidArgument,
              "query scale -1 must be finite and positive");
  json local_scaled = g;
  local_scaled["rope_parameters"]["sliding_attention"]["rope_type"] = "linear";
  ExpectError(local_scaled, absl::StatusCode::kUnimplemented,
              "RoPE scaling of local layers is not supported");
  ExpectError(With(g, "hidden_activation", 3), absl::StatusCode::kInvalidArgument,
              "hidden_activation: expected a string");
  c = ConfigFromHf(With(g, "hidden_activation", "gelu_pytorch_tanh"), "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->activation, "gelu_pytorch_tanh");
}

// DeepSeek-V3's config.json: latent-attention dims (head_dim becomes the RoPE part), MoE
// after the dense layers with sigmoid grouped routing and shared experts; what it cannot
// run is named.
TEST(ModelConfig, DeepseekV3LatentAttentionAndRouting) {
  json d = json::parse(R"({"model_type":"deepseek_v3","num_hidden_layers":3,"hidden_size":64,
    "num_attention_heads":4,"num_key_value_heads":4,"head_dim":16,"intermediate_size":128,
    "moe_intermediate_size":32,"vocab_size":256,"max_position_embeddings":128,
    "rms_norm_eps":1e-6,"kv_lora_rank":64,"q_lora_rank":null,"qk_nope_head_dim":32,
    "qk_rope_head_dim":16,"v_head_dim":32,"n_routed_experts":8,"n_shared_experts":2,
    "num_experts_per_tok":2,"first_k_dense_replace":1,"n_group":4,"topk_group":2,
    "routed_scaling_factor":2.5,"norm_topk_prob":true,"rope_interleave":true})");
  auto c = ConfigFromHf(d, "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kv_lora_rank, 64);
  EXPECT_EQ(c->q_lora_rank, 0);  // null: the query is projected directly
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->qk_nope_dim, 32);
  EXPECT_EQ(c->v_head_dim, 32);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->n_experts, 8);
  EXPECT_EQ(c->expert_ffn, 32);
  EXPECT_EQ(c->shared_expert_ffn, 64);  // two shared experts run as one MLP
  EXPECT_EQ(c->dense_layers, 1);
  EXPECT_EQ(c->routing, "sigmoid");
  EXPECT_EQ(c->expert_groups, 4);
  EXPECT_EQ(c->expert_groups_used, 2);
  EXPECT_EQ(c->routed_scale, 2.5);

  ExpectError(With(d, "first_k_dense_replace", 4), absl::StatusCode::kInvalidArgument,
              "4 leading dense layers of 3");
  ExpectError(With(d, "n_group", 3), absl::StatusCode::kInvalidArgument,
              "3 expert groups (2 used) for 8 experts are inconsistent");
  ExpectError(With(d, "topk_group", 5), absl::StatusCode::kInvalidArgument, "expert groups");
  ExpectError(With(d, "v_head_dim", 0), absl::StatusCode::kInvalidArgument, "latent attention");
  ExpectError(With(d, "qk_nope_head_dim", nullptr), absl::StatusCode::kInvalidArgument,
              "qk_nope_head_dim: missing");
  ExpectError(With(d, "routed_scaling_factor", -1.0), absl::StatusCode::kInvalidArgument,
              "expert weight scale -1");
  ExpectError(With(d, "moe_layer_freq", 2), absl::StatusCode::kUnimplemented, "moe_layer_freq: 2");
  ExpectError(With(d, "scoring_func", "softmax"), absl::StatusCode::kUnimplemented,
              "sigmoid, noaux_tc");
  ExpectError(With(d, "rope_interleave", false), absl::StatusCode::kUnimplemented,
              "adjacent pairs only");
  ExpectError(With(d, "attention_bias", true), absl::StatusCode::kUnimplemented, "attention_bias");
  ExpectError(With(d, "kv_lora_rank", int64_t{1} << 62), absl::StatusCode::kInvalidArgument,
              "overflows int64");
  // Absent MoE keys take transformers' DeepseekV3Config defaults; the sizes are required.
  json sparse = d;
  for (const char* key : {"n_group", "topk_group", "first_k_dense_replace", "n_shared_experts",
                          "routed_scaling_factor"}) {
    sparse.erase(key);
  }
  sparse["n_routed_experts"] = 16;
  c = ConfigFromHf(sparse, "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::tuple(c->expert_groups, c->expert_groups_used, c->dense_layers, c->shared_expert_ffn,
                       c->routed_scale),
            std::tuple(int64_t{8}, int64_t{4}, int64_t{3}, int64_t{32}, 2.5));
  json no_rank = d;
  no_rank.erase("kv_lora_rank");
  ExpectError(no_rank, absl::StatusCode::kInvalidArgument, "kv_lora_rank: missing");
  json no_experts = d;
  no_experts.erase("n_routed_experts");
  ExpectError(no_experts, absl::StatusCode::kInvalidArgument, "n_routed_experts: missing");
  json yarn = d;
  yarn["rope_parameters"] = json::parse(R"({"rope_type": "yarn", "factor": 40.0, "rope_theta": 1.0,
      "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 32})");
  ExpectError(yarn, absl::StatusCode::kInvalidArgument, "needs RoPE theta > 1");
  yarn["rope_parameters"]["rope_theta"] = 10000.0;
  yarn["rope_parameters"]["mscale_all_dim"] = 1e30;
  ExpectError(yarn, absl::StatusCode::kInvalidArgument, "out of f32 range");
}

// YaRN as transformers computes it (tests/data/rope/yarn.json, tools/golden/
// make_rope_fixtures.py): each config's inverse frequencies and cos/sin factor.
TEST(ModelConfig, YarnMatchesTransformers) {
  std::ifstream in(std::string(TESSERA_TEST_DATA_DIR) + "/rope/yarn.json");
  ASSERT_TRUE(in) << "tests/data/rope/yarn.json";
  const json fixture = json::parse(in);
  ASSERT_GE(fixture["cases"].size(), 6u);
  for (const json& k : fixture["cases"]) {
    const int64_t D = k["head_dim"];
    json j = With(With(Llama(), "head_dim", D), "hidden_size", 4 * D);
    j["num_attention_heads"] = 4;
    j["num_key_value_heads"] = 4;
    j["rope_parameters"] = k["rope_parameters"];
    j["max_position_embeddings"] = 65536;
    auto c = ConfigFromHf(j, "m/config.json");
    ASSERT_TRUE(c.ok()) << k["name"] << ": " << c.status();
    auto scaling = RopeScalingOf(*c);
    ASSERT_TRUE(scaling.ok()) << scaling.status();
    EXPECT_EQ(scaling->kind, kernels::RopeScaling::kYarn);
    EXPECT_NEAR(scaling->attention_factor, k["attention_factor"].get<double>(), 1e-6) << k["name"];
    const std::vector<double> inv = kernels::RopeInvFreq(D, static_cast<float>(c->rope_theta), *scaling);
    const std::vector<double> want = k["inv_freq"];
    ASSERT_EQ(inv.size(), want.size());
    for (size_t i = 0; i < inv.size(); ++i) {  // transformers computes in f32
      EXPECT_NEAR(inv[i], want[i], 1e-6 * want[i]) << k["name"] << " pair " << i;
    }
  }
  json bad = Llama();
  bad["rope_parameters"] = json::parse(R"({"rope_type": "yarn", "factor": 4.0, "beta_fast": -1})");
  ExpectError(bad, absl::StatusCode::kInvalidArgument, "yarn RoPE scaling needs positive beta_fast");
  json longrope = Llama();
  longrope["rope_parameters"] = json::parse(R"({"rope_type": "longrope", "factor": 4.0})");
  auto c = ConfigFromHf(longrope, "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(RopeScalingOf(*c).status().message(),
            "RoPE scaling 'longrope' is not supported (supported: linear, llama3, yarn)");
}

// llama.cpp's deepseek2 metadata: the cache row as one KV head (key_length = r + RoPE), the
// per-head dims in key_length_mla / value_length_mla, the MoE keys; impossible dims refused.
TEST(ModelConfig, DeepseekLatentAttentionFromGguf) {
  auto build = [](int64_t key_mla, int64_t rope) {
    testing::GgufBuilder b;
    b.KvString("general.architecture", "deepseek2")
        .KvU32("deepseek2.block_count", 3)
        .KvU32("deepseek2.embedding_length", 64)
        .KvU32("deepseek2.attention.head_count", 4)
        .KvU32("deepseek2.attention.head_count_kv", 1)
        .KvU32("deepseek2.attention.key_length", 80)
        .KvU32("deepseek2.attention.value_length", 64)
        .KvU32("deepseek2.attention.key_length_mla", static_cast<uint32_t>(key_mla))
        .KvU32("deepseek2.attention.value_length_mla", 32)
        .KvU32("deepseek2.attention.kv_lora_rank", 64)
        .KvU32("deepseek2.attention.q_lora_rank", 64)
        .KvU32("deepseek2.rope.dimension_count", static_cast<uint32_t>(rope))
        .KvU32("deepseek2.feed_forward_length", 128)
        .KvU32("deepseek2.expert_feed_forward_length", 32)
        .KvU32("deepseek2.expert_count", 8)
        .KvU32("deepseek2.expert_used_count", 2)
        .KvU32("deepseek2.expert_shared_count", 1)
        .KvU32("deepseek2.leading_dense_block_count", 1)
        .KvU32("deepseek2.expert_gating_func", 2)
        .KvU32("deepseek2.expert_group_count", 4)
        .KvU32("deepseek2.expert_group_used_count", 2)
        .KvF32("deepseek2.expert_weights_scale", 2.5f)
        .KvU32("deepseek2.context_length", 128)
        .KvU32("deepseek2.vocab_size", 256);
    return b.Build();
  };
  auto config = [](const std::vector<uint8_t>& bytes) -> absl::StatusOr<ModelConfig> {
    auto f = gguf::GgufFile::Parse(bytes, "m.gguf");
    if (!f.ok()) return f.status();
    return ConfigFromGguf(**f);
  };
  auto c = config(build(48, 16));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::tuple(c->kv_lora_rank, c->q_lora_rank, c->head_dim, c->qk_nope_dim, c->v_head_dim,
                       c->n_kv_heads),
            std::tuple(int64_t{64}, int64_t{64}, int64_t{16}, int64_t{32}, int64_t{32}, int64_t{4}));
  EXPECT_EQ(std::tuple(c->dense_layers, c->shared_expert_ffn, c->routing, c->expert_groups,
                       c->expert_groups_used, c->routed_scale),
            std::tuple(int64_t{1}, int64_t{32}, std::string("sigmoid"), int64_t{4}, int64_t{2}, 2.5));
  for (auto [key, rope] : {std::pair<int64_t, int64_t>{16, 16}, {10, 16}, {48, 0}}) {
    auto bad = config(build(key, rope));
    ASSERT_FALSE(bad.ok()) << key << " " << rope;
    EXPECT_NE(bad.status().message().find("must exceed the"), std::string::npos) << bad.status();
  }
}

}  // namespace
}  // namespace tessera
