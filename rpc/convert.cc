#include "rpc/convert.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/prompt.h"
#include "runtime/tokenizer/unicode.h"

namespace tessera::rpc {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// A short, printable rendering of a client's string for an error message.
std::string Quote(const std::string& s) {
  constexpr size_t kShown = 40;
  std::string shown = absl::CHexEscape(s.substr(0, kShown));
  return absl::StrCat("\"", shown, s.size() > kShown ? "...\"" : "\"");
}

absl::Status CheckText(const std::string& field, const std::string& text) {
  if (!tokenizer::IsValidUtf8(text)) return Bad(field, "is not valid UTF-8");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<tokenizer::ChatMessage>> ChatMessages(const v1::Chat& chat,
                                                                 const RequestLimits& limits) {
  if (chat.messages().empty()) return Bad("chat.messages", "is empty");
  if (static_cast<size_t>(chat.messages_size()) > limits.max_messages) {
    return Bad("chat.messages", absl::StrCat(chat.messages_size(), " messages, more than ",
                                             limits.max_messages));
  }
  std::vector<tokenizer::ChatMessage> out;
  for (int i = 0; i < chat.messages_size(); ++i) {
    const v1::ChatMessage& m = chat.messages(i);
    const std::string field = absl::StrCat("chat.messages[", i, "]");
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      return Bad(field + ".role",
                 absl::StrCat(Quote(m.role()), " is not one of system, user, assistant"));
    }
    if (absl::Status s = CheckText(field + ".content", m.content()); !s.ok()) return s;
    out.push_back({m.role(), m.content()});
  }
  return out;
}

absl::Status CheckFloat(const char* field, float x, bool ok, const char* range) {
  if (std::isfinite(x) && ok) return absl::OkStatus();
  return Bad(field, absl::StrCat(x, " is outside ", range));
}

absl::Status CheckId(const char* field, const std::string& id, const RequestLimits& limits) {
  if (id.size() > limits.max_id_bytes) {
    return Bad(field, absl::StrCat(id.size(), " bytes, more than ", limits.max_id_bytes));
  }
  return CheckText(field, id);
}

}  // namespace

absl::Status CheckModel(const std::string& requested, const ModelIdentity& model) {
  if (requested.empty() || requested == model.name) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model ", Quote(requested),
                                          " is not served here (serving \"", model.name, "\")"));
}

absl::StatusOr<std::vector<int32_t>> TokenizeInput(const v1::TokenizeRequest& request,
                                                   const ModelIdentity& model,
                                                   const tokenizer::Tokenizer& tok,
                                                   const RequestLimits& limits) {
  if (absl::Status s = CheckModel(request.model(), model); !s.ok()) return s;
  switch (request.input_case()) {
    case v1::TokenizeRequest::kText:
      if (absl::Status s = CheckText("text", request.text()); !s.ok()) return s;
      return tokenizer::EncodePrompt(tok, request.text(), /*chat=*/false, /*parse_special=*/false);
    case v1::TokenizeRequest::kChat: {
      absl::StatusOr<std::vector<tokenizer::ChatMessage>> msgs = ChatMessages(request.chat(), limits);
      if (!msgs.ok()) return msgs.status();
      return tokenizer::EncodeMessages(tok, *msgs, /*parse_special=*/false);
    }
    case v1::TokenizeRequest::INPUT_NOT_SET: break;
  }
  return Bad("input", "give one of text and chat");
}

