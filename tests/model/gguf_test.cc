#include "runtime/model/gguf.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "tests/model/gguf_builder.h"

namespace tessera::gguf {
namespace {

using testing::GgufBuilder;

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> SmallFile() {
  return GgufBuilder()
      .KvString("general.architecture", "llama")
      .KvU32("llama.block_count", 2)
      .KvF32("llama.rope.freq_base", 10000.0f)
      .KvBool("tokenizer.ggml.add_bos_token", true)
      .KvStrings("tokenizer.ggml.tokens", {"<s>", "a", "b"})
      .Tensor("token_embd.weight", {4, 3}, /*F32*/ 0, F32Bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}))
      .Tensor("output_norm.weight", {4}, 0, F32Bytes({.5f, .25f, 1, 2}))
      .Build();
}

TEST(Gguf, ParsesMetadataAndTensors) {
  const std::vector<uint8_t> bytes = SmallFile();
  auto file = GgufFile::Parse(bytes, "small.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(*f.GetFloat("llama.rope.freq_base"), 10000.0f);
  EXPECT_TRUE(*f.GetBool("tokenizer.ggml.add_bos_token"));
  auto tokens = f.GetArray("tokenizer.ggml.tokens", ValueType::kString);
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ((*tokens)->size(), 3u);
  EXPECT_EQ(*(**tokens)[1].AsString(), "a");
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* emb = f.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{3, 4}));  // outermost first
  EXPECT_EQ(emb->bytes, 48);
  EXPECT_EQ(emb->file_offset % 32, 0u);
  float x;
  std::memcpy(&x, emb->data.data() + 4 * 5, 4);
  EXPECT_EQ(x, 6.0f);
  const TensorInfo* norm = f.FindTensor("output_norm.weight");
  std::memcpy(&x, norm->data.data() + 12, 4);
  EXPECT_EQ(x, 2.0f);
}

TEST(Gguf, TypedLookupsNameTheKeyAndProblem) {
  const std::vector<uint8_t> bytes = SmallFile();
  auto file = GgufFile::Parse(bytes, "small.gguf");
  ASSERT_TRUE(file.ok());
  auto missing = (*file)->GetInt("llama.context_length");
  EXPECT_EQ(missing.status().message(), "small.gguf: metadata key llama.context_length: missing");
  auto wrong = (*file)->GetInt("general.architecture");
  EXPECT_EQ(wrong.status().message(),
            "small.gguf: metadata key general.architecture: expected an integer, found string");
  auto arr = (*file)->GetArray("tokenizer.ggml.tokens", ValueType::kF32);
  EXPECT_FALSE(arr.ok());
}

void ExpectError(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  auto file = GgufFile::Parse(bytes, "bad.gguf");
  ASSERT_FALSE(file.ok()) << "expected an error containing: " << fragment;
  EXPECT_NE(file.status().message().find(fragment), std::string::npos) << file.status();
  EXPECT_EQ(file.status().message().rfind("bad.gguf: ", 0), 0u) << file.status();
}

TEST(Gguf, RejectsMalformedHeaders) {
  std::vector<uint8_t> bad_magic = SmallFile();
  bad_magic[0] = 'X';
  ExpectError(bad_magic, "bad magic");

  std::vector<uint8_t> bad_version = SmallFile();
  bad_version[4] = 9;
  ExpectError(bad_version, "unsupported GGUF version 9");

  std::vector<uint8_t> huge_count = SmallFile();
  huge_count[8 + 7] = 0x10;  // tensor count 2^60
  ExpectError(huge_count, "tensor count");

  ExpectError(GgufBuilder().KvU32("a", 1).KvU32("a", 2).Build(), "metadata key a: duplicate key");
  ExpectError(GgufBuilder()
                  .Tensor("w", {32}, 0, std::vector<uint8_t>(128))
                  .Tensor("w", {32}, 0, std::vector<uint8_t>(128))
                  .Build(),
              "tensor w: duplicate tensor name");
  ExpectError(GgufBuilder().Tensor("w", {256}, 16, std::vector<uint8_t>(66)).Build(),
              "tensor w: tensor type IQ2_XXS (16) is not supported");
  ExpectError(GgufBuilder().Tensor("w", {33}, 8, std::vector<uint8_t>(34)).Build(),
              "tensor w: row length 33 is not a multiple of the Q8_0 block size 32");
  ExpectError(GgufBuilder().Tensor("w", {0, 4}, 0, {}).Build(), "tensor w: dimension 0 = 0");
  ExpectError(GgufBuilder().Tensor("w", {1, 2, 3, 4, 5}, 0, {}).Build(), "5 dimensions");
  ExpectError(GgufBuilder().KvU32("general.alignment", 3).Build(), "power of two");
}

