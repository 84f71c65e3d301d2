#include "runtime/serving/step_plan.h"

#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/io/byte_reader.h"

namespace tessera::serving {
namespace {

constexpr size_t kHeaderBytes = 32;
constexpr size_t kOpFixedBytes = 1 + 3 + 4 + 8 + 8 + 8;
constexpr size_t kSeqBytes = 48;

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));  // host is little-endian (x86, arm64)
  }
  void Zeros(size_t n) { out_.resize(out_.size() + n, 0); }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

absl::Status Bad(auto&&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("step plan: ", parts...));
}

// Reads `n` bytes that must all be zero.
absl::Status ReadZeros(ByteReader& r, size_t n, const std::string& what) {
  absl::StatusOr<absl::string_view> pad = r.ReadBytes(n, what);
  if (!pad.ok()) return pad.status();
  for (char c : *pad) {
    if (c != 0) return Bad(what, " is not zero");
  }
  return absl::OkStatus();
}

// A count that must fit `limit` and, at `min_bytes` each, the bytes left.
absl::Status CheckCount(ByteReader& r, uint32_t n, int64_t limit, size_t min_bytes,
                        const char* what) {
  if (n > limit) return Bad(what, " ", n, " exceeds the limit ", limit);
  if (static_cast<uint64_t>(n) * min_bytes > r.remaining()) {
    return absl::DataLossError(absl::StrCat("step plan: ", what, " ", n, " needs at least ",
                                            static_cast<uint64_t>(n) * min_bytes, " bytes, ",
                                            r.remaining(), " left"));
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const SamplingState& s, const std::string& at) {
  if (!std::isfinite(s.temperature) || s.temperature < 0) {
    return Bad(at, ".temperature ", s.temperature, " is out of range (finite, >= 0)");
  }
  if (s.top_k < 0) return Bad(at, ".top_k ", s.top_k, " is negative");
  if (!(s.top_p > 0 && s.top_p <= 1)) return Bad(at, ".top_p ", s.top_p, " is out of (0, 1]");
  if (!(s.min_p >= 0 && s.min_p < 1)) return Bad(at, ".min_p ", s.min_p, " is out of [0, 1)");
  if (!std::isfinite(s.repetition_penalty) || s.repetition_penalty <= 0) {
    return Bad(at, ".repetition_penalty ", s.repetition_penalty, " is out of range (finite, > 0)");
  }
  return absl::OkStatus();
}

// Reads one value into `out`, returning early from the caller on error.
#define TESSERA_READ(out, reader, type, what)                  \
  do {                                                         \
    absl::StatusOr<type> v_ = (reader).Read<type>(what);       \
    if (!v_.ok()) return v_.status();                          \
    (out) = *v_;                                               \
  } while (0)

}  // namespace

std::vector<uint8_t> EncodeStepPlan(const StepPlan& plan) {
  Writer w;
  w.Put<uint32_t>(kStepPlanMagic);
  w.Put<uint16_t>(kStepPlanVersion);
  w.Put<uint16_t>(plan.stop ? 1 : 0);
  w.Put<uint32_t>(0);  // body bytes, filled in below
  w.Put<uint32_t>(0);
  w.Put<uint64_t>(plan.step);
  w.Put<uint64_t>(plan.kv_generation);
  w.Put<uint32_t>(static_cast<uint32_t>(plan.block_ops.size()));
  w.Put<uint32_t>(static_cast<uint32_t>(plan.seqs.size()));
  w.Put<uint32_t>(static_cast<uint32_t>(plan.tokens.size()));
  for (const BlockOp& op : plan.block_ops) {
    w.Put<uint8_t>(static_cast<uint8_t>(op.kind));
    w.Zeros(3);
    w.Put<uint32_t>(static_cast<uint32_t>(op.blocks.size()));
    w.Put<int64_t>(op.seq);
    w.Put<int64_t>(op.parent);
    w.Put<int64_t>(op.count);
    for (int32_t b : op.blocks) w.Put<int32_t>(b);
  }
  for (const SeqStep& s : plan.seqs) {
    w.Put<int64_t>(s.seq);
    w.Put<int32_t>(s.first_position);
    w.Put<int32_t>(s.num_tokens);
    w.Put<uint8_t>((s.wants_logits ? 1 : 0) | (s.all_logits ? 2 : 0));
    w.Zeros(3);
    w.Put<float>(s.sampling.temperature);
    w.Put<int32_t>(s.sampling.top_k);
    w.Put<float>(s.sampling.top_p);
    w.Put<float>(s.sampling.min_p);
    w.Put<float>(s.sampling.repetition_penalty);
    w.Put<uint64_t>(s.sampling.seed);
  }
  for (int32_t t : plan.tokens) w.Put<int32_t>(t);
  std::vector<uint8_t>& out = w.bytes();
  const uint32_t body = static_cast<uint32_t>(out.size() - kHeaderBytes);
  std::memcpy(out.data() + 8, &body, sizeof(body));
  return std::move(out);
}

