#include "runtime/serving/stop_strings.h"

#include <gtest/gtest.h>

namespace tessera::serving {
namespace {

TEST(StopStringsTest, MatchesAcrossPiecesAndCutsBeforeTheStop) {
  auto s = StopStrings::Create({"\n\nUser:", "###"});
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->Append("Hello"));
  EXPECT_FALSE(s->Append(" there\n"));
  EXPECT_EQ(s->stable(), 12u - 7 + 1);  // the last 6 bytes could begin "\n\nUser:"
  EXPECT_FALSE(s->Append("\nUs"));
  EXPECT_TRUE(s->Append("er: more"));
  EXPECT_EQ(s->text(), "Hello there");
  EXPECT_EQ(s->stable(), s->text().size());
  EXPECT_TRUE(s->Append("ignored"));
  EXPECT_EQ(s->text(), "Hello there");
}

TEST(StopStringsTest, EarliestStopWinsAndNoStopsNeverEnds) {
  auto s = StopStrings::Create({"cd", "b"});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Append("abcd"));
  EXPECT_EQ(s->text(), "a");
  EXPECT_EQ(s->matched(), "b");
  auto none = StopStrings::Create({});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->Append("anything at all"));
  EXPECT_EQ(none->matched(), "");
  EXPECT_EQ(none->stable(), 15u);
}

TEST(StopStringsTest, EmptyStopIsRefused) {
  auto s = StopStrings::Create({"x", ""});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(), "stop[1] is an empty string");
}

}  // namespace
}  // namespace tessera::serving
