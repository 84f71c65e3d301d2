// A small command-line parser for the tessera subcommands: each declares its flags, and
// anything undeclared, a missing value or a malformed number is an error with usage.
#pragma once

#include <cmath>
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

// `text` as a number for flag `name`: InvalidArgument naming the flag if it is not a
// number, is not finite, or lies outside [min, max].
template <typename T>
absl::StatusOr<T> ParseNumber(const std::string& name, const std::string& text, T min, T max) {
  T x;
  bool ok;
  if constexpr (std::is_same_v<T, float>) {
    ok = absl::SimpleAtof(text, &x);
  } else if constexpr (std::is_same_v<T, double>) {
    ok = absl::SimpleAtod(text, &x);
  } else {
    ok = absl::SimpleAtoi(text, &x);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(name, ": '", text, "' is not a number"));
  if constexpr (std::is_floating_point_v<T>) {
    // SimpleAtof/SimpleAtod take "nan" and "inf", and turns "1e99" into inf.
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": '", text, "' is not finite"));
    }
  }
  if (!(x >= min && x <= max)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", text, " is out of range [", min, ", ", max, "]"));
  }
  return x;
}

class Args {
 public:
  // Parses argv[first..]; "--" ends flags.
  static absl::StatusOr<Args> Parse(const std::vector<FlagSpec>& specs, int argc, char** argv,
                                    int first);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  // Parses flag `name` into *out if it was given (floats for float, integers otherwise);
  // leaves *out alone if absent; errors as ParseNumber's.
  template <typename T>
  absl::Status GetNumber(const std::string& name, T* out, T min, T max) const {
    const std::optional<std::string> v = Get(name);
    if (!v) return absl::OkStatus();
    absl::StatusOr<T> x = ParseNumber(name, *v, min, max);
    if (!x.ok()) return x.status();
    *out = *x;
    return absl::OkStatus();
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;  // keyed by long name
  std::vector<std::string> positional_;
};

// "  -m, --model VALUE   help" lines for a usage message.
std::string FlagHelp(const std::vector<FlagSpec>& specs);

}  // namespace tessera::cli
