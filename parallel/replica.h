// Joining a replica: the process's place in one MPI world (one model replica, DESIGN §1),
// its Topology and the communicators of its groups. Hides MPI from callers (only parallel/
// includes MPI).
//
// A process started by mpirun (Open MPI's OMPI_COMM_WORLD_SIZE or PMIx's PMIX_RANK in the
// environment) joins the MPI world; one started directly is a world of one, with one-rank
// communicators and no MPI at all. Not thread-safe; one per process, destroyed last.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include "parallel/topology.h"

namespace tessera::parallel {

class Replica {
 public:
  // Checks the layout against the model (world = cp × tp; see Topology::Make) before any
  // group is built; `timeout` bounds every collective.
  static absl::StatusOr<std::unique_ptr<Replica>> Join(int* argc, char*** argv, int tp, int ep,
                                                       const ModelShape& model,
                                                       absl::Duration timeout);
  ~Replica();

  int rank() const { return rank_; }
  int world() const { return topology_.world(); }
  const Topology& topology() const { return topology_; }
  Communicator* tp() const { return tp_.get(); }
  Communicator* ep() const { return ep_.get(); }
  Communicator* world_comm() const { return world_.get(); }
  // "rank 1/4: tp 1/2 (ranks 0,1), ep 0/2 (ranks 1,3), pid 4242" for start lines.
  std::string Describe() const;

 private:
  Replica() = default;
  struct Mpi;  // MPI session and groups, defined where MPI is included

  int rank_ = 0;
  Topology topology_;
  std::unique_ptr<Mpi> mpi_;  // null for a world of one
  std::unique_ptr<Communicator> world_, tp_, ep_;
};

}  // namespace tessera::parallel
