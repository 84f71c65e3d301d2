// tessera inspect MODEL [--json]: what a model file holds, and whether Tessera can run it.
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/buffer.h"
#include "parallel/communicator.h"
#include "runtime/engine/transformer.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/common.h"

namespace tessera::cli {
namespace {

using json = nlohmann::json;

const std::vector<FlagSpec> kFlags = {
    {"--json", "", false, "print one JSON object"},
    {"--metadata", "", false, "also list every GGUF metadata key (text output)"},
    {"--help", "-h", false, "show this help"},
};

json HyperParameters(const ModelSource& model) {
  ModelConfig c = *model.config();
  // A GGUF file that does not record its local-layer pattern or base runs with the
  // architecture's (Transformer::Load): show those.
  if (auto arch = FindArch(c.arch); arch.ok() && model.format() == ModelSource::Format::kGguf) {
    if (c.sliding_layers.empty() && (*arch)->gguf_sliding_pattern > 0) {
      c.sliding_layers = SlidingPattern(c.n_layers, (*arch)->gguf_sliding_pattern);
    }
    if (c.rope_local_theta == 0) c.rope_local_theta = (*arch)->gguf_local_rope_theta;
  }
  json j = {{"layers", c.n_layers},     {"hidden", c.hidden},
            {"heads", c.n_heads},       {"kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},   {"ffn", c.ffn},
            {"vocab", c.vocab},         {"context", c.context},
            {"rope_theta", c.rope_theta}, {"norm_eps", c.norm_eps},
            {"experts", c.n_experts},   {"experts_used", c.n_experts_used},
            {"tied_embeddings", c.tied_embeddings}};
  j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  if (!c.sliding_layers.empty()) {
    int64_t local = 0;
    for (uint8_t l : c.sliding_layers) local += l;
    j["local_layers"] = local;  // of `layers`, those the sliding window applies to
  }
  if (c.rope_local_theta > 0) j["rope_local_theta"] = c.rope_local_theta;
  if (c.query_scale > 0) j["query_pre_attn_scalar"] = c.query_scale;
  if (c.kv_lora_rank > 0) {  // latent attention: head_dim is the RoPE part
    j["kv_lora_rank"] = c.kv_lora_rank;
    j["q_lora_rank"] = c.q_lora_rank;
    j["qk_nope_head_dim"] = c.qk_nope_dim;
    j["v_head_dim"] = c.v_head_dim;
    // What the KV cache stores per token and layer: the latent and the shared RoPE key.
    j["kv_elements_per_token_per_layer"] = c.kv_lora_rank + c.head_dim;
  }
  if (c.n_experts > 0) {
    if (c.shared_expert_ffn > 0) j["shared_expert_ffn"] = c.shared_expert_ffn;
    if (c.dense_layers > 0) j["dense_layers"] = c.dense_layers;
    j["routing"] = c.routing;
    if (c.expert_groups > 1) {
      j["expert_groups"] = c.expert_groups;
      j["expert_groups_used"] = c.expert_groups_used;
    }
    if (c.routed_scale != 1.0) j["routed_scale"] = c.routed_scale;
  }
  return j;
}

json Describe(const ModelSource& model, const tokenizer::Tokenizer* tok,
              const absl::Status& tok_status) {
  json j;
  j["path"] = model.path();
  j["format"] = model.format() == ModelSource::Format::kGguf ? "gguf" : "huggingface";
  if (const ModelConfig* c = model.config()) {
    j["architecture"] = c->arch;
    j["name"] = c->name;
    j["hyperparameters"] = HyperParameters(model);
  } else {
    j["architecture"] = nullptr;
  }
  int64_t params = 0, bytes = 0;
  std::map<std::string, int64_t> by_type;
  json tensors = json::array();
  for (const TensorInfo* t : model.tensors()) {
    params += t->elements;
    bytes += t->bytes;
    by_type[std::string(kernels::Name(t->type))] += t->bytes;
    tensors.push_back({{"name", t->name},
                       {"shape", t->shape},
                       {"type", std::string(kernels::Name(t->type))},
                       {"bytes", t->bytes}});
  }
  j["parameters"] = params;
  j["tensor_bytes"] = bytes;
  j["bytes_by_type"] = by_type;
  j["tensors"] = std::move(tensors);
  if (const gguf::GgufFile* g = model.gguf()) {
    json meta = json::object();
    for (const auto& [key, value] : g->metadata()) meta[key] = value.ToString();
    j["gguf"] = {{"version", g->version()}, {"alignment", g->alignment()}, {"metadata", meta}};
  }
  if (tok != nullptr) {
    j["tokenizer"] = TokenizerSummary(*tok);
  } else {
    j["tokenizer"] = {{"error", std::string(tok_status.message())}};
  }
  return j;
}

// Whether `tessera generate` runs the model on one process, and if not why: the model is
// loaded for real (the reason is the loader's own words) when its tensors fit in half the
// free memory, else it is not checked; and its tokenizer must load and match the vocabulary.
void AddRunnable(json& j, const ModelSource& model, const tokenizer::Tokenizer* tok,
                 const absl::Status& tok_status) {
  auto set = [&](json runnable, const std::string& reason) {
    j["runnable"] = std::move(runnable);
    j["runnable_reason"] = reason;
  };
  if (model.config() == nullptr) return set(false, "the folder holds no model weights (tokenizer files only)");
  const int64_t bytes = j["tensor_bytes"].get<int64_t>(), free = kernels::AvailableMemoryBytes();
  if (bytes > free / 2) {
    return set(nullptr, absl::StrCat("not loaded to check: its ", bytes, " bytes of weights exceed half of the ",
                                     free, " bytes of free memory"));
  }
  auto solo = parallel::MakeSoloCommunicator();
  auto loaded = Transformer::Load(model, solo.get(), {});
  if (!loaded.ok()) return set(false, std::string(loaded.status().message()));
  if (tok == nullptr) return set(false, absl::StrCat("tokenizer: ", tok_status.message()));
  const absl::Status vocab = CheckTokenizerVocab((*loaded)->config(), *tok);
  set(vocab.ok(), std::string(vocab.message()));
}

std::string HumanBytes(int64_t b) {
  if (b >= (1 << 20)) return absl::StrFormat("%.1f MiB", b / 1048576.0);
  if (b >= 1024) return absl::StrFormat("%.1f KiB", b / 1024.0);
  return absl::StrCat(b, " B");
}

void PrintText(const json& j, bool with_metadata) {
  std::printf("model         %s (%s)\n", j["path"].get<std::string>().c_str(),
              j["format"].get<std::string>().c_str());
  if (!j["architecture"].is_null()) {
    std::printf("architecture  %s   name: %s\n", j["architecture"].get<std::string>().c_str(),
                j["name"].get<std::string>().c_str());
    std::string hp;
    for (const auto& [k, v] : j["hyperparameters"].items()) {
      absl::StrAppend(&hp, hp.empty() ? "" : ", ", k, "=", v.dump());
    }
    std::printf("hyper-params  %s\n", hp.c_str());
  }
  const int64_t params = j["parameters"];
  std::printf("parameters    %s (%.1f M), %s of tensor data in %zu tensors\n",
              absl::StrCat(params).c_str(), params / 1e6, HumanBytes(j["tensor_bytes"]).c_str(),
              j["tensors"].size());
  if (with_metadata && j.contains("gguf")) {
    std::printf("\nmetadata (GGUF v%d)\n", j["gguf"]["version"].get<int>());
    for (const auto& [k, v] : j["gguf"]["metadata"].items()) {
      std::printf("  %-44s %s\n", k.c_str(), v.get<std::string>().c_str());
    }
  }
  if (j["runnable"].is_boolean()) {
    std::printf("runnable      %s\n", j["runnable"].get<bool>()
                                          ? "yes"
                                          : ("no: " + j["runnable_reason"].get<std::string>()).c_str());
  } else {
    std::printf("runnable      %s\n", j["runnable_reason"].get<std::string>().c_str());
  }
  const json& t = j["tokenizer"];
  std::printf("\ntokenizer     ");
  if (t.contains("error")) {
    std::printf("ERROR: %s\n", t["error"].get<std::string>().c_str());
  } else {
    const std::string chat = t["chat_format"].is_null() ? "none"
                             : t["chat_format"] == "jinja"
                                 ? "the model's own template (Jinja)"
                                 : t["chat_format"].get<std::string>() + " (built in: the file has no template)";
    std::printf("%s, %d tokens (%d special), pre-tokenizer %s, chat format %s\n",
                t["kind"].get<std::string>().c_str(), t["vocab_size"].get<int>(),
                t["special_token_count"].get<int>(), t["pre_tokenizer"].get<std::string>().c_str(),
                chat.c_str());
    if (t.contains("chat_template_error") && !t["chat_template_error"].is_null()) {
      std::printf("  chat template ERROR: %s\n", t["chat_template_error"].get<std::string>().c_str());
    }
    for (const auto& [name, s] : t["special"].items()) {
      if (!s.is_null()) {
        std::printf("  %-4s %7d  %s\n", name.c_str(), s["id"].get<int>(),
                    DumpJson(s["text"]).c_str());
      }
    }
  }
  if (!j["tensors"].empty()) {
    std::printf("\n%-40s %-20s %-6s %12s\n", "tensor", "shape", "type", "bytes");
    for (const json& x : j["tensors"]) {
      std::printf("%-40s %-20s %-6s %12s\n", x["name"].get<std::string>().c_str(),
                  absl::StrCat("[", absl::StrJoin(x["shape"].get<std::vector<int64_t>>(), ", "), "]")
                      .c_str(),
                  x["type"].get<std::string>().c_str(),
                  absl::StrCat(x["bytes"].get<int64_t>()).c_str());
    }
  }
}

}  // namespace

int InspectMain(int argc, char** argv) {
  auto args = Args::Parse(kFlags, argc, argv, 0);
  if (!args.ok()) return Fail("inspect", args.status());
  if (args->Has("--help") || args->positional().size() != 1) {
    std::fprintf(args->Has("--help") ? stdout : stderr,
                 "usage: tessera inspect MODEL [--json] [--metadata]\n%s",
                 FlagHelp(kFlags).c_str());
    return args->Has("--help") ? 0 : 2;
  }
  auto model = ModelSource::Open(args->positional()[0]);
  if (!model.ok()) return Fail("inspect", model.status());
  auto tok = LoadTokenizer(**model);
  json j = Describe(**model, tok.ok() ? tok->get() : nullptr, tok.status());
  AddRunnable(j, **model, tok.ok() ? tok->get() : nullptr, tok.status());
  if (args->Has("--json")) {
    std::printf("%s\n", DumpJson(j, 2).c_str());
  } else {
    PrintText(j, args->Has("--metadata"));
  }
  return tok.ok() ? 0 : 1;
}

}  // namespace tessera::cli
