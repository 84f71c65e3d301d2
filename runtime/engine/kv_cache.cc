#include "runtime/engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tessera {

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheShape& shape) {
  const std::string what =
      absl::StrCat("KV cache (", shape.layers, " layers x ", shape.num_blocks, " blocks x ",
                   shape.block_size, " tokens x K,V x ", shape.kv_dim, " f32)");
  if (shape.layers <= 0 || shape.kv_dim <= 0 || shape.block_size <= 0 || shape.num_blocks < 0 ||
      shape.num_blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad shape"));
  }
  const std::optional<int64_t> bytes = kernels::CheckedProduct(
      {shape.layers, shape.num_blocks, 2, shape.block_size, shape.kv_dim,
       static_cast<int64_t>(sizeof(float))});
  if (!bytes) return absl::ResourceExhaustedError(absl::StrCat(what, ": the byte size overflows int64"));
  auto storage = kernels::HostBuffer::Allocate(*bytes, what);
  if (!storage.ok()) return storage.status();
  return std::unique_ptr<KvCache>(new KvCache(shape, std::move(*storage)));
}

KvCache::KvCache(const KvCacheShape& shape, kernels::HostBuffer storage)
    : shape_(shape), storage_(std::move(storage)) {
  free_.resize(shape.num_blocks);
  // Hand out low block numbers first.
  for (int64_t i = 0; i < shape.num_blocks; ++i) free_[i] = static_cast<int32_t>(shape.num_blocks - 1 - i);
}

absl::StatusOr<KvCache::Plan> KvCache::PlanAppend(std::span<const Append> appends) const {
  Plan plan;
  int64_t need = 0;
  std::map<SeqId, int64_t> planned_len;
  for (const Append& a : appends) {
    if (a.tokens < 0) return absl::InvalidArgumentError("negative append");
    auto [it, fresh] = planned_len.emplace(a.seq, length(a.seq));
    const auto seq_it = seqs_.find(a.seq);
    const int64_t have_blocks = seq_it == seqs_.end() ? 0 : static_cast<int64_t>(seq_it->second.blocks.size());
    const int64_t before = (it->second + shape_.block_size - 1) / shape_.block_size;
    it->second += a.tokens;
    const int64_t after = (it->second + shape_.block_size - 1) / shape_.block_size;
    const int64_t extra = std::max<int64_t>(0, after - std::max(before, have_blocks));
    plan.appends.push_back(a);
    plan.new_blocks.push_back(extra);
    need += extra;
  }
  if (need > free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: need ", need, " blocks of ",
                                                     shape_.block_size, " tokens, ",
                                                     free_blocks(), " free"));
  }
  return plan;
}

void KvCache::Apply(const Plan& plan) {
  for (size_t i = 0; i < plan.appends.size(); ++i) {
    Seq& s = seqs_[plan.appends[i].seq];
    for (int64_t b = 0; b < plan.new_blocks[i]; ++b) {
      s.blocks.push_back(free_.back());
      free_.pop_back();
    }
    s.length += plan.appends[i].tokens;
  }
}

void KvCache::Free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) free_.push_back(*b);
  seqs_.erase(it);
}

int64_t KvCache::length(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.length;
}

float* KvCache::Block(int64_t layer, int32_t block, int kv) const {
  const int64_t per_block = shape_.block_size * shape_.kv_dim;
  const int64_t index = ((layer * shape_.num_blocks + block) * 2 + kv) * per_block;
  return reinterpret_cast<float*>(storage_.data()) + index;
}

void KvCache::Write(int64_t layer, SeqId seq, int64_t pos, const float* k, const float* v,
                    int64_t n) {
  const Seq& s = seqs_.at(seq);
  const int64_t D = shape_.kv_dim;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = pos + i;
    const int32_t block = s.blocks[p / shape_.block_size];
    const int64_t slot = p % shape_.block_size;
    std::memcpy(Block(layer, block, 0) + slot * D, k + i * D, sizeof(float) * D);
    std::memcpy(Block(layer, block, 1) + slot * D, v + i * D, sizeof(float) * D);
  }
}

void KvCache::Gather(int64_t layer, SeqId seq, int64_t len, float* k, float* v) const {
  const Seq& s = seqs_.at(seq);
  const int64_t D = shape_.kv_dim;
  for (int64_t p = 0; p < len; p += shape_.block_size) {
    const int64_t n = std::min(shape_.block_size, len - p);
    const int32_t block = s.blocks[p / shape_.block_size];
    std::memcpy(k + p * D, Block(layer, block, 0), sizeof(float) * n * D);
    std::memcpy(v + p * D, Block(layer, block, 1), sizeof(float) * n * D);
  }
}

}  // namespace tessera
