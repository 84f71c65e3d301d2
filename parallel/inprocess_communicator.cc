#include "parallel/inprocess_communicator.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::parallel {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

struct InProcessCommunicator::Post {
  CollectiveKind kind = CollectiveKind::kBarrier;
  DType type = DType::kF32;
  int64_t numel = 0;  // elements of the input (all-to-all-v: sum of send counts)
  int root = 0;
  std::vector<int64_t> counts;  // all-to-all-v send counts
  std::vector<uint8_t> bytes;   // a copy of the input
};

struct InProcessCommunicator::Group {
  struct Round {
    explicit Round(int n) : posts(n) {}
    std::vector<std::optional<Post>> posts;
    int arrived = 0;
    int consumed = 0;
  };

  Group(int n, absl::Duration timeout) : n(n), timeout(timeout) {}

  // Immutable after construction.
  const int n;
  const absl::Duration timeout;

  std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu. A round's posts are not written after it is full, so ranks read a full
  // round without the lock; std::map nodes do not move while other rounds come and go.
  std::map<uint64_t, Round> rounds;
  // Point-to-point, per (src, dst) pair: the k-th send fills the k-th receive posted, in
  // StartSendRecv order on each side (as MPI matches), whatever order Wait is called in.
  struct Pair {
    uint64_t sent = 0, posted = 0;
    std::map<uint64_t, std::vector<uint8_t>> messages;  // by send number
  };
  std::map<std::pair<int, int>, Pair> mail;  // by (src, dst)
  absl::Status poison;                       // the first timeout; every later call fails with it

  std::chrono::steady_clock::time_point Deadline() const {
    return std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  }
  absl::Status Poisoned() const {
    return absl::Status(poison.code(),
                        absl::StrCat("in-process group is unusable: ", poison.message()));
  }
};

namespace {

std::optional<int64_t> Bytes(DType t, int64_t n) { return kernels::BytesFor(t, n); }

std::string Describe(CollectiveKind kind, int64_t numel, DType type) {
  if (kind == CollectiveKind::kBarrier) return "barrier";
  return absl::StrCat(CollectiveName(kind), " of ", numel, " ", kernels::Name(type), " elements");
}

absl::Status CheckCpu(const ConstTensor& t, CollectiveKind kind) {
  if (t.device != kernels::Device::kCpu) {
    return absl::InvalidArgumentError(
        absl::StrCat(CollectiveName(kind), ": the in-process communicator takes CPU tensors"));
  }
  if (!Bytes(t.type, t.numel())) {
    return absl::InvalidArgumentError(absl::StrCat(CollectiveName(kind), ": ", t.numel(), " ",
                                                   kernels::Name(t.type),
                                                   " elements are not whole blocks"));
  }
  return absl::OkStatus();
}

std::vector<uint8_t> CopyOf(const ConstTensor& t, int64_t numel) {
  const auto* p = static_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(p, p + *Bytes(t.type, numel));
}

// dst[i] += src[i] for n floats.
void AddInto(float* dst, const uint8_t* src, int64_t n) {
  float tmp;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(&tmp, src + 4 * i, 4);
    dst[i] += tmp;
  }
}

}  // namespace

std::vector<std::unique_ptr<Communicator>> InProcessCommunicator::MakeGroup(
    int n, absl::Duration timeout) {
  auto group = std::make_shared<Group>(n, timeout);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < n; ++r) {
    comms.push_back(std::unique_ptr<Communicator>(new InProcessCommunicator(group, r)));
  }
  return comms;
}

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<Group> group, int rank)
    : group_(std::move(group)), rank_(rank) {}

InProcessCommunicator::~InProcessCommunicator() = default;

int InProcessCommunicator::size() const { return group_->n; }

