// Replays files through a fuzz target's LLVMFuzzerTestOneInput in an ordinary build (no
// libFuzzer): replay DIR_OR_FILE... runs every regular file below each argument, in sorted
// order, and fails if an argument is missing or no file was run at all. A crash is the test
// failing.
//
// Each input runs on a thread with a 1 MiB stack. An ordinary build's small frames let an
// unbounded recursion that overflows the fuzz build's 8 MiB stack (sanitizer frames are
// several times larger) pass on the main thread; a reproducer kept small must fail here too.
// No parser has a legitimate reason to need more.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <pthread.h>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr size_t kStackBytes = 1 << 20;

void* RunOne(void* arg) {
  const auto* bytes = static_cast<const std::vector<char>*>(arg);
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
  return nullptr;
}

bool RunOnSmallStack(const std::vector<char>& bytes) {
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, kStackBytes) != 0 ||
      pthread_create(&thread, &attr, RunOne, const_cast<std::vector<char>*>(&bytes)) != 0) {
    return false;
  }
  pthread_attr_destroy(&attr);
  return pthread_join(thread, nullptr) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else if (fs::is_directory(arg, ec)) {
      // A folder with no inputs yet (no regressions) is fine; a missing one is not.
      for (const auto& e : fs::recursive_directory_iterator(arg, ec)) {
        // Dot files (.gitkeep) hold folders in git; they are not inputs.
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') {
          files.push_back(e.path());
        }
      }
    } else {
      std::fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no input files\n");
    return 2;
  }
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), bytes.size());
    if (!RunOnSmallStack(bytes)) {
      std::fprintf(stderr, "replay: could not start a thread\n");
      return 2;
    }
  }
  std::fprintf(stderr, "replay: %zu inputs ran\n", files.size());
  return 0;
}
