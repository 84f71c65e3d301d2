// ModelSource on the real models fetched by deploy/fetch-model.sh, and its errors.
#include "runtime/model/model_source.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace tessera {
namespace {

std::string CachedModel(const char* file) {
  const std::string path = ModelCacheDir() + "/" + file;
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << path << " missing: run deploy/fetch-model.sh";
  }
  return path;
}

TEST(ModelSource, SmolLM2ByAlias) {
  CachedModel("SmolLM2-135M-Instruct.Q4_1.gguf");
  auto model = ModelSource::Open("smollm2-135m-instruct");
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig* c = (*model)->config();
  ASSERT_NE(c, nullptr);
  // SmolLM2-135M's published config: 30 layers, hidden 576, 9 heads, 3 KV heads, FFN 1536,
  // vocab 49152, context 8192, rope theta 100000, tied embeddings.
  EXPECT_EQ(c->arch, "llama");
  EXPECT_EQ(c->n_layers, 30);
  EXPECT_EQ(c->hidden, 576);
  EXPECT_EQ(c->n_heads, 9);
  EXPECT_EQ(c->n_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->ffn, 1536);
  EXPECT_EQ(c->vocab, 49152);
  EXPECT_EQ(c->context, 8192);
  EXPECT_EQ(c->rope_theta, 100000.0);
  EXPECT_TRUE(c->tied_embeddings);
  int64_t params = 0;
  for (const TensorInfo* t : (*model)->tensors()) params += t->elements;
  EXPECT_EQ(params, 134515008);  // 134.5 M, as published
  const TensorInfo* q = (*model)->gguf()->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{576, 576}));
  EXPECT_EQ(q->type, kernels::DType::kQ4_1);
}

TEST(ModelSource, UnknownAliasListsKnownOnes) {
  auto model = ModelSource::Open("no-such-model");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("smollm2-135m-instruct"), std::string::npos)
      << model.status();
}

TEST(ModelSource, TokenizerOnlyFolder) {
  const std::string dir = std::string(TESSERA_TEST_DATA_DIR) + "/tokenizers/llama3";
  auto model = ModelSource::Open(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->format(), ModelSource::Format::kHfDir);
  EXPECT_EQ((*model)->config(), nullptr);
  EXPECT_TRUE((*model)->tensors().empty());
}

}  // namespace
}  // namespace tessera
