#include "runtime/engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/check.h"
#include "kernels/dequant.h"

namespace tessera {

using kernels::DType;

bool IsKvType(DType type) {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16;
}

absl::StatusOr<DType> KvTypeFromName(absl::string_view name) {
  const std::optional<DType> type = kernels::DTypeFromName(name);  // case-insensitive
  if (type && IsKvType(*type)) return *type;
  return absl::InvalidArgumentError(
      absl::StrCat("KV type '", name, "' is not one of f32, f16, bf16"));
}

int64_t KvElementBytes(DType type) { return kernels::Info(type).block_bytes; }  // plain types

int64_t KvCacheShape::bytes_per_token() const {
  return layers * parts() * kv_dim * KvElementBytes(type);
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheShape& shape) {
  const std::string what =
      absl::StrCat("KV cache (", shape.layers, " layers x ", shape.num_blocks, " blocks x ",
                   shape.block_size, " tokens x ", shape.shared_kv ? "KV" : "K,V", " x ", shape.kv_dim, " ",
                   kernels::Name(shape.type), ")");
  if (!IsKvType(shape.type)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the type must be F32, F16 or BF16"));
  }
  if (shape.layers <= 0 || shape.kv_dim <= 0 || shape.block_size <= 0 || shape.num_blocks < 1 ||
      shape.num_blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad shape"));
  }
  const std::optional<int64_t> bytes = kernels::CheckedProduct(
      {shape.layers, shape.num_blocks, shape.parts(), shape.block_size, shape.kv_dim,
       KvElementBytes(shape.type)});
  if (!bytes) return absl::ResourceExhaustedError(absl::StrCat(what, ": the byte size overflows int64"));
  absl::StatusOr<serving::KvBlockManager> blocks =
      serving::KvBlockManager::Create(shape.num_blocks, shape.block_size);
  if (!blocks.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", blocks.status().message()));
  auto storage = kernels::HostBuffer::Allocate(*bytes, what);
  if (!storage.ok()) return storage.status();
  return std::unique_ptr<KvCache>(new KvCache(shape, std::move(*storage), *std::move(blocks)));
}

KvCache::KvCache(const KvCacheShape& shape, kernels::HostBuffer storage,
                 serving::KvBlockManager blocks)
    : shape_(shape), storage_(std::move(storage)), blocks_(std::move(blocks)) {}

absl::StatusOr<KvCache::Plan> KvCache::PlanAppend(std::span<const Append> appends) const {
  Plan plan;
  plan.generation = blocks_.generation();
  serving::BlockPlanner planner(blocks_);
  int64_t need = 0;
  std::set<SeqId> seen;
  for (const Append& a : appends) {
    if (a.tokens < 0) return absl::InvalidArgumentError("negative append");
    if (!seen.insert(a.seq).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", a.seq, " appears twice in one step (its chunks would overwrite each "
          "other's KV)"));
    }
    const int64_t held = static_cast<int64_t>(blocks_.BlockTable(a.seq).size());
    const int64_t extra = std::max<int64_t>(0, blocks_.BlocksFor(length(a.seq) + a.tokens) - held);
    plan.appends.push_back(a);
    plan.new_blocks.push_back(extra);
    need += extra;
  }
  if (need > free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: need ", need, " blocks of ",
                                                     shape_.block_size, " tokens, ",
                                                     free_blocks(), " free"));
  }
  for (const Append& a : appends) {
    if (absl::Status s = planner.Reserve(a.seq, length(a.seq) + a.tokens); !s.ok()) return s;
  }
  plan.ops = planner.TakeOps();
  return plan;
}

absl::Status KvCache::Reserve(const Plan& plan) { return blocks_.Apply(plan.generation, plan.ops); }

absl::Status KvCache::Commit(const Plan& plan) {
  for (const Append& a : plan.appends) {
    if (absl::Status s = blocks_.SetLength(a.seq, length(a.seq) + a.tokens); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status KvCache::Apply(const Plan& plan) {
  if (absl::Status s = Reserve(plan); !s.ok()) return s;
  return Commit(plan);
}

absl::Status KvCache::ApplyBlockOps(uint64_t generation, std::span<const serving::BlockOp> ops) {
  return blocks_.Apply(generation, ops);
}

absl::Status KvCache::Free(SeqId seq) {
  serving::BlockPlanner planner(blocks_);
  if (absl::Status s = planner.Release(seq); !s.ok()) return s;
  return blocks_.Apply(blocks_.generation(), planner.ops());
}

uint8_t* KvCache::Block(int64_t layer, int32_t block, int kv) const {
  const int64_t per_block = shape_.block_size * shape_.kv_dim;
  const int64_t index = ((layer * shape_.num_blocks + block) * shape_.parts() + kv) * per_block;
  return static_cast<uint8_t*>(storage_.data()) + index * KvElementBytes(shape_.type);
}

void KvCache::Write(int64_t layer, SeqId seq, int64_t pos, const float* k, const float* v,
                    int64_t n) {
  const std::span<const int32_t> table = blocks_.BlockTable(seq);
  TESSERA_KCHECK(pos >= 0 && pos + n <= static_cast<int64_t>(table.size()) * shape_.block_size,
                 "KvCache::Write past the sequence's blocks");
  TESSERA_KCHECK(shape_.shared_kv == (v == nullptr), "KvCache::Write: v is given iff K and V are apart");
  const int64_t D = shape_.kv_dim, row_bytes = D * KvElementBytes(shape_.type);
  auto store = [&](uint8_t* dst, const float* src) {
    kernels::StoreFloatRow(dst, shape_.type, src, D);
  };
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = pos + i;
    const int32_t block = table[p / shape_.block_size];
    const int64_t slot = p % shape_.block_size;
    store(Block(layer, block, 0) + slot * row_bytes, k + i * D);
    if (!shape_.shared_kv) store(Block(layer, block, 1) + slot * row_bytes, v + i * D);
  }
}

kernels::PagedKv KvCache::Layer(int64_t layer, int64_t kv_heads) const {
  return kernels::PagedKv{.k = Block(layer, 0, 0),
                          .v = Block(layer, 0, shape_.shared_kv ? 0 : 1),
                          .type = shape_.type,
                          .num_blocks = shape_.num_blocks,
                          .block_size = shape_.block_size,
                          .block_stride = shape_.parts() * shape_.block_size * shape_.kv_dim,
                          .kv_heads = kv_heads};
}

}  // namespace tessera
