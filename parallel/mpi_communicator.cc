#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::parallel {

using kernels::ConstTensor;
using kernels::DType;
using kernels::Tensor;

namespace {

constexpr int kSendRecvTag = 7001;

std::string ErrorString(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return absl::StrCat("MPI error ", rc);
  return std::string(buf, len);
}

// Set once any communicator of this process saw a peer fail (a timeout or a transport
// error): MPI_Finalize then waits for every process, the dead one included, so the session
// skips it and the process exits without it.
std::atomic<bool> g_peer_failed{false};

bool Finalized() {
  int done = 0;
  MPI_Finalized(&done);
  return done != 0;
}

// "0-2" for a run of consecutive ranks, else "0, 2, 4".
std::string RankList(const std::vector<int>& r) {
  bool run = !r.empty();
  for (size_t i = 1; i < r.size(); ++i) run = run && r[i] == r[i - 1] + 1;
  if (run && r.size() > 1) return absl::StrCat(r.front(), "-", r.back());
  return absl::StrJoin(r, ", ");
}

// Storage units of n elements of `t` (elements, or blocks), or -1 if not whole blocks.
int64_t Units(DType t, int64_t n) {
  const int64_t b = kernels::Info(t).block_elems;
  return n % b == 0 ? n / b : -1;
}

std::string Describe(CollectiveKind kind, int64_t numel, DType type) {
  if (kind == CollectiveKind::kBarrier) return "barrier";
  return absl::StrCat(CollectiveName(kind), " of ", numel, " ", kernels::Name(type), " elements");
}

absl::Status CheckTensor(const ConstTensor& t, CollectiveKind kind) {
  if (t.device != kernels::Device::kCpu) {
    return absl::InvalidArgumentError(
        absl::StrCat(CollectiveName(kind), ": the MPI communicator takes CPU tensors"));
  }
  const int64_t u = Units(t.type, t.numel());
  if (u < 0) {
    return absl::InvalidArgumentError(absl::StrCat(CollectiveName(kind), ": ", t.numel(), " ",
                                                   kernels::Name(t.type),
                                                   " elements are not whole blocks"));
  }
  if (u > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(CollectiveName(kind), " of ", t.numel(),
                                                   " elements exceeds MPI's INT_MAX count"));
  }
  return absl::OkStatus();
}

int64_t Bytes(const ConstTensor& t) { return kernels::BytesFor(t.type, t.numel()).value_or(0); }

}  // namespace

// ---- MpiSession ----

absl::StatusOr<std::unique_ptr<MpiSession>> MpiSession::Init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  bool owns = false;
  if (!initialized) {
    int provided = 0;
    if (int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided); rc != MPI_SUCCESS) {
      return absl::UnavailableError(absl::StrCat("MPI_Init_thread failed: ", ErrorString(rc)));
    }
    owns = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      return absl::FailedPreconditionError(
          absl::StrCat("this MPI provides thread level ", provided, ", below MPI_THREAD_FUNNELED"));
    }
  }
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<MpiSession>(new MpiSession(owns, rank, size));
}

MpiSession::~MpiSession() {
  if (owns_ && !Finalized() && !g_peer_failed.load()) MPI_Finalize();
}

// ---- MpiCommunicator ----

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(MPI_Comm comm,
                                                                         absl::Duration timeout,
                                                                         std::string name) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || Finalized()) {
    return absl::FailedPreconditionError("MpiCommunicator::Create: MPI is not initialised");
  }
  if (comm == MPI_COMM_NULL) return absl::InvalidArgumentError("MpiCommunicator: null MPI_Comm");
  MPI_Comm dup = MPI_COMM_NULL;
  if (int rc = MPI_Comm_dup(comm, &dup); rc != MPI_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("MPI_Comm_dup for ", name, ": ", ErrorString(rc)));
  }
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(dup, &rank);
  MPI_Comm_size(dup, &size);
  std::vector<int> local(size), world(size);
  for (int i = 0; i < size; ++i) local[i] = i;
  MPI_Group g = MPI_GROUP_NULL, wg = MPI_GROUP_NULL;
  MPI_Comm_group(dup, &g);
  MPI_Comm_group(MPI_COMM_WORLD, &wg);
  MPI_Group_translate_ranks(g, size, local.data(), wg, world.data());
  MPI_Group_free(&g);
  MPI_Group_free(&wg);
  std::string label = absl::StrCat(name, " (world ranks ", RankList(world), ")");
  return std::unique_ptr<MpiCommunicator>(
      new MpiCommunicator(dup, timeout, std::move(label), rank, size, std::move(world)));
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, absl::Duration timeout, std::string label, int rank,
                                 int size, std::vector<int> world_ranks)
    : comm_(comm),
      timeout_(timeout),
      label_(std::move(label)),
      rank_(rank),
      size_(size),
      world_ranks_(std::move(world_ranks)) {
  units_.fill(MPI_DATATYPE_NULL);
}