absl::Status InProcessCommunicator::Collective(
    Post post, const std::function<absl::Status(const std::vector<const Post*>&)>& compute) {
  Group& g = *group_;
  const uint64_t seq = seq_++;
  const std::string what = Describe(post.kind, post.numel, post.type);
  Group::Round* round = nullptr;
  {
    std::unique_lock lock(g.mu);
    if (!g.poison.ok()) return g.Poisoned();
    round = &g.rounds.try_emplace(seq, g.n).first->second;
    round->posts[rank_] = std::move(post);
    if (++round->arrived == g.n) g.cv.notify_all();
    const bool full = g.cv.wait_until(lock, g.Deadline(),
                                      [&] { return round->arrived == g.n || !g.poison.ok(); });
    if (round->arrived < g.n) {
      if (!full) {
        std::vector<int> missing;
        for (int r = 0; r < g.n; ++r) {
          if (!round->posts[r]) missing.push_back(r);
        }
        g.poison = absl::DeadlineExceededError(
            absl::StrCat(what, " (call #", seq, ") on an in-process group of ", g.n, ": rank",
                         missing.size() > 1 ? "s " : " ", absl::StrJoin(missing, ", "),
                         " did not arrive within ", absl::FormatDuration(g.timeout),
                         ": a peer is dead or stuck"));
        g.cv.notify_all();
        return g.poison;
      }
      return g.Poisoned();
    }
  }
  std::vector<const Post*> all(g.n);
  absl::Status status;
  for (int r = 0; r < g.n; ++r) {
    all[r] = &*round->posts[r];
    const Post& p = *all[r];
    const Post& me = *round->posts[rank_];
    if (p.kind != me.kind || p.type != me.type || p.root != me.root ||
        (p.kind != CollectiveKind::kAllToAllV && p.numel != me.numel)) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "call #", seq, " does not match across ranks: rank ", rank_, " made ", what,
          me.kind == CollectiveKind::kBroadcast || me.kind == CollectiveKind::kGather
              ? absl::StrCat(" root ", me.root)
              : "",
          ", rank ", r, " made ", Describe(p.kind, p.numel, p.type),
          p.kind == CollectiveKind::kBroadcast || p.kind == CollectiveKind::kGather
              ? absl::StrCat(" root ", p.root)
              : ""));
      break;
    }
  }
  if (status.ok()) status = compute(all);
  std::lock_guard lock(g.mu);
  if (++round->consumed == g.n) g.rounds.erase(seq);
  return status;
}

