// A small command-line parser for the tessera subcommands: each declares its flags, and
// anything undeclared, a missing value or a malformed number is an error with usage.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tessera::cli {

struct FlagSpec {
  std::string name;        // "--model"
  std::string short_name;  // "-m" or ""
  bool takes_value;
  std::string help;
};

class Args {
 public:
  // Parses argv[first..]; "--" ends flags.
  static absl::StatusOr<Args> Parse(const std::vector<FlagSpec>& specs, int argc, char** argv,
                                    int first);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  // Parses flag `name` into *out if it was given (floats for float, integers otherwise);
  // leaves *out alone if absent, InvalidArgument if it is not a number.
  template <typename T>
  absl::Status GetNumber(const std::string& name, T* out) const {
    const std::optional<std::string> v = Get(name);
    if (!v) return absl::OkStatus();
    bool ok;
    if constexpr (std::is_floating_point_v<T>) {
      ok = absl::SimpleAtof(*v, out);
    } else {
      ok = absl::SimpleAtoi(*v, out);
    }
    if (ok) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(name, ": '", *v, "' is not a number"));
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;  // keyed by long name
  std::vector<std::string> positional_;
};

// "  -m, --model VALUE   help" lines for a usage message.
std::string FlagHelp(const std::vector<FlagSpec>& specs);

}  // namespace tessera::cli