MpiCommunicator::~MpiCommunicator() {
  if (Finalized()) return;
  for (MPI_Datatype& t : units_) {
    if (t != MPI_DATATYPE_NULL) MPI_Type_free(&t);
  }
  // A broken communicator may still have a request in flight; freeing it could block on
  // the dead peer, so it is left to process exit.
  if (broken_.ok()) MPI_Comm_free(&comm_);
}

absl::Status MpiCommunicator::Usable() const {
  if (broken_.ok()) return broken_;
  return absl::Status(
      broken_.code(),
      absl::StrCat(label_, " is unusable after an earlier failure: ", broken_.message()));
}

absl::Status MpiCommunicator::Mpi(int rc, const std::string& what) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  broken_ =
      absl::UnavailableError(absl::StrCat(what, " on ", label_, " failed: ", ErrorString(rc)));
  g_peer_failed = true;
  return broken_;
}

absl::StatusOr<MPI_Datatype> MpiCommunicator::Unit(DType type) {
  MPI_Datatype& t = units_[static_cast<int>(type)];
  if (t == MPI_DATATYPE_NULL) {
    const int bytes = static_cast<int>(kernels::Info(type).block_bytes);
    MPI_Datatype made = MPI_DATATYPE_NULL;
    if (absl::Status s = Mpi(MPI_Type_contiguous(bytes, MPI_BYTE, &made), "MPI_Type_contiguous");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Mpi(MPI_Type_commit(&made), "MPI_Type_commit"); !s.ok()) return s;
    t = made;
  }
  return t;
}

absl::Status MpiCommunicator::Complete(MPI_Request* reqs, int n, const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = WaitAll(reqs, n, what);
  stats_.seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

absl::Status MpiCommunicator::WaitAll(MPI_Request* reqs, int n, const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + absl::ToChronoNanoseconds(timeout_);
  for (int polls = 0;; ++polls) {
    int done = 0;
    if (absl::Status s = Mpi(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), what); !s.ok()) {
      return s;
    }
    if (done) return absl::OkStatus();
    if (std::chrono::steady_clock::now() > deadline) {
      broken_ = absl::DeadlineExceededError(
          absl::StrCat(what, " on ", label_, " did not complete within ",
                       absl::FormatDuration(timeout_), ": a peer is dead or stuck"));
      g_peer_failed = true;
      return broken_;
    }
    // Spin briefly (latency), then back off so that oversubscribed ranks let peers run.
    if (polls < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(std::min(200, (polls - 63) * 10)));
    }
  }
}

