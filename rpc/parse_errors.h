// A request that protobuf cannot parse (most often: a string field holding invalid UTF-8,
// which proto3 refuses) would reach the client as INTERNAL with no message. This server
// interceptor turns it into INVALID_ARGUMENT naming the field (from protobuf's own parse
// error, caught on the parsing thread) or, failing that, the likely causes.
#pragma once

#include <memory>
#include <vector>

#include "grpcpp/support/server_interceptor.h"

namespace tessera::rpc {

// Installs the protobuf log handler that remembers parse errors (once per process), and
// returns the interceptor factories for ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
ParseErrorInterceptors();

}  // namespace tessera::rpc
