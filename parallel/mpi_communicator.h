// Collectives over MPI for CPU tensors: what ranks of a replica use when there is no GPU
// (and what the dist tests launch with mpirun).
//
// Every collective is started with a non-blocking MPI call (MPI_Iallreduce, MPI_Iallgather,
// MPI_Ireduce_scatter_block, MPI_Ialltoallv, MPI_Ibcast, MPI_Ibarrier; MPI_Isend/Irecv for
// StartSendRecv) and polled with MPI_Test until it completes or the communicator's timeout
// passes, which gives DeadlineExceeded naming the collective, the group and its world
// ranks ("all-reduce of 2304 F32 elements on tp group (world ranks 0-2) did not complete
// within 5s: a peer is dead or stuck"). MPI errors are returned as Status
// (MPI_ERRORS_RETURN is set on the communicator), never abort the process.
//
// After a timeout or an MPI error the communicator is broken: every later call fails at once
// with the same code. The timed-out MPI request cannot be cancelled, so MPI may still write
// the buffers of that call; callers are expected to tear the process down (the engine
// exits the replica), not to free them and carry on.
//
// Counts: MPI takes int counts, so a payload above INT_MAX units (elements, or blocks of a
// quantized type) is refused with InvalidArgument rather than split.
//
// Thread-safety: MPI is initialised with MPI_THREAD_FUNNELED, so all communicators of a
// process are driven by the thread that called MpiSession::Init. Create, SplitForTopology
// and destruction are collective over the communicator's ranks and, being MPI set-up calls,
// have no timeout.
#pragma once

#include <mpi.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include "parallel/topology.h"

namespace tessera::parallel {

// MPI for the life of this object: MPI_Init_thread(MPI_THREAD_FUNNELED) on Init, and
// MPI_Finalize on destruction if this session was the one that initialised MPI, unless a
// communicator of this process saw a peer fail (MPI_Finalize would wait for the dead
// peer: seen to hang Open MPI 4.1's survivors; the process then exits without it). One
// per process; destroy every MpiCommunicator first.
class MpiSession {
 public:
  static absl::StatusOr<std::unique_ptr<MpiSession>> Init(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }

 private:
  MpiSession(bool owns, int rank, int size) : owns_(owns), world_rank_(rank), world_size_(size) {}
  bool owns_;
  int world_rank_, world_size_;
};

class MpiCommunicator final : public Communicator {
 public:
  // A communicator over a duplicate of `comm` (which the caller keeps owning); `name` labels
  // error messages ("tp group"). Collective over `comm`.
  static absl::StatusOr<std::unique_ptr<MpiCommunicator>> Create(MPI_Comm comm,
                                                                 absl::Duration timeout,
                                                                 std::string name = "world");
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status AllReduceSum(kernels::Tensor data) override;
  absl::Status AllGather(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status ReduceScatterSum(kernels::Tensor out, kernels::ConstTensor in) override;
  absl::Status AllToAllV(kernels::Tensor out, std::span<const int64_t> recv_counts,
                         kernels::ConstTensor in, std::span<const int64_t> send_counts) override;
  absl::Status Gather(kernels::Tensor out, kernels::ConstTensor in, int root) override;
  absl::Status Broadcast(kernels::Tensor data, int root) override;
  absl::Status Barrier() override;
  // The exchange must be waited for (or destroyed) before this communicator is.
  absl::StatusOr<std::unique_ptr<PendingSendRecv>> StartSendRecv(kernels::ConstTensor send, int dst,
                                                                 kernels::Tensor recv,
                                                                 int src) override;
  CollectiveStats stats() const override { return stats_; }

  // World ranks of this group, in group-rank order.
  const std::vector<int>& world_ranks() const { return world_ranks_; }
  // "tp group (world ranks 0-2)".
  const std::string& label() const { return label_; }

  // Polls `reqs` until all complete or the timeout passes. Public for PendingSendRecv.
  absl::Status Complete(MPI_Request* reqs, int n, const std::string& what);
  absl::Status WaitAll(MPI_Request* reqs, int n, const std::string& what);

 private:
  MpiCommunicator(MPI_Comm comm, absl::Duration timeout, std::string label, int rank, int size,
                  std::vector<int> world_ranks);
  absl::Status Usable() const;
  absl::Status Mpi(int rc, const std::string& what);  // an MPI return code as a Status
  // The MPI datatype of one storage unit of `type` (an element, or a block of a quantized
  // type), created on first use.
  absl::StatusOr<MPI_Datatype> Unit(kernels::DType type);

  // Immutable after construction.
  MPI_Comm comm_;  // owned (a duplicate)
  absl::Duration timeout_;
  std::string label_;
  int rank_, size_;
  std::vector<int> world_ranks_;

  // Used only by the driving thread.
  std::array<MPI_Datatype, kernels::kNumDTypes> units_{};  // by DType; MPI_DATATYPE_NULL until made
  absl::Status broken_;
  CollectiveStats stats_;
};

// One communicator per group kind of `topo` for this process's rank of `world`
// (world size must equal topo.world()); see topology.h for the groups.
struct MpiGroups {
  std::unique_ptr<MpiCommunicator> tp, cp, ep, moe_tp;
};
absl::StatusOr<MpiGroups> SplitForTopology(MPI_Comm world, const Topology& topo,
                                           absl::Duration timeout);

}  // namespace tessera::parallel