absl::Status MpiCommunicator::AllReduceSum(Tensor data) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(data, CollectiveKind::kAllReduce); !s.ok()) return s;
  if (data.type != DType::kF32) return absl::InvalidArgumentError("all-reduce: data must be f32");
  stats_.Count(CollectiveKind::kAllReduce, Bytes(data));
  const std::string what = Describe(CollectiveKind::kAllReduce, data.numel(), data.type);
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s = Mpi(MPI_Iallreduce(MPI_IN_PLACE, data.data, static_cast<int>(data.numel()),
                                          MPI_FLOAT, MPI_SUM, comm_, &req),
                           what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::AllGather(Tensor out, ConstTensor in) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(in, CollectiveKind::kAllGather); !s.ok()) return s;
  if (absl::Status s = CheckTensor(out, CollectiveKind::kAllGather); !s.ok()) return s;
  if (out.type != in.type || out.numel() < in.numel() * size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("all-gather: out holds ", out.numel(), " ", kernels::Name(out.type),
                     ", needs ", in.numel() * size_, " ", kernels::Name(in.type)));
  }
  absl::StatusOr<MPI_Datatype> unit = Unit(in.type);
  if (!unit.ok()) return unit.status();
  stats_.Count(CollectiveKind::kAllGather, Bytes(in));
  const std::string what = Describe(CollectiveKind::kAllGather, in.numel(), in.type);
  const int n = static_cast<int>(Units(in.type, in.numel()));
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s =
          Mpi(MPI_Iallgather(in.data, n, *unit, out.data, n, *unit, comm_, &req), what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::ReduceScatterSum(Tensor out, ConstTensor in) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(in, CollectiveKind::kReduceScatter); !s.ok()) return s;
  const int64_t total = in.numel();
  if (in.type != DType::kF32 || out.type != DType::kF32 || total % size_ != 0 ||
      out.numel() < total / size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduce-scatter: in (", total, " elements) must be f32 [", size_,
                     ", n] and out f32 [n], got out of ", out.numel()));
  }
  stats_.Count(CollectiveKind::kReduceScatter, Bytes(in));
  const std::string what = Describe(CollectiveKind::kReduceScatter, total, in.type);
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s =
          Mpi(MPI_Ireduce_scatter_block(in.data, out.data, static_cast<int>(total / size_),
                                        MPI_FLOAT, MPI_SUM, comm_, &req),
              what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::AllToAllV(Tensor out, std::span<const int64_t> recv_counts,
                                        ConstTensor in, std::span<const int64_t> send_counts) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(in, CollectiveKind::kAllToAllV); !s.ok()) return s;
  if (static_cast<int>(recv_counts.size()) != size_ ||
      static_cast<int>(send_counts.size()) != size_) {
    return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: ", send_counts.size(),
                                                   " send and ", recv_counts.size(),
                                                   " receive counts for ", size_, " ranks"));
  }
  // Counts and displacements in storage units, each of which MPI takes as an int.
  std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
  int64_t soff = 0, roff = 0;
  for (int r = 0; r < size_; ++r) {
    const int64_t su = Units(in.type, send_counts[r]), ru = Units(in.type, recv_counts[r]);
    if (send_counts[r] < 0 || recv_counts[r] < 0 || su < 0 || ru < 0) {
      return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: bad count for rank ", r,
                                                     ": send ", send_counts[r], ", receive ",
                                                     recv_counts[r]));
    }
    if (su > INT_MAX || ru > INT_MAX || soff > INT_MAX || roff > INT_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("all-to-all-v: a count or offset for rank ", r, " (send ", send_counts[r],
                       ", receive ", recv_counts[r], " elements) exceeds MPI's INT_MAX"));
    }
    sc[r] = static_cast<int>(su);
    rc[r] = static_cast<int>(ru);
    sd[r] = static_cast<int>(soff);
    rd[r] = static_cast<int>(roff);
    soff += su;
    roff += ru;
  }
  const int64_t block = kernels::Info(in.type).block_elems;
  if (out.type != in.type || soff * block > in.numel() || roff * block > out.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("all-to-all-v: sends ", soff * block, " of ",
                                                   in.numel(), " elements, receives ", roff * block,
                                                   " into ", out.numel(), " (types must match)"));
  }
  absl::StatusOr<MPI_Datatype> unit = Unit(in.type);
  if (!unit.ok()) return unit.status();
  stats_.Count(CollectiveKind::kAllToAllV, *kernels::BytesFor(in.type, soff * block));
  const std::string what = Describe(CollectiveKind::kAllToAllV, soff * block, in.type);
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s = Mpi(MPI_Ialltoallv(in.data, sc.data(), sd.data(), *unit, out.data, rc.data(),
                                          rd.data(), *unit, comm_, &req),
                           what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::Gather(Tensor out, ConstTensor in, int root) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(in, CollectiveKind::kGather); !s.ok()) return s;
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(absl::StrCat("gather: root ", root, " of ", size_, " ranks"));
  }
  if (rank_ == root) {
    if (absl::Status s = CheckTensor(out, CollectiveKind::kGather); !s.ok()) return s;
    if (out.type != in.type || out.numel() < in.numel() * size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("gather: out holds ", out.numel(), " ", kernels::Name(out.type), ", needs ",
                       in.numel() * size_, " ", kernels::Name(in.type)));
    }
  }
  absl::StatusOr<MPI_Datatype> unit = Unit(in.type);
  if (!unit.ok()) return unit.status();
  stats_.Count(CollectiveKind::kGather, Bytes(in));
  const std::string what = absl::StrCat(Describe(CollectiveKind::kGather, in.numel(), in.type),
                                        " to rank ", root);
  const int n = static_cast<int>(Units(in.type, in.numel()));
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s = Mpi(MPI_Igather(in.data, n, *unit, rank_ == root ? out.data : nullptr, n,
                                       *unit, root, comm_, &req),
                           what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::Broadcast(Tensor data, int root) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(data, CollectiveKind::kBroadcast); !s.ok()) return s;
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast: root ", root, " of ", size_, " ranks"));
  }
  absl::StatusOr<MPI_Datatype> unit = Unit(data.type);
  if (!unit.ok()) return unit.status();
  stats_.Count(CollectiveKind::kBroadcast, Bytes(data));
  const std::string what = absl::StrCat(
      Describe(CollectiveKind::kBroadcast, data.numel(), data.type), " from rank ", root);
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s = Mpi(MPI_Ibcast(data.data, static_cast<int>(Units(data.type, data.numel())),
                                      *unit, root, comm_, &req),
                           what);
      !s.ok()) {
    return s;
  }
  return Complete(&req, 1, what);
}

