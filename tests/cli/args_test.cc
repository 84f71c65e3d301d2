#include "tools/cli/args.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tessera::cli {
namespace {

const std::vector<FlagSpec> kSpecs = {{"--timeout", "", true, ""}, {"--tp", "", true, ""}};

absl::StatusOr<Args> ParseArgs(std::vector<std::string> argv) {
  std::vector<char*> p;
  for (std::string& a : argv) p.push_back(a.data());
  return Args::Parse(kSpecs, static_cast<int>(p.size()), p.data(), 0);
}

// The error for `--timeout VALUE`, parsed as generate parses it.
absl::Status Timeout(const std::string& value, double* out) {
  auto args = ParseArgs({"--timeout", value});
  if (!args.ok()) return args.status();
  return args->GetNumber("--timeout", out, 1e-3, 86400.0);
}

TEST(Args, TimeoutOutsideItsRangeOrNotFiniteIsRefusedNamingTheFlag) {
  for (const char* bad : {"0", "-1", "-0.5", "1e-4", "86401", "inf", "-inf", "nan", "1e999"}) {
    double t = 30;
    const absl::Status s = Timeout(bad, &t);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--timeout"), std::string::npos) << s;
    EXPECT_EQ(t, 30) << bad;  // left alone
  }
  double t = 30;
  const absl::Status range = Timeout("0", &t);
  EXPECT_NE(range.message().find("out of range [0.001, 86400]"), std::string::npos) << range;
  EXPECT_NE(Timeout("nan", &t).message().find("'nan' is not finite"), std::string::npos);
  EXPECT_NE(Timeout("abc", &t).message().find("'abc' is not a number"), std::string::npos);
  ASSERT_TRUE(Timeout("2.5", &t).ok());
  EXPECT_EQ(t, 2.5);
}

TEST(Args, IntegerRangeAndAbsentFlag) {
  auto args = ParseArgs({"--tp", "0"});
  ASSERT_TRUE(args.ok());
  int tp = 1;
  const absl::Status s = args->GetNumber("--tp", &tp, 1, 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--tp: 0 is out of range [1, 64]"), std::string::npos) << s;
  double timeout = 30;
  EXPECT_TRUE(args->GetNumber("--timeout", &timeout, 1e-3, 86400.0).ok());  // absent
  EXPECT_EQ(timeout, 30);
  auto big = ParseNumber<int>("--threads", "99999999999", 1, 4096);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("--threads"), std::string::npos);
}

}  // namespace
}  // namespace tessera::cli
