#include "runtime/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

namespace tessera {
namespace {

SamplingParams Params(float temperature, uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  return p;
}

// One draw, which must succeed.
Sample Draw(Sampler& s, const std::vector<float>& logits, std::span<const int32_t> history = {}) {
  absl::StatusOr<Sample> x = s.Next(logits, history);
  EXPECT_TRUE(x.ok()) << x.status();
  return x.ok() ? *x : Sample{-1, 0};
}

// log(p) logits for a distribution, so softmax gives exactly p.
std::vector<float> LogitsOf(std::vector<double> p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

TEST(Sampler, GreedyTakesArgmaxAndReportsLogprob) {
  Sampler s(Params(0));
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  const Sample x = Draw(s, logits);
  EXPECT_EQ(x.id, 1);  // ties go to the lowest id
  const double z = std::exp(0.5) + 2 * std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(x.logprob, 2.0 - std::log(z), 1e-6);
}

TEST(Sampler, SameSeedSameTokens) {
  const std::vector<float> logits = LogitsOf({0.1, 0.2, 0.3, 0.4});
  Sampler a(Params(1.0f, 42)), b(Params(1.0f, 42)), c(Params(1.0f, 43));
  std::vector<int32_t> xa, xb, xc;
  for (int i = 0; i < 64; ++i) {
    xa.push_back(Draw(a, logits).id);
    xb.push_back(Draw(b, logits).id);
    xc.push_back(Draw(c, logits).id);
  }
  EXPECT_EQ(xa, xb);
  EXPECT_NE(xa, xc);
}

// Draw many samples and compare frequencies with the expected distribution.
std::map<int32_t, double> Frequencies(SamplingParams p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, double> f;
  for (int i = 0; i < n; ++i) f[Draw(s, logits).id] += 1.0 / n;
  return f;
}

TEST(Sampler, TemperatureOneFollowsTheDistribution) {
  auto f = Frequencies(Params(1.0f), LogitsOf({0.5, 0.3, 0.2}), 20000);
  EXPECT_NEAR(f[0], 0.5, 0.02);
  EXPECT_NEAR(f[1], 0.3, 0.02);
  EXPECT_NEAR(f[2], 0.2, 0.02);
}

TEST(Sampler, TopKTopPMinPCut) {
  const std::vector<float> logits = LogitsOf({0.5, 0.3, 0.15, 0.05});
  SamplingParams k = Params(1.0f);
  k.top_k = 2;  // {0, 1} renormalised: 0.625 / 0.375
  auto fk = Frequencies(k, logits, 20000);
  EXPECT_EQ(fk.count(2) + fk.count(3), 0u);
  EXPECT_NEAR(fk[0], 0.625, 0.02);

  SamplingParams p = Params(1.0f);
  p.top_p = 0.85f;  // 0.5 + 0.3 < 0.85 <= 0.95: keeps {0, 1, 2}
  auto fp = Frequencies(p, logits, 20000);
  EXPECT_EQ(fp.count(3), 0u);
  EXPECT_NEAR(fp[2], 0.15 / 0.95, 0.02);

  SamplingParams m = Params(1.0f);
  m.min_p = 0.5f;  // keeps tokens with p >= 0.25: {0, 1}
  auto fm = Frequencies(m, logits, 20000);
  EXPECT_EQ(fm.count(2) + fm.count(3), 0u);
  EXPECT_NEAR(fm[1], 0.375, 0.02);
}

TEST(Sampler, LowTemperatureSharpens) {
  auto f = Frequencies(Params(0.25f), LogitsOf({0.5, 0.3, 0.2}), 5000);
  // p^(1/T) normalised: 0.5^4 / (0.5^4 + 0.3^4 + 0.2^4) = 0.0625 / 0.0722 = 0.866
  EXPECT_NEAR(f[0], 0.0625 / (0.0625 + 0.0081 + 0.0016), 0.02);
}

TEST(Sampler, RepetitionPenaltyAsTransformers) {
  // Token 0 is already in the sequence: its positive logit is divided by the penalty, a
  // negative one would be multiplied. 3.0 / 2 = 1.5 < 2.0, so greedy switches to token 1.
  SamplingParams p = Params(0);
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  const std::vector<float> logits = {3.0f, 2.0f, -1.0f};
  const std::vector<int32_t> history = {0, 0, 2};
  EXPECT_EQ(Draw(s, logits, history).id, 1);
  Sampler plain(Params(0));
  EXPECT_EQ(Draw(plain, logits, history).id, 0);
}

// Below kGreedyBelowTemperature sampling is greedy (with --temperature 1e-40, logits / T
// used to overflow to inf and the sampler returned the lowest logit).
TEST(Sampler, TinyTemperatureIsGreedyNotTheLowestLogit) {
  const std::vector<float> logits = {1000.0f, -1000.0f, 999.0f, 3.0f};
  for (float t : {1e-40f, 1e-30f, 1e-6f, 9.9e-6f, 1e-5f, 1e-4f}) {
    for (uint64_t seed : {1, 2, 3}) {
      Sampler s(Params(t, seed));
      const Sample x = Draw(s, logits);
      EXPECT_EQ(x.id, 0) << "temperature " << t;
      EXPECT_TRUE(std::isfinite(x.logprob)) << "temperature " << t;
    }
  }
}

// Above it, penalised and scaled logits that overflow float (3e38 / 1e-3, 999 / 1e-38) are
// computed in double: the largest one still wins.
TEST(Sampler, ScaledLogitsBeyondFloatRangeStillSampleTheMaximum) {
  const std::vector<float> huge = {3e38f, -3e38f, 2e38f};
  for (float t : {1e-3f, 1.0f}) {
    Sampler s(Params(t));
    EXPECT_EQ(Draw(s, huge).id, 0) << "temperature " << t;
  }
  SamplingParams p = Params(1e-3f);
  p.repetition_penalty = 1e-38f;  // > 0, so valid: a repeated 999 becomes 9.99e40
  Sampler s(p);
  const std::vector<float> logits = {1000.0f, -1000.0f, 999.0f, 3.0f};
  const std::vector<int32_t> history = {2};
  EXPECT_EQ(Draw(s, logits, history).id, 2);
}

TEST(Sampler, NonFiniteLogitsAreDataLossNamingTheFirst) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float t : {0.0f, 1.0f}) {
    Sampler s(Params(t));
    const std::vector<float> logits = {0.5f, 1.0f, nan, 2.0f, -inf, inf};
    const absl::StatusOr<Sample> x = s.Next(logits, {});
    ASSERT_FALSE(x.ok());
    EXPECT_EQ(x.status().code(), absl::StatusCode::kDataLoss);
    const std::string m(x.status().message());
    EXPECT_NE(m.find("3 of 6 logits are not finite"), std::string::npos) << m;
    EXPECT_NE(m.find("at token 2"), std::string::npos) << m;
    // A single +inf is refused too.
    const std::vector<float> one_inf = {0.0f, inf};
    const absl::StatusOr<Sample> y = s.Next(one_inf, {});
    ASSERT_FALSE(y.ok());
    EXPECT_EQ(y.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(y.status().message().find("at token 1"), std::string::npos) << y.status();
  }
  Sampler s(Params(1.0f));
  EXPECT_EQ(s.Next(std::vector<float>{}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Sampler, ValidateNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(Validate(p).message().find("top_p"), std::string::npos);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_NE(Validate(p).message().find("temperature"), std::string::npos);
  p = SamplingParams{};
  p.max_new_tokens = 0;
  EXPECT_FALSE(Validate(p).ok());
  EXPECT_TRUE(Validate(SamplingParams{}).ok());
}

}  // namespace
}  // namespace tessera