absl::StatusOr<GenerateSpec> ToGenerateSpec(const v1::GenerateRequest& r,
                                            const ModelIdentity& model,
                                            const tokenizer::Tokenizer& tok,
                                            const RequestLimits& limits) {
  if (absl::Status s = CheckModel(r.model(), model); !s.ok()) return s;
  GenerateSpec spec;
  for (absl::Status s : {CheckId("request_id", r.request_id(), limits),
                         CheckId("session_key", r.session_key(), limits)}) {
    if (!s.ok()) return s;
  }
  spec.request_id = r.request_id();
  spec.session_key = r.session_key();
  // The input.
  absl::StatusOr<std::vector<int32_t>> prompt;
  switch (r.input_case()) {
    case v1::GenerateRequest::kText:
      if (r.text().empty()) return Bad("text", "is empty");
      if (absl::Status s = CheckText("text", r.text()); !s.ok()) return s;
      prompt = tokenizer::EncodePrompt(tok, r.text(), /*chat=*/false, /*parse_special=*/false);
      break;
    case v1::GenerateRequest::kChat: {
      absl::StatusOr<std::vector<tokenizer::ChatMessage>> msgs = ChatMessages(r.chat(), limits);
      if (!msgs.ok()) return msgs.status();
      prompt = tokenizer::EncodeMessages(tok, *msgs, /*parse_special=*/false);
      break;
    }
    case v1::GenerateRequest::kTokenIds:
      if (r.token_ids().ids().empty()) return Bad("token_ids.ids", "is empty");
      for (int i = 0; i < r.token_ids().ids_size(); ++i) {
        const int32_t id = r.token_ids().ids(i);
        if (id < 0 || id >= model.vocab) {
          return Bad(absl::StrCat("token_ids.ids[", i, "]"),
                     absl::StrCat(id, " is outside the vocabulary [0, ", model.vocab, ")"));
        }
      }
      prompt = std::vector<int32_t>(r.token_ids().ids().begin(), r.token_ids().ids().end());
      break;
    case v1::GenerateRequest::INPUT_NOT_SET:
      return Bad("input", "give one of text, chat and token_ids");
  }
  if (!prompt.ok()) return absl::InvalidArgumentError(prompt.status().message());
  spec.prompt = *std::move(prompt);
  const int64_t n = static_cast<int64_t>(spec.prompt.size());
  if (n == 0) return Bad("input", "the prompt has no tokens");
  if (n >= model.context) {
    return Bad("input", absl::StrCat("the prompt has ", n, " tokens; the context holds ",
                                     model.context, " (prompt and at least one new token)"));
  }
  // Limits of the output.
  SamplingParams& sp = spec.sampling;
  if (r.has_max_tokens()) {
    const int64_t m = r.max_tokens();
    if (m < 1) return Bad("max_tokens", absl::StrCat(m, " is below 1"));
    if (n + m > model.context) {
      return Bad("max_tokens", absl::StrCat(m, " with a prompt of ", n,
                                            " tokens exceeds the context of ", model.context));
    }
    sp.max_new_tokens = static_cast<int32_t>(m);
  } else {
    sp.max_new_tokens = static_cast<int32_t>(
        std::min<int64_t>(limits.default_max_tokens, model.context - n));
  }
  // Sampling.
  const v1::SamplingParams& s = r.sampling();
  if (s.has_temperature()) sp.temperature = s.temperature();
  if (s.has_top_k()) sp.top_k = s.top_k();
  if (s.has_top_p()) sp.top_p = s.top_p();
  if (s.has_min_p()) sp.min_p = s.min_p();
  if (s.has_repetition_penalty()) sp.repetition_penalty = s.repetition_penalty();
  if (s.has_seed()) sp.seed = s.seed();
  for (absl::Status st :
       {CheckFloat("sampling.temperature", sp.temperature, sp.temperature >= 0, "[0, inf)"),
        sp.top_k >= 0 ? absl::OkStatus()
                      : Bad("sampling.top_k", absl::StrCat(sp.top_k, " is below 0")),
        CheckFloat("sampling.top_p", sp.top_p, sp.top_p > 0 && sp.top_p <= 1, "(0, 1]"),
        CheckFloat("sampling.min_p", sp.min_p, sp.min_p >= 0 && sp.min_p < 1, "[0, 1)"),
        CheckFloat("sampling.repetition_penalty", sp.repetition_penalty,
                   sp.repetition_penalty > 0, "(0, inf)")}) {
    if (!st.ok()) return st;
  }
  // Stops.
  if (static_cast<size_t>(r.stop_size()) > limits.max_stops) {
    return Bad("stop", absl::StrCat(r.stop_size(), " strings, more than ", limits.max_stops));
  }
  for (int i = 0; i < r.stop_size(); ++i) {
    const std::string field = absl::StrCat("stop[", i, "]");
    const std::string& st = r.stop(i);
    if (st.empty()) return Bad(field, "is empty");
    if (st.size() > limits.max_stop_bytes) {
      return Bad(field, absl::StrCat(st.size(), " bytes, more than ", limits.max_stop_bytes));
    }
    if (absl::Status e = CheckText(field, st); !e.ok()) return e;
    spec.stops.push_back(st);
  }
  if (static_cast<size_t>(r.stop_token_ids_size()) > limits.max_stop_token_ids) {
    return Bad("stop_token_ids", absl::StrCat(r.stop_token_ids_size(), " ids, more than ",
                                              limits.max_stop_token_ids));
  }
  for (int i = 0; i < r.stop_token_ids_size(); ++i) {
    const int32_t id = r.stop_token_ids(i);
    if (id < 0 || id >= model.vocab) {
      return Bad(absl::StrCat("stop_token_ids[", i, "]"),
                 absl::StrCat(id, " is outside the vocabulary [0, ", model.vocab, ")"));
    }
    sp.stop_tokens.push_back(id);
  }
  if (!r.ignore_eos()) tokenizer::AppendEndIds(tok, sp.stop_tokens);
  if (r.has_logprobs()) {
    if (r.logprobs() < 0 || r.logprobs() > limits.max_logprobs) {
      return Bad("logprobs", absl::StrCat(r.logprobs(), " is outside [0, ", limits.max_logprobs, "]"));
    }
    spec.top_logprobs = r.logprobs();
  }
  return spec;
}

}  // namespace tessera::rpc
