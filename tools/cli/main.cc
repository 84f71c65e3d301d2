// tessera: one binary, one subcommand per task.
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/cli/commands.h"

namespace {

constexpr const char* kUsage = R"(tessera — distributed LLM inference

usage: tessera COMMAND [options]

commands:
  inspect MODEL [--json]           architecture, hyper-parameters, tensors, tokenizer
  tokenize -m MODEL [--json] TEXT  how the model's tokenizer cuts TEXT
  generate -m MODEL -p PROMPT      generate text (--chat, --json, sampling flags)
  batch -m MODEL -i IN -o OUT      run a JSONL file of requests through the scheduler
  bench -m MODEL                   prefill/decode tokens/s and memory bandwidth
  serve -m MODEL [--listen ADDR]   gRPC server: a coordinator and a replica in one process
  coordinator -m MODEL             gRPC coordinator (tokenizer only); workers dial it
  worker -m MODEL --coordinator A  a replica (rank 0 of an mpirun world) of a coordinator
  client CMD --server ADDR         gRPC client: generate, chat, tokenize, models, health

MODEL is a .gguf file, a Hugging Face directory (config.json + *.safetensors, or only
tokenizer.json), or an alias fetched by deploy/fetch-model.sh (smollm2-135m-instruct,
gemma3-270m-it). Run `tessera COMMAND --help` for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "inspect") return tessera::cli::InspectMain(argc - 2, argv + 2);
  if (cmd == "tokenize") return tessera::cli::TokenizeMain(argc - 2, argv + 2);
  if (cmd == "generate") return tessera::cli::GenerateMain(argc - 2, argv + 2);
  if (cmd == "batch") return tessera::cli::BatchMain(argc - 2, argv + 2);
  if (cmd == "bench") return tessera::cli::BenchMain(argc - 2, argv + 2);
  if (cmd == "serve") return tessera::cli::ServeMain(argc - 2, argv + 2);
  if (cmd == "coordinator") return tessera::cli::CoordinatorMain(argc - 2, argv + 2);
  if (cmd == "worker") return tessera::cli::WorkerMain(argc - 2, argv + 2);
  if (cmd == "client") return tessera::cli::ClientMain(argc - 2, argv + 2);
  std::fprintf(stderr, "tessera: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
