// The coordinator: the public tessera.v1.Inference service in front of the replicas of
// one model, and the Replica service that their leaders dial.
//
// A Generate request is checked and tokenized here (convert.h), admitted while fewer than
// `max_inflight` requests are open (else RESOURCE_EXHAUSTED at once), and routed to the
// replica with the least outstanding tokens (prompt plus the tokens it may still produce,
// over the requests sent to it), unless its session key is pinned to a replica that is
// still connected. Events come back on the replica's stream; the coordinator detokenizes
// (whole UTF-8 only), matches stop strings, and streams them to the client. However the
// client's stream ends (cancellation, Abort, the deadline, a stop string), a guard sends
// the replica a Cancel, which frees the request's KV at the replica's next step. The
// deadline also travels with the request: a replica drops a request whose deadline passes
// in its queue before prefill.
//
// A replica whose stream drops is removed from routing; its open requests end with an
// in-band error event (UNAVAILABLE, retryable) and that status.
//
// Thread-safe: gRPC's threads call it; it never touches MPI.
#pragma once

#include <cstdint>
#include <memory>

#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "rpc/convert.h"
#include "rpc/model_identity.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tessera::rpc {

struct CoordinatorOptions {
  int64_t max_inflight = 256;  // requests open at once (queued at replicas or running)
  RequestLimits limits = {};
};

class Coordinator {
 public:
  // `tok` must outlive the coordinator.
  Coordinator(ModelIdentity model, const tokenizer::Tokenizer& tok, CoordinatorOptions options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Adds the Inference and Replica services, health, reflection and the parse-error
  // interceptor (parse_errors.h) to `builder`. Call
  // grpc::EnableDefaultHealthCheckService(true) before making the builder.
  void AddServices(grpc::ServerBuilder& builder);
  // After BuildAndStart: health ("" and the model's name) follows the replicas.
  void Started(grpc::Server* server);
  // Ends the replicas' streams and every open request (UNAVAILABLE), so that the server
  // can shut down.
  void Shutdown();

  struct State;  // coordinator.cc

 private:
  class InferenceImpl;
  class ReplicaImpl;
  std::unique_ptr<State> state_;
  std::unique_ptr<InferenceImpl> inference_;
  std::unique_ptr<ReplicaImpl> replica_;
};

}  // namespace tessera::rpc
