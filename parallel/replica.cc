#include "parallel/replica.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "parallel/mpi_communicator.h"

namespace tessera::parallel {

struct Replica::Mpi {
  std::unique_ptr<MpiSession> session;
};

Replica::~Replica() {
  // Communicators before the session that finalizes MPI.
  tp_.reset();
  ep_.reset();
  world_.reset();
  mpi_.reset();
}

absl::StatusOr<std::unique_ptr<Replica>> Replica::Join(int* argc, char*** argv, int tp, int ep,
                                                       const ModelShape& model,
                                                       absl::Duration timeout) {
  std::unique_ptr<Replica> r(new Replica());
  const bool under_mpirun =
      std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
  int world = 1;
  if (under_mpirun) {
    r->mpi_ = std::make_unique<Mpi>();
    auto session = MpiSession::Init(argc, argv);
    if (!session.ok()) return session.status();
    r->mpi_->session = std::move(*session);
    world = r->mpi_->session->world_size();
    r->rank_ = r->mpi_->session->world_rank();
  }
  if (tp < 1 || ep < 1 || world % tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tp ", tp, " must divide the ", world, " processes of the replica",
        under_mpirun ? "" : " (start several with: mpirun -np N tessera ...)"));
  }
  auto topo = Topology::Make(world, tp, ep, world / tp, model);
  if (!topo.ok()) return topo.status();
  r->topology_ = *topo;
  if (!under_mpirun) {
    r->world_ = MakeSoloCommunicator();
    r->tp_ = MakeSoloCommunicator();
    r->ep_ = MakeSoloCommunicator();
    return r;
  }
  auto world_comm = MpiCommunicator::Create(MPI_COMM_WORLD, timeout, "world");
  if (!world_comm.ok()) return world_comm.status();
  r->world_ = std::move(*world_comm);
  auto groups = SplitForTopology(MPI_COMM_WORLD, r->topology_, timeout);
  if (!groups.ok()) return groups.status();
  r->tp_ = std::move(groups->tp);
  r->ep_ = std::move(groups->ep);
  return r;
}

std::string Replica::Describe() const {
  auto group = [&](GroupKind k) {
    return absl::StrCat(GroupName(k), " ", topology_.rank_in_group(k, rank_), "/",
                        topology_.group_size(k), " (ranks ",
                        absl::StrJoin(topology_.Group(k, rank_), ","), ")");
  };
  return absl::StrCat("rank ", rank_, "/", world(), ": ", group(GroupKind::kTp), ", ",
                      group(GroupKind::kEp), ", pid ", ::getpid());
}

}  // namespace tessera::parallel