absl::Status InProcessCommunicator::AllReduceSum(Tensor data) {
  if (absl::Status s = CheckCpu(data, CollectiveKind::kAllReduce); !s.ok()) return s;
  if (data.type != DType::kF32) return absl::InvalidArgumentError("all-reduce: data must be f32");
  const int64_t n = data.numel();
  stats_.Count(CollectiveKind::kAllReduce, 4 * n);
  Post post{CollectiveKind::kAllReduce, data.type, n, 0, {}, CopyOf(data, n)};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    float* out = data.as<float>();
    std::memset(out, 0, 4 * n);
    for (const Post* p : all) AddInto(out, p->bytes.data(), n);
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::AllGather(Tensor out, ConstTensor in) {
  if (absl::Status s = CheckCpu(in, CollectiveKind::kAllGather); !s.ok()) return s;
  const int64_t n = in.numel();
  if (out.type != in.type || out.numel() < n * size()) {
    return absl::InvalidArgumentError(absl::StrCat("all-gather: out holds ", out.numel(), " ",
                                                   kernels::Name(out.type), ", needs ", n * size(),
                                                   " ", kernels::Name(in.type)));
  }
  stats_.Count(CollectiveKind::kAllGather, *Bytes(in.type, n));
  Post post{CollectiveKind::kAllGather, in.type, n, 0, {}, CopyOf(in, n)};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    auto* o = static_cast<uint8_t*>(out.data);
    for (const Post* p : all) {
      std::memcpy(o, p->bytes.data(), p->bytes.size());
      o += p->bytes.size();
    }
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::ReduceScatterSum(Tensor out, ConstTensor in) {
  if (absl::Status s = CheckCpu(in, CollectiveKind::kReduceScatter); !s.ok()) return s;
  const int64_t total = in.numel();
  if (in.type != DType::kF32 || out.type != DType::kF32 || total % size() != 0 ||
      out.numel() < total / size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduce-scatter: in (", total, " elements) must be f32 [", size(),
                     ", n] and out f32 [n], got out of ", out.numel()));
  }
  const int64_t n = total / size();
  stats_.Count(CollectiveKind::kReduceScatter, 4 * total);
  Post post{CollectiveKind::kReduceScatter, in.type, total, 0, {}, CopyOf(in, total)};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    float* o = out.as<float>();
    std::memset(o, 0, 4 * n);
    for (const Post* p : all) AddInto(o, p->bytes.data() + 4 * n * rank_, n);
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::AllToAllV(Tensor out, std::span<const int64_t> recv_counts,
                                              ConstTensor in,
                                              std::span<const int64_t> send_counts) {
  if (absl::Status s = CheckCpu(in, CollectiveKind::kAllToAllV); !s.ok()) return s;
  const int n = size();
  if (static_cast<int>(recv_counts.size()) != n || static_cast<int>(send_counts.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: ", send_counts.size(),
                                                   " send and ", recv_counts.size(),
                                                   " receive counts for ", n, " ranks"));
  }
  int64_t sent = 0, received = 0;
  for (int r = 0; r < n; ++r) {
    if (send_counts[r] < 0 || recv_counts[r] < 0 || !Bytes(in.type, send_counts[r]) ||
        !Bytes(in.type, recv_counts[r])) {
      return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: bad count for rank ", r,
                                                     ": send ", send_counts[r], ", receive ",
                                                     recv_counts[r]));
    }
    sent += send_counts[r];
    received += recv_counts[r];
  }
  if (out.type != in.type || sent > in.numel() || received > out.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: sends ", sent, " of ", in.numel(),
                                                   " elements, receives ", received, " into ",
                                                   out.numel(), " (types must match)"));
  }
  stats_.Count(CollectiveKind::kAllToAllV, *Bytes(in.type, sent));
  Post post{CollectiveKind::kAllToAllV,
            in.type,
            sent,
            0,
            std::vector<int64_t>(send_counts.begin(), send_counts.end()),
            CopyOf(in, sent)};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    auto* o = static_cast<uint8_t*>(out.data);
    for (int src = 0; src < n; ++src) {
      const Post& p = *all[src];
      int64_t offset = 0;
      for (int d = 0; d < rank_; ++d) offset += p.counts[d];
      if (p.counts[rank_] != recv_counts[src]) {
        return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: rank ", src, " sends ",
                                                       p.counts[rank_], " elements to rank ", rank_,
                                                       ", which expects ", recv_counts[src]));
      }
      const int64_t bytes = *Bytes(in.type, recv_counts[src]);
      if (bytes > 0) std::memcpy(o, p.bytes.data() + *Bytes(in.type, offset), bytes);
      o += bytes;
    }
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::Gather(Tensor out, ConstTensor in, int root) {
  if (absl::Status s = CheckCpu(in, CollectiveKind::kGather); !s.ok()) return s;
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(absl::StrCat("gather: root ", root, " of ", size(), " ranks"));
  }
  const int64_t n = in.numel();
  if (rank_ == root && (out.type != in.type || out.numel() < n * size())) {
    return absl::InvalidArgumentError(absl::StrCat("gather: out holds ", out.numel(), " ",
                                                   kernels::Name(out.type), ", needs ", n * size(),
                                                   " ", kernels::Name(in.type)));
  }
  stats_.Count(CollectiveKind::kGather, *Bytes(in.type, n));
  Post post{CollectiveKind::kGather, in.type, n, root, {}, CopyOf(in, n)};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    if (rank_ != root) return absl::OkStatus();
    auto* o = static_cast<uint8_t*>(out.data);
    for (const Post* p : all) {
      std::memcpy(o, p->bytes.data(), p->bytes.size());
      o += p->bytes.size();
    }
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::Broadcast(Tensor data, int root) {
  if (absl::Status s = CheckCpu(data, CollectiveKind::kBroadcast); !s.ok()) return s;
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast: root ", root, " of ", size(), " ranks"));
  }
  const int64_t n = data.numel();
  stats_.Count(CollectiveKind::kBroadcast, *Bytes(data.type, n));
  Post post{CollectiveKind::kBroadcast,
            data.type,
            n,
            root,
            {},
            rank_ == root ? CopyOf(data, n) : std::vector<uint8_t>()};
  return Collective(std::move(post), [&](const std::vector<const Post*>& all) {
    if (rank_ != root && n > 0)
      std::memcpy(data.data, all[root]->bytes.data(), all[root]->bytes.size());
    return absl::OkStatus();
  });
}