// Decoded metadata costs ~56 bytes per 1-byte u8; it is capped at 16x the file + 64 MiB.
TEST(Gguf, MetadataThatWouldTakeTooMuchMemoryIsRefused) {
  // A count the file cannot hold is refused before anything is decoded.
  ExpectError(GgufBuilder().KvArrayClaiming("tokenizer.ggml.token_type", 0, uint64_t{1} << 40).Build(),
              "metadata key tokenizer.ggml.token_type: array count 1099511627776 exceeds the bytes left");
  // 2 MiB of real u8s: ~112 MiB decoded, over 16 x 2 MiB + 64 MiB = 96 MiB.
  const uint64_t n = uint64_t{2} << 20;
  const std::vector<uint8_t> bytes = GgufBuilder().KvU8s("general.flags", n).Build();
  auto file = GgufFile::Parse(bytes, "bad.gguf");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string m(file.status().message());
  EXPECT_EQ(m.rfind("bad.gguf: metadata key general.flags: 2097152 u8 elements", 0), 0u) << m;
  EXPECT_NE(m.find(absl::StrCat("over the metadata limit of ", 16 * bytes.size() + (64 << 20))),
            std::string::npos)
      << m;
  // Within the limit it parses: 64 Ki u8s (3.5 MiB decoded).
  const std::vector<uint8_t> small = GgufBuilder().KvU8s("general.flags", 65536).Build();
  auto ok = GgufFile::Parse(small, "ok.gguf");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->Find("general.flags")->items().size(), 65536u);
}

TEST(Gguf, DataPastEndOfFileIsNamed) {
  std::vector<uint8_t> bytes = GgufBuilder().Tensor("blk.0.w", {8}, 0, F32Bytes(std::vector<float>(8, 1))).Build();
  bytes.resize(bytes.size() - 4);
  ExpectError(bytes, "tensor blk.0.w: offset");
  ExpectError(bytes, "runs past end of file");
}

// Every truncation of a valid file, and random byte flips, give errors, never crashes
// (this test is most useful under the asan preset).
TEST(Gguf, EveryTruncationIsAnError) {
  const std::vector<uint8_t> bytes = SmallFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);  // own allocation: ASan sees overreads
    auto file = GgufFile::Parse(cut, "cut.gguf");
    EXPECT_FALSE(file.ok()) << "truncated to " << n << " bytes parsed";
  }
}

TEST(Gguf, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> bytes = SmallFile();
  std::mt19937 rng(1234);
  int errors = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<uint8_t> mutated = bytes;
    const int flips = 1 + trial % 4;
    for (int k = 0; k < flips; ++k) {
      mutated[rng() % mutated.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    auto file = GgufFile::Parse(mutated, "flip.gguf");
    if (!file.ok()) {
      ++errors;
      continue;
    }
    for (const TensorInfo& t : (*file)->tensors()) {  // views must lie inside the buffer
      ASSERT_GE(t.data.data(), mutated.data());
      ASSERT_LE(t.data.data() + t.data.size(), mutated.data() + mutated.size());
    }
  }
  EXPECT_GT(errors, 1000);  // most flips land in lengths, types and counts
}

TEST(Gguf, MissingFileNamesThePath) {
  auto file = GgufFile::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("/nonexistent/model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace tessera::gguf
