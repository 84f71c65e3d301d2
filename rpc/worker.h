// The leader's side of a replica served by a coordinator: rank 0 dials the coordinator,
// registers (protocol version, model identity, layout, KV capacity), then runs requests
// through its engine until the stream ends.
//
// Threads: the calling thread owns the engine and is the only one that touches MPI (the
// engine's collectives); one reader thread takes the coordinator's messages off the
// stream into a bounded inbox (when it is full the reader stops reading and gRPC's flow
// control holds the coordinator back). Each step: the inbox is drained (Submit -> the
// engine's queue, Cancel -> the engine), requests whose deadline passed are cancelled (one
// still queued never reaches prefill: its KV is never allocated), the engine steps, and
// one Events message (each request's new tokens and finish, and the replica's load) goes
// up the stream. An idle leader of several ranks keeps its workers alive with empty steps.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/channel.h"
#include "rpc/model_identity.h"
#include "runtime/engine/engine.h"

namespace tessera::rpc {

struct WorkerOptions {
  ModelIdentity model;
  int tensor_parallel = 1, expert_parallel = 1;
  std::string host;             // where this replica runs, for the coordinator's messages
  double keep_alive_s = 1.0;    // an idle leader's empty step at least this often
  size_t inbox = 4096;          // coordinator messages held before the reader waits
  // Called once the coordinator has accepted the registration, before the first request:
  // from then on requests routed to this model can reach the replica.
  std::function<void()> on_registered;
};

// Serves until the coordinator ends the stream (OK), `stop` becomes true (OK: open
// requests are cancelled), or the engine fails (its error). FAILED_PRECONDITION when the
// coordinator refuses the registration or closes the stream. `channel` should be connected
// (WaitForConnected) already: the registration waits for it to become ready. Prints the
// registration to stderr. The engine is left for the caller to shut down.
absl::Status ServeReplica(Engine& engine, std::shared_ptr<grpc::Channel> channel,
                          const WorkerOptions& options, const std::atomic<bool>& stop);

}  // namespace tessera::rpc