absl::StatusOr<StepPlan> DecodeStepPlan(std::span<const uint8_t> bytes, const PlanLimits& limits) {
  ByteReader r(bytes);
  uint32_t magic, body_bytes, reserved, n_ops, n_seqs, n_tokens;
  uint16_t version, flags;
  StepPlan plan;
  TESSERA_READ(magic, r, uint32_t, "step plan magic");
  if (magic != kStepPlanMagic) {
    return Bad("magic 0x", absl::Hex(magic), " is not \"TSPL\" (0x", absl::Hex(kStepPlanMagic), ")");
  }
  TESSERA_READ(version, r, uint16_t, "step plan version");
  if (version != kStepPlanVersion) {
    return Bad("version ", version, " is not supported (this build reads ", kStepPlanVersion, ")");
  }
  TESSERA_READ(flags, r, uint16_t, "step plan flags");
  if ((flags & ~1u) != 0) return Bad("flags 0x", absl::Hex(flags), " has unknown bits");
  plan.stop = (flags & 1u) != 0;
  TESSERA_READ(body_bytes, r, uint32_t, "step plan body size");
  TESSERA_READ(reserved, r, uint32_t, "step plan reserved word");
  if (reserved != 0) return Bad("reserved word ", reserved, " is not zero");
  TESSERA_READ(plan.step, r, uint64_t, "step plan step");
  TESSERA_READ(plan.kv_generation, r, uint64_t, "step plan kv_generation");
  if (body_bytes != r.remaining()) {
    return absl::DataLossError(absl::StrCat("step plan: body is ", r.remaining(),
                                            " bytes, the header says ", body_bytes));
  }
  TESSERA_READ(n_ops, r, uint32_t, "step plan n_block_ops");
  TESSERA_READ(n_seqs, r, uint32_t, "step plan n_seqs");
  TESSERA_READ(n_tokens, r, uint32_t, "step plan n_tokens");
  if (absl::Status s = CheckCount(r, n_ops, limits.max_block_ops, kOpFixedBytes, "n_block_ops");
      !s.ok()) {
    return s;
  }
  plan.block_ops.resize(n_ops);
  for (uint32_t i = 0; i < n_ops; ++i) {
    BlockOp& op = plan.block_ops[i];
    const std::string at = absl::StrCat("block_ops[", i, "]");
    uint8_t kind;
    uint32_t n_blocks;
    TESSERA_READ(kind, r, uint8_t, at + ".kind");
    op.kind = static_cast<BlockOp::Kind>(kind);
    if (!IsKnown(op.kind)) return Bad(at, ".kind ", static_cast<int>(kind), " is unknown");
    if (absl::Status s = ReadZeros(r, 3, at + " padding"); !s.ok()) return s;
    TESSERA_READ(n_blocks, r, uint32_t, at + ".n_blocks");
    TESSERA_READ(op.seq, r, int64_t, at + ".seq");
    TESSERA_READ(op.parent, r, int64_t, at + ".parent");
    TESSERA_READ(op.count, r, int64_t, at + ".count");
    if (absl::Status s = CheckCount(r, n_blocks, limits.num_blocks, 4, "n_blocks"); !s.ok()) {
      return s;
    }
    op.blocks.resize(n_blocks);
    for (uint32_t k = 0; k < n_blocks; ++k) {
      TESSERA_READ(op.blocks[k], r, int32_t, at + ".blocks");
      if (op.blocks[k] < 0 || op.blocks[k] >= limits.num_blocks) {
        return Bad(at, ".blocks[", k, "] ", op.blocks[k], " is out of range [0, ",
                   limits.num_blocks, ")");
      }
    }
    if (op.kind != BlockOp::Kind::kAllocate && n_blocks != 0) {
      return Bad(at, ": a ", KindName(op.kind), " carries no block ids");
    }
  }
  if (absl::Status s = CheckCount(r, n_seqs, limits.max_seqs, kSeqBytes, "n_seqs"); !s.ok()) {
    return s;
  }
  plan.seqs.resize(n_seqs);
  std::set<SeqId> seen;
  int64_t total_tokens = 0;
  for (uint32_t i = 0; i < n_seqs; ++i) {
    SeqStep& s = plan.seqs[i];
    const std::string at = absl::StrCat("seqs[", i, "]");
    uint8_t seq_flags;
    TESSERA_READ(s.seq, r, int64_t, at + ".seq");
    TESSERA_READ(s.first_position, r, int32_t, at + ".first_position");
    TESSERA_READ(s.num_tokens, r, int32_t, at + ".num_tokens");
    TESSERA_READ(seq_flags, r, uint8_t, at + ".flags");
    if ((seq_flags & ~3u) != 0) return Bad(at, ".flags 0x", absl::Hex(seq_flags), " has unknown bits");
    s.wants_logits = (seq_flags & 1u) != 0;
    s.all_logits = (seq_flags & 2u) != 0;
    if (absl::Status st = ReadZeros(r, 3, at + " padding"); !st.ok()) return st;
    TESSERA_READ(s.sampling.temperature, r, float, at + ".temperature");
    TESSERA_READ(s.sampling.top_k, r, int32_t, at + ".top_k");
    TESSERA_READ(s.sampling.top_p, r, float, at + ".top_p");
    TESSERA_READ(s.sampling.min_p, r, float, at + ".min_p");
    TESSERA_READ(s.sampling.repetition_penalty, r, float, at + ".repetition_penalty");
    TESSERA_READ(s.sampling.seed, r, uint64_t, at + ".seed");
    if (!seen.insert(s.seq).second) return Bad(at, ".seq ", s.seq, " appears twice in the step");
    if (s.first_position < 0) return Bad(at, ".first_position ", s.first_position, " is negative");
    if (s.num_tokens < 1) return Bad(at, ".num_tokens ", s.num_tokens, " is not positive");
    if (int64_t{s.first_position} + s.num_tokens > limits.max_position) {
      return Bad(at, ": positions ", s.first_position, "..", int64_t{s.first_position} + s.num_tokens - 1,
                 " pass the context length ", limits.max_position);
    }
    if (absl::Status st = CheckSampling(s.sampling, at); !st.ok()) return st;
    total_tokens += s.num_tokens;
  }
  if (total_tokens != n_tokens) {
    return Bad("the sequences hold ", total_tokens, " tokens, n_tokens says ", n_tokens);
  }
  if (absl::Status s = CheckCount(r, n_tokens, limits.max_tokens, 4, "n_tokens"); !s.ok()) {
    return s;
  }
  plan.tokens.resize(n_tokens);
  for (uint32_t i = 0; i < n_tokens; ++i) {
    TESSERA_READ(plan.tokens[i], r, int32_t, "tokens");
    if (plan.tokens[i] < 0 || plan.tokens[i] >= limits.vocab) {
      return Bad("tokens[", i, "] ", plan.tokens[i], " is out of the vocabulary [0, ", limits.vocab, ")");
    }
  }
  if (r.remaining() != 0) return Bad(r.remaining(), " bytes follow the plan");
  return plan;
}

}  // namespace tessera::serving