absl::Status InProcessCommunicator::Barrier() {
  stats_.Count(CollectiveKind::kBarrier, 0);
  return Collective(Post{}, [](const std::vector<const Post*>&) { return absl::OkStatus(); });
}

namespace {

class InProcessExchange final : public PendingSendRecv {
 public:
  InProcessExchange(std::shared_ptr<InProcessCommunicator::Group> g, int me, int src,
                    uint64_t ticket, Tensor recv)
      : g_(std::move(g)), me_(me), src_(src), ticket_(ticket), recv_(recv) {}
  ~InProcessExchange() override {
    if (!waited_) Wait().IgnoreError();
  }
  absl::Status Wait() override;

 private:
  std::shared_ptr<InProcessCommunicator::Group> g_;
  int me_, src_;
  uint64_t ticket_;  // which message from src_ this receive takes
  Tensor recv_;
  bool waited_ = false;
};

}  // namespace

absl::Status InProcessExchange::Wait() {
  waited_ = true;
  InProcessCommunicator::Group& g = *g_;
  const int64_t want = *kernels::BytesFor(recv_.type, recv_.numel());
  std::unique_lock lock(g.mu);
  auto& box = g.mail[{src_, me_}].messages;
  const bool got =
      g.cv.wait_until(lock, g.Deadline(), [&] { return box.contains(ticket_) || !g.poison.ok(); });
  if (!box.contains(ticket_)) {
    if (!got) {
      g.poison = absl::DeadlineExceededError(
          absl::StrCat("recv of ", want, " bytes by rank ", me_, " from rank ", src_,
                       " on an in-process group of ", g.n, " did not arrive within ",
                       absl::FormatDuration(g.timeout), ": a peer is dead or stuck"));
      g.cv.notify_all();
      return g.poison;
    }
    return g.Poisoned();
  }
  std::vector<uint8_t> msg = std::move(box[ticket_]);
  box.erase(ticket_);
  lock.unlock();
  if (static_cast<int64_t>(msg.size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat("recv by rank ", me_, " from rank ", src_,
                                                   ": expected ", want, " bytes, got ",
                                                   msg.size()));
  }
  if (want > 0) std::memcpy(recv_.data, msg.data(), want);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PendingSendRecv>> InProcessCommunicator::StartSendRecv(
    ConstTensor send, int dst, Tensor recv, int src) {
  if (absl::Status s = CheckCpu(send, CollectiveKind::kSend); !s.ok()) return s;
  if (absl::Status s = CheckCpu(recv, CollectiveKind::kRecv); !s.ok()) return s;
  if (dst < 0 || dst >= size() || src < 0 || src >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("send/recv: peers dst ", dst, ", src ", src, " outside ", size(), " ranks"));
  }
  const int64_t send_bytes = *Bytes(send.type, send.numel());
  stats_.Count(CollectiveKind::kSend, send_bytes);
  stats_.Count(CollectiveKind::kRecv, *Bytes(recv.type, recv.numel()));
  std::lock_guard lock(group_->mu);
  if (!group_->poison.ok()) return group_->Poisoned();
  Group::Pair& out = group_->mail[{rank_, dst}];
  out.messages[out.sent++] = CopyOf(send, send.numel());
  group_->cv.notify_all();
  const uint64_t ticket = group_->mail[{src, rank_}].posted++;
  return std::make_unique<InProcessExchange>(group_, rank_, src, ticket, recv);
}

}  // namespace tessera::parallel
