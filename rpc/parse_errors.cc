#include "rpc/parse_errors.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"

namespace tessera::rpc {
namespace {

namespace pb = google::protobuf;

// The field protobuf last refused while parsing on this thread ("tessera.v1.GenerateRequest.text").
thread_local std::string g_bad_field;

void OnProtobufLog(pb::LogLevel level, const char* file, int line, const std::string& message) {
  constexpr const char kUtf8[] = "contains invalid UTF-8";
  const size_t open = message.find("String field '");
  if (message.find(kUtf8) != std::string::npos && open != std::string::npos) {
    const size_t begin = open + 14, end = message.find('\'', begin);
    if (end != std::string::npos) {
      g_bad_field = message.substr(begin, end - begin);
      return;  // the client is told; no need to log every bad request
    }
  }
  std::fprintf(stderr, "[libprotobuf %s:%d] %s\n", file, line, message.c_str());
}

class ParseErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    using grpc::experimental::InterceptionHookPoints;
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status s = m->GetSendStatus();
      // Every status our handlers return carries a message; an empty INTERNAL is gRPC's
      // own "the request did not parse".
      if (s.error_code() == grpc::StatusCode::INTERNAL && s.error_message().empty()) {
        std::string field;
        field.swap(g_bad_field);
        m->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            field.empty()
                ? absl::StrCat(method_, ": the request does not parse (a string field holding "
                                        "invalid UTF-8, or bytes that are not this request)")
                : absl::StrCat(field, ": not valid UTF-8 (the request does not parse)")));
      }
    }
    m->Proceed();
  }

 private:
  const std::string method_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseErrorInterceptor(info->method() ? info->method() : "");
  }
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
ParseErrorInterceptors() {
  static std::once_flag once;
  std::call_once(once, [] { pb::SetLogHandler(&OnProtobufLog); });
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<Factory>());
  return out;
}

}  // namespace tessera::rpc