absl::Status MpiCommunicator::Barrier() {
  if (absl::Status s = Usable(); !s.ok()) return s;
  stats_.Count(CollectiveKind::kBarrier, 0);
  MPI_Request req = MPI_REQUEST_NULL;
  if (absl::Status s = Mpi(MPI_Ibarrier(comm_, &req), "barrier"); !s.ok()) return s;
  return Complete(&req, 1, "barrier");
}

namespace {

class MpiExchange final : public PendingSendRecv {
 public:
  MpiExchange(MpiCommunicator* comm, std::string what) : comm_(comm), what_(std::move(what)) {}
  ~MpiExchange() override {
    if (!waited_) Wait().IgnoreError();
  }
  absl::Status Wait() override {
    waited_ = true;
    return comm_->Complete(reqs_, 2, what_);
  }
  MPI_Request reqs_[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  bool waited_ = false;

 private:
  MpiCommunicator* comm_;  // not owned; outlives the exchange
  std::string what_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingSendRecv>> MpiCommunicator::StartSendRecv(ConstTensor send,
                                                                                int dst,
                                                                                Tensor recv,
                                                                                int src) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (absl::Status s = CheckTensor(send, CollectiveKind::kSend); !s.ok()) return s;
  if (absl::Status s = CheckTensor(recv, CollectiveKind::kRecv); !s.ok()) return s;
  if (dst < 0 || dst >= size_ || src < 0 || src >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("send/recv: peers dst ", dst, ", src ", src, " outside ", size_, " ranks"));
  }
  // Both sides in bytes, so that a size mismatch is an MPI truncation error, not a hang.
  if (Bytes(send) > INT_MAX || Bytes(recv) > INT_MAX) {
    return absl::InvalidArgumentError("send/recv: more than INT_MAX bytes");
  }
  stats_.Count(CollectiveKind::kSend, Bytes(send));
  stats_.Count(CollectiveKind::kRecv, Bytes(recv));
  auto ex = std::make_unique<MpiExchange>(
      this, absl::StrCat("send of ", Bytes(send), " bytes to rank ", dst, " and recv of ",
                         Bytes(recv), " bytes from rank ", src));
  // Post the receive first so that a self-exchange (dst == src == rank) matches at once.
  if (absl::Status s = Mpi(MPI_Irecv(recv.data, static_cast<int>(Bytes(recv)), MPI_BYTE, src,
                                     kSendRecvTag, comm_, &ex->reqs_[1]),
                           "MPI_Irecv");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Mpi(MPI_Isend(send.data, static_cast<int>(Bytes(send)), MPI_BYTE, dst,
                                     kSendRecvTag, comm_, &ex->reqs_[0]),
                           "MPI_Isend");
      !s.ok()) {
    ex->waited_ = true;  // the communicator is broken; do not poll the posted receive
    return s;
  }
  return ex;
}

// ---- Topology groups ----

absl::StatusOr<MpiGroups> SplitForTopology(MPI_Comm world, const Topology& topo,
                                           absl::Duration timeout) {
  int rank = 0, size = 0;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  if (size != topo.world()) {
    return absl::InvalidArgumentError(absl::StrCat("MPI world has ", size,
                                                   " ranks, topology cp=", topo.cp,
                                                   " × tp=", topo.tp, " needs ", topo.world()));
  }
  MpiGroups groups;
  for (GroupKind k : {GroupKind::kTp, GroupKind::kCp, GroupKind::kEp, GroupKind::kMoeTp}) {
    MPI_Comm split = MPI_COMM_NULL;
    if (int rc =
            MPI_Comm_split(world, topo.group_index(k, rank), topo.rank_in_group(k, rank), &split);
        rc != MPI_SUCCESS) {
      return absl::UnavailableError(
          absl::StrCat("MPI_Comm_split for the ", GroupName(k), " groups: ", ErrorString(rc)));
    }
    absl::StatusOr<std::unique_ptr<MpiCommunicator>> c =
        MpiCommunicator::Create(split, timeout, absl::StrCat(GroupName(k), " group"));
    MPI_Comm_free(&split);
    if (!c.ok()) return c.status();
    switch (k) {
      case GroupKind::kTp:
        groups.tp = *std::move(c);
        break;
      case GroupKind::kCp:
        groups.cp = *std::move(c);
        break;
      case GroupKind::kEp:
        groups.ep = *std::move(c);
        break;
      case GroupKind::kMoeTp:
        groups.moe_tp = *std::move(c);
        break;
    }
  }
  return groups;
}

}  // namespace tessera::parallel
