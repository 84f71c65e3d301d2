// The tessera subcommands. Each takes the process arguments after the subcommand name,
// prints its result to stdout and errors to stderr, and returns the exit code.
#pragma once

namespace tessera::cli {

int InspectMain(int argc, char** argv);   // tessera inspect MODEL [--json]
int TokenizeMain(int argc, char** argv);  // tessera tokenize -m MODEL [--json] TEXT
int GenerateMain(int argc, char** argv);  // tessera generate -m MODEL -p PROMPT [...]
int BatchMain(int argc, char** argv);     // tessera batch -m MODEL --input IN --output OUT
int BenchMain(int argc, char** argv);     // tessera bench -m MODEL [-p N] [-n N] [-t 1,2]
int BenchServeMain(int argc, char** argv);  // tessera bench serve --server ADDR [...]
int ServeMain(int argc, char** argv);        // tessera serve -m MODEL [--listen ADDR]
int CoordinatorMain(int argc, char** argv);  // tessera coordinator -m MODEL --listen ADDR
int WorkerMain(int argc, char** argv);       // tessera worker -m MODEL --coordinator ADDR
int ClientMain(int argc, char** argv);       // tessera client generate|chat|... --server ADDR

}  // namespace tessera::cli
