// The one layer where a public request becomes a domain request: every field is checked
// here, and a bad one is INVALID_ARGUMENT naming the field, its value and the limit
// ("sampling.top_p: 1.5 is outside (0, 1]"); NOT_FOUND for a model not served here. The
// prompt is tokenized here too (the coordinator holds the tokenizer, replicas get ids).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rpc/model_identity.h"
#include "runtime/sampling/sampler.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tessera/v1/inference.pb.h"

namespace tessera::rpc {

struct RequestLimits {
  int32_t default_max_tokens = 128;  // when max_tokens is unset (capped by the context)
  size_t max_stops = 16;
  size_t max_stop_bytes = 256;
  size_t max_stop_token_ids = 64;
  int32_t max_logprobs = 20;
  size_t max_id_bytes = 128;  // request_id and session_key
  size_t max_messages = 1024;
};

struct GenerateSpec {
  std::vector<int32_t> prompt;
  SamplingParams sampling;  // max_new_tokens and stop_tokens (EOS unless ignore_eos) set
  std::vector<std::string> stops;
  int32_t top_logprobs = -1;  // -1: no logprobs
  std::string request_id, session_key;
};

absl::StatusOr<GenerateSpec> ToGenerateSpec(const v1::GenerateRequest& request,
                                            const ModelIdentity& model,
                                            const tokenizer::Tokenizer& tok,
                                            const RequestLimits& limits = {});

// `requested` names the model this server serves (empty: the only one), else NOT_FOUND.
absl::Status CheckModel(const std::string& requested, const ModelIdentity& model);

// Token ids of a Tokenize request (text or chat), checked like Generate's input.
absl::StatusOr<std::vector<int32_t>> TokenizeInput(const v1::TokenizeRequest& request,
                                                   const ModelIdentity& model,
                                                   const tokenizer::Tokenizer& tok,
                                                   const RequestLimits& limits = {});

}  // namespace tessera::rpc
