#include "runtime/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/model_source.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// A safetensors file from a JSON header text and a data section.
std::vector<uint8_t> Make(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> F32(std::initializer_list<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

std::vector<uint8_t> Valid() {
  std::vector<uint8_t> data = F32({1, 2, 3, 4, 5, 6});
  data.push_back(0x80);  // bf16 2.0 = 0x4000, little-endian
  data.push_back(0x3F);  // bf16 1.0 = 0x3F80 (bytes 80 3F)
  data.push_back(0x00);
  data.push_back(0x40);
  return Make(R"({"__metadata__":{"format":"pt"},
    "w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
    "b":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]}})",
              data);
}

TEST(Safetensors, ParsesTensorsAndMetadata) {
  const auto bytes = Valid();
  auto f = SafetensorsFile::Parse(bytes, "m.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  const TensorInfo* w = (*f)->FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->type, kernels::DType::kF32);
  float x;
  std::memcpy(&x, w->data.data() + 20, 4);
  EXPECT_EQ(x, 6.0f);
  const TensorInfo* b = (*f)->FindTensor("b");
  EXPECT_EQ(b->type, kernels::DType::kBF16);
  EXPECT_EQ(b->bytes, 4);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
}

void ExpectError(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  auto f = SafetensorsFile::Parse(bytes, "bad.safetensors");
  ASSERT_FALSE(f.ok()) << fragment;
  EXPECT_NE(f.status().message().find(fragment), std::string::npos) << f.status();
  EXPECT_EQ(f.status().message().rfind("bad.safetensors: ", 0), 0u) << f.status();
}

TEST(Safetensors, RejectsMalformedHeaders) {
  ExpectError({1, 2, 3}, "too short");
  std::vector<uint8_t> huge = Valid();
  huge[7] = 0x01;
  ExpectError(huge, "header length");
  ExpectError(Make("{not json", {}), "not a valid JSON object");
  ExpectError(Make(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                       "w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   F32({1, 2})),
              "tensor w: duplicate name");
  ExpectError(Make(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", F32({1, 2})),
              "tensor w: dtype I64 is not supported");
  ExpectError(Make(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", F32({1, 2})),
              "tensor w: data_offsets span 8 bytes but shape and dtype F32 need 12");
  ExpectError(Make(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", F32({1, 2})),
              "tensor w: data_offsets [0, 16) run past the 8 data bytes");
  ExpectError(Make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                       "b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   F32({1, 2})),
              "data overlaps");
  ExpectError(Make(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", F32({1})),
              "non-negative");
  ExpectError(Make(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                   F32({1})),
              "overflow");
}

TEST(Safetensors, EveryTruncationIsAnErrorAndFlipsNeverCrash) {
  const auto bytes = Valid();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    EXPECT_FALSE(SafetensorsFile::Parse(cut, "cut").ok()) << n;
  }
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> m = bytes;
    m[rng() % m.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    auto f = SafetensorsFile::Parse(m, "flip");
    if (!f.ok()) continue;
    for (const TensorInfo& t : (*f)->tensors()) {
      ASSERT_LE(t.data.data() + t.data.size(), m.data() + m.size());
    }
  }
}

class HfDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tessera_hf_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  void Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(dir_ / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  fs::path dir_;
};

constexpr const char* kConfig = R"({"model_type":"llama","num_hidden_layers":2,"hidden_size":64,
  "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,
  "max_position_embeddings":256,"rope_theta":500000.0,"rms_norm_eps":1e-6,
  "tie_word_embeddings":true})";

TEST_F(HfDir, ShardedCheckpointWithIndex) {
  Write("config.json", kConfig);
  Write("generation_config.json", R"({"temperature":0.6})");
  Write("model-00001-of-00002.safetensors",
        Make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", F32({1, 2})));
  Write("model-00002-of-00002.safetensors",
        Make(R"({"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", F32({1})));
  Write("model.safetensors.index.json",
        R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",
                                         "b":"model-00002-of-00002.safetensors"}})");
  auto ckpt = HfCheckpoint::Open(dir_.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->shard_count(), 2u);
  ASSERT_NE((*ckpt)->FindTensor("b"), nullptr);
  EXPECT_EQ((*ckpt)->FindTensor("b")->type, kernels::DType::kF16);
  EXPECT_EQ((*ckpt)->generation_config()["temperature"], 0.6);

  auto model = ModelSource::Open(dir_.string());
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig* c = (*model)->config();
  EXPECT_EQ(c->arch, "llama");
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ((*model)->tensors().size(), 2u);
}

TEST_F(HfDir, IndexPromisesATensorTheShardLacks) {
  Write("config.json", kConfig);
  Write("s1.safetensors",
        Make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", F32({1, 2})));
  Write("model.safetensors.index.json",
        R"({"weight_map":{"a":"s1.safetensors","zz":"s1.safetensors"}})");
  auto ckpt = HfCheckpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("tensor zz: listed in the index but not in this shard"),
            std::string::npos)
      << ckpt.status();
}

TEST_F(HfDir, IndexMayNotEscapeTheDirectory) {
  Write("config.json", kConfig);
  Write("model.safetensors.index.json", R"({"weight_map":{"a":"../../etc/passwd"}})");
  auto ckpt = HfCheckpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("is not a file name"), std::string::npos);
}

TEST_F(HfDir, TensorInTwoShards) {
  Write("config.json", kConfig);
  const auto shard = Make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", F32({1}));
  Write("s1.safetensors", shard);
  Write("s2.safetensors", shard);
  Write("model.safetensors.index.json",
        R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  auto ckpt = HfCheckpoint::Open(dir_.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("tensor a: also in another shard"), std::string::npos)
      << ckpt.status();
}

TEST_F(HfDir, BadConfigNamesTheKey) {
  Write("config.json", R"({"model_type":"llama","num_hidden_layers":"two"})");
  Write("model.safetensors", Make("{}", {}));
  auto model = ModelSource::Open(dir_.string());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("config.json: num_hidden_layers: expected an integer"),
            std::string::npos)
      << model.status();
  Write("config.json", R"({"model_type":"llama","num_hidden_layers":2,"hidden_size":80,
    "num_attention_heads":5,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,
    "max_position_embeddings":64})");
  model = ModelSource::Open(dir_.string());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("5 attention heads are not a multiple of 2 KV heads"),
            std::string::npos)
      << model.status();
}

// Found by tests/fuzz/config_fuzz.cc (regressions/config/rope-original-context-1e300.json):
// the double was converted to int64 unchecked, which is undefined for 1e300.
TEST_F(HfDir, RopeOriginalContextOutOfRangeNamesTheKey) {
  Write("config.json", R"({"model_type":"llama","num_hidden_layers":2,"hidden_size":64,
    "num_attention_heads":4,"intermediate_size":96,"vocab_size":100,"max_position_embeddings":256,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"original_max_position_embeddings":1e300}})");
  Write("model.safetensors", Make("{}", {}));
  auto model = ModelSource::Open(dir_.string());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find(
                "config.json: rope_scaling.original_max_position_embeddings: must be in [0, 2^53]"),
            std::string::npos)
      << model.status();
}

}  // namespace
}  // namespace tessera
