#include "tools/cli/args.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tessera::cli {

absl::StatusOr<Args> Args::Parse(const std::vector<FlagSpec>& specs, int argc, char** argv,
                                 int first) {
  Args args;
  bool flags_done = false;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    std::optional<std::string> inline_value;
    if (const size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (a == s.name || (!s.short_name.empty() && a == s.short_name)) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", a));
    if (!spec->takes_value) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat(a, " takes no value"));
      args.values_[spec->name] = "";
      continue;
    }
    if (inline_value) {
      args.values_[spec->name] = *inline_value;
    } else if (i + 1 < argc) {
      args.values_[spec->name] = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(a, " needs a value"));
    }
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string FlagHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string left = s.short_name.empty() ? absl::StrCat("    ", s.name)
                                            : absl::StrCat(s.short_name, ", ", s.name);
    if (s.takes_value) absl::StrAppend(&left, " VALUE");
    absl::StrAppend(&out, absl::StrFormat("  %-24s %s\n", left, s.help));
  }
  return out;
}

}  // namespace tessera::cli
