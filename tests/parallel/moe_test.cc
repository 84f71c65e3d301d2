// MoE routing, grouping and the MoeLayer on one rank, against plain references and
// hand-computed examples.
#include "parallel/moe.h"

#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "kernels/activation.h"
#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::RoutingMethod;
using kernels::RoutingParams;
using kernels::Tensor;

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  return kernels::testing::RandomFloats(n, seed, -scale, scale);
}

// `v` (row-major, `dims`) stored as `type` (F32 or Q8_0).
OwnedTensor Make(DType type, const std::vector<int64_t>& dims, const std::vector<float>& v) {
  return kernels::testing::Stored(type, dims, v.data());
}

// What the kernels see: the stored tensor decoded to f32.
std::vector<float> Decode(const OwnedTensor& t) { return kernels::testing::Decoded(t.cview()); }

// y[H] = down(silu(gate(x)) * up(x)) for one token, plain loops in double.
// gate/up: [F, H] at g/u; down: [H, F] at d.
std::vector<double> ExpertRef(const float* x, const float* g, const float* u, const float* d,
                              int64_t H, int64_t F) {
  std::vector<double> a(F), y(H, 0.0);
  for (int64_t f = 0; f < F; ++f) {
    double hg = 0, hu = 0;
    for (int64_t h = 0; h < H; ++h) {
      hg += double{x[h]} * g[f * H + h];
      hu += double{x[h]} * u[f * H + h];
    }
    a[f] = hg / (1 + std::exp(-hg)) * hu;
  }
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t f = 0; f < F; ++f) y[h] += a[f] * d[h * F + f];
  }
  return y;
}

// A MoE block's weights, both as the layer takes them and decoded for the references.
struct Model {
  int64_t E = 0, H = 0, F = 0, Fs = 0;
  RoutingParams routing;
  MoeWeights weights;  // moved into the layer by Build()
  std::vector<float> router, gate, up, down, bias, sgate, sup, sdown, sg;
  bool has_bias = false, has_shared = false, has_gate = false;
};

Model MakeModel(int64_t E, int64_t H, int64_t F, DType type, RoutingParams p, uint32_t seed,
                int64_t Fs = 0, bool shared_gate = false, bool bias = false) {
  Model m;
  m.E = E;
  m.H = H;
  m.F = F;
  m.Fs = Fs;
  m.routing = p;
  m.router = Random(E * H, seed, 0.5f);
  m.weights.router = Make(DType::kF32, {E, H}, m.router);
  m.weights.gate = Make(type, {E, F, H}, Random(E * F * H, seed + 1, 0.2f));
  m.weights.up = Make(type, {E, F, H}, Random(E * F * H, seed + 2, 0.2f));
  m.weights.down = Make(type, {E, H, F}, Random(E * H * F, seed + 3, 0.2f));
  m.gate = Decode(m.weights.gate);
  m.up = Decode(m.weights.up);
  m.down = Decode(m.weights.down);
  if (bias) {
    m.has_bias = true;
    m.bias = Random(E, seed + 4, 0.3f);
    m.weights.selection_bias = Make(DType::kF32, {E}, m.bias);
  }
  if (Fs > 0) {
    m.has_shared = true;
    SharedExpertWeights s;
    s.gate = Make(type, {Fs, H}, Random(Fs * H, seed + 5, 0.2f));
    s.up = Make(type, {Fs, H}, Random(Fs * H, seed + 6, 0.2f));
    s.down = Make(type, {H, Fs}, Random(H * Fs, seed + 7, 0.2f));
    m.sgate = Decode(s.gate);
    m.sup = Decode(s.up);
    m.sdown = Decode(s.down);
    if (shared_gate) {
      m.has_gate = true;
      m.sg = Random(H, seed + 8, 0.5f);
      s.sigmoid_gate = Make(DType::kF32, {1, H}, m.sg);
    }
    m.weights.shared = std::move(s);
  }
  return m;
}

std::unique_ptr<MoeLayer> Build(Model& m, Communicator* comm) {
  absl::StatusOr<std::unique_ptr<MoeLayer>> layer =
      MoeLayer::Create(std::move(m.weights), m.routing, comm);
  EXPECT_TRUE(layer.ok()) << layer.status();
  return layer.ok() ? std::move(*layer) : nullptr;
}

// The whole block by its definition: f32 router logits, RouteReference, then per token the
// weighted sum of its experts (double loops) plus the (gated) shared expert.
std::vector<float> MoeRef(const Model& m, const std::vector<float>& x, int64_t T) {
  const int64_t E = m.E, H = m.H, F = m.F, k = m.routing.top_k;
  std::vector<float> logits(T * E);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) {
      double s = 0;
      for (int64_t h = 0; h < H; ++h) s += double{x[t * H + h]} * m.router[e * H + h];
      logits[t * E + e] = static_cast<float>(s);
    }
  }
  RoutingParams p = m.routing;
  if (m.has_bias) p.selection_bias = m.bias.data();
  std::vector<int32_t> ids(T * k);
  std::vector<float> w(T * k);
  kernels::RouteReference(ids.data(), w.data(), ConstTensor(logits.data(), DType::kF32, {T, E}), p);
  std::vector<float> out(T * H);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> acc(H, 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = ids[t * k + j];
      const std::vector<double> y =
          ExpertRef(&x[t * H], &m.gate[e * F * H], &m.up[e * F * H], &m.down[e * H * F], H, F);
      for (int64_t h = 0; h < H; ++h) acc[h] += w[t * k + j] * y[h];
    }
    if (m.has_shared) {
      const std::vector<double> y =
          ExpertRef(&x[t * H], m.sgate.data(), m.sup.data(), m.sdown.data(), H, m.Fs);
      double s = 1;
      if (m.has_gate) {
        double z = 0;
        for (int64_t h = 0; h < H; ++h) z += double{x[t * H + h]} * m.sg[h];
        s = 1 / (1 + std::exp(-z));
      }
      for (int64_t h = 0; h < H; ++h) acc[h] += s * y[h];
    }
    for (int64_t h = 0; h < H; ++h) out[t * H + h] = static_cast<float>(acc[h]);
  }
  return out;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << "at " << i;
  }
}

std::vector<float> Forward(MoeLayer& layer, const std::vector<float>& x, int64_t T) {
  std::vector<float> out(T * layer.hidden(), std::nanf(""));
  const absl::Status s = layer.Forward(Tensor(out.data(), DType::kF32, {T, layer.hidden()}),
                                       ConstTensor(x.data(), DType::kF32, {T, layer.hidden()}));
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

RoutingParams Softmax(int32_t k, bool normalize) {
  RoutingParams p;
  p.method = RoutingMethod::kSoftmaxTopK;
  p.top_k = k;
  p.normalize_top_k = normalize;
  return p;
}

RoutingParams Grouped(int32_t k, int32_t n_group, int32_t topk_group, float scale,
                      bool normalize = true) {
  RoutingParams p;
  p.method = RoutingMethod::kSigmoidGroupedTopK;
  p.top_k = k;
  p.normalize_top_k = normalize;
  p.n_group = n_group;
  p.topk_group = topk_group;
  p.scaling_factor = scale;
  return p;
}

// ---------------------------------------------------------------------------------- Route

struct RouteCase {
  const char* name;
  int32_t E;
  RoutingParams p;
  bool bias;
};

TEST(RouteTest, FastMatchesReferenceOnRandomLogits) {
  const RouteCase cases[] = {
      {"mixtral", 8, Softmax(2, true), false},
      {"qwen2moe", 60, Softmax(4, false), false},
      {"qwen3moe", 128, Softmax(8, true), false},
      {"deepseek-v3", 256, Grouped(8, 8, 4, 2.5f), true},
      {"grouped-unnormalized", 16, Grouped(3, 4, 2, 1.0f, false), true},
      {"sigmoid-one-group", 12, Grouped(2, 1, 1, 1.0f), false},
      {"groups-of-one", 6, Grouped(2, 6, 3, 1.0f), true},
  };
  for (const RouteCase& c : cases) {
    SCOPED_TRACE(c.name);
    for (bool coarse : {false, true}) {  // coarse logits: many exact ties
      const int64_t T = 53;
      std::vector<float> logits = Random(T * c.E, 7 + c.E, 4.0f);
      if (coarse) {
        for (float& v : logits) v = std::round(v);
      }
      const std::vector<float> bias = Random(c.E, 99, 0.5f);
      RoutingParams p = c.p;
      if (c.bias) p.selection_bias = bias.data();
      ASSERT_TRUE(kernels::ValidateRoutingParams(p, c.E).ok());
      const int32_t k = p.top_k;
      std::vector<int32_t> ids(T * k), ref_ids(T * k);
      std::vector<float> w(T * k), ref_w(T * k);
      const ConstTensor l(logits.data(), DType::kF32, {T, c.E});
      kernels::Route(ids.data(), w.data(), l, p);
      kernels::RouteReference(ref_ids.data(), ref_w.data(), l, p);
      EXPECT_EQ(ids, ref_ids);
      for (int64_t i = 0; i < T * k; ++i) ASSERT_FLOAT_EQ(w[i], ref_w[i]) << i;
      for (int64_t t = 0; t < T; ++t) {
        std::set<int32_t> distinct(&ids[t * k], &ids[t * k] + k);
        EXPECT_EQ(distinct.size(), static_cast<size_t>(k));
        EXPECT_GE(*distinct.begin(), 0);
        EXPECT_LT(*distinct.rbegin(), c.E);
        float sum = 0;
        for (int32_t j = 0; j < k; ++j) {
          sum += w[t * k + j];
          if (j > 0) {
            EXPECT_GE(w[t * k + j - 1], w[t * k + j]);
          }
        }
        if (p.normalize_top_k) {
          EXPECT_NEAR(sum, p.scaling_factor, 1e-5f * p.scaling_factor);
        }
      }
    }
  }
}

// Mixtral: E = 4, k = 2, logits = ln[3, 1, 4, 2] so exp(logits) = [3, 1, 4, 2], sum 10:
// softmax = [0.3, 0.1, 0.4, 0.2]. Top-2 = expert 2 (0.4), expert 0 (0.3). Renormalised:
// 0.4 / 0.7 = 4/7 = 0.5714286, 0.3 / 0.7 = 3/7 = 0.4285714. Without: 0.4, 0.3.
TEST(RouteTest, MixtralHandExample) {
  const std::vector<float> logits = {std::log(3.f), std::log(1.f), std::log(4.f), std::log(2.f)};
  const ConstTensor l(logits.data(), DType::kF32, {1, 4});
  int32_t ids[2];
  float w[2];
  for (auto route : {&kernels::Route, &kernels::RouteReference}) {
    route(ids, w, l, Softmax(2, true));
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], 0);
    EXPECT_NEAR(w[0], 4.0f / 7, 1e-6f);
    EXPECT_NEAR(w[1], 3.0f / 7, 1e-6f);
    route(ids, w, l, Softmax(2, false));  // Qwen2-MoE with norm_topk_prob = false
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], 0);
    EXPECT_NEAR(w[0], 0.4f, 1e-6f);
    EXPECT_NEAR(w[1], 0.3f, 1e-6f);
  }
}

// DeepSeek-V3 style: E = 8 in n_group = 4 groups of 2, topk_group = 2, k = 2, scale 2.5.
// Logits are ln(s / (1 - s)) so that sigmoid gives the scores
//   s    = [0.9, 0.1 | 0.6, 0.5 | 0.85, 0.2 | 0.4, 0.3]   (groups g0 | g1 | g2 | g3)
//   bias = [0,   0   | 0,   0   | 0,    0   | 0.5, 0.5]
//   s+b  = [0.9, 0.1 | 0.6, 0.5 | 0.85, 0.2 | 0.9, 0.8]
// Group scores (sum of the group's top 2 of s+b): g0 1.0, g1 1.1, g2 1.05, g3 1.7. Keep g3,
// g1 -> candidates e2 0.6, e3 0.5, e6 0.9, e7 0.8 -> choose e6, e7. (Ungrouped top-2 would
// have been e0 and e6; e4 = 0.85 beats e7 but its group was dropped.) Weights use the
// unbiased s: 0.4 / 0.7 * 2.5 = 10/7 = 1.4285714, 0.3 / 0.7 * 2.5 = 7.5/7 = 1.0714286.
// Without the bias: groups g0 1.0, g1 1.1, g2 1.05, g3 0.7 keep g1, g2 -> e4 (0.85), e2
// (0.6): 0.85 / 1.45 * 2.5 = 1.4655172, 0.6 / 1.45 * 2.5 = 1.0344828.
TEST(RouteTest, DeepSeekV3HandExample) {
  const double s[8] = {0.9, 0.1, 0.6, 0.5, 0.85, 0.2, 0.4, 0.3};
  std::vector<float> logits(8);
  for (int e = 0; e < 8; ++e) logits[e] = static_cast<float>(std::log(s[e] / (1 - s[e])));
  const std::vector<float> bias = {0, 0, 0, 0, 0, 0, 0.5f, 0.5f};
  const ConstTensor l(logits.data(), DType::kF32, {1, 8});
  int32_t ids[2];
  float w[2];
  for (auto route : {&kernels::Route, &kernels::RouteReference}) {
    RoutingParams p = Grouped(2, 4, 2, 2.5f);
    p.selection_bias = bias.data();
    route(ids, w, l, p);
    EXPECT_EQ(ids[0], 6);
    EXPECT_EQ(ids[1], 7);
    EXPECT_NEAR(w[0], 10.0f / 7, 1e-5f);
    EXPECT_NEAR(w[1], 7.5f / 7, 1e-5f);
    p.selection_bias = nullptr;
    route(ids, w, l, p);
    EXPECT_EQ(ids[0], 4);
    EXPECT_EQ(ids[1], 2);
    EXPECT_NEAR(w[0], 0.85f / 1.45f * 2.5f, 1e-5f);
    EXPECT_NEAR(w[1], 0.6f / 1.45f * 2.5f, 1e-5f);
  }
}

TEST(RouteTest, TiesGoToLowerIdAndNaNNeverYieldsABadId) {
  // Token 0: all six logits tied. Token 1: [NaN, NaN, NaN, 0, NaN, 0].
  std::vector<float> logits(12, 1.0f);
  for (int e : {6, 7, 8, 10}) logits[e] = std::nanf("");
  logits[9] = logits[11] = 0.0f;
  const ConstTensor l(logits.data(), DType::kF32, {2, 6});
  for (auto route : {&kernels::Route, &kernels::RouteReference}) {
    int32_t ids[6];
    float w[6];
    route(ids, w, l, Softmax(3, true));
    EXPECT_EQ(ids[0], 0);
    EXPECT_EQ(ids[1], 1);
    EXPECT_EQ(ids[2], 2);
    EXPECT_NEAR(w[0], 1.0f / 3, 1e-6f);
    for (int j = 3; j < 6; ++j) EXPECT_TRUE(ids[j] >= 0 && ids[j] < 6);
    EXPECT_NE(ids[3], ids[4]);
    EXPECT_NE(ids[4], ids[5]);
    EXPECT_NE(ids[3], ids[5]);
  }
}

TEST(RouteTest, ValidateRejectsBadConfigs) {
  const float bias[8] = {};
  EXPECT_TRUE(kernels::ValidateRoutingParams(Softmax(2, true), 8).ok());
  EXPECT_FALSE(kernels::ValidateRoutingParams(Softmax(0, true), 8).ok());
  EXPECT_FALSE(kernels::ValidateRoutingParams(Softmax(9, true), 8).ok());
  RoutingParams p = Softmax(2, true);
  p.selection_bias = bias;
  EXPECT_FALSE(kernels::ValidateRoutingParams(p, 8).ok());
  EXPECT_TRUE(kernels::ValidateRoutingParams(Grouped(2, 4, 2, 2.5f), 8).ok());
  EXPECT_FALSE(kernels::ValidateRoutingParams(Grouped(2, 3, 2, 1), 8).ok());  // 3 ∤ 8
  EXPECT_FALSE(kernels::ValidateRoutingParams(Grouped(2, 4, 5, 1), 8).ok());  // topk_group > n
  EXPECT_FALSE(kernels::ValidateRoutingParams(Grouped(5, 4, 2, 1), 8).ok());  // k > 2 groups x 2
  EXPECT_FALSE(kernels::ValidateRoutingParams(Grouped(2, 4, 2, INFINITY), 8).ok());
}

// -------------------------------------------------------------------------- GroupByExpert

// T = 3, k = 2, E = 4, ids = [[2, 0], [2, 3], [0, 2]]. Per expert, in (token, slot) order:
// e0: (t0, s1), (t2, s0); e1: none; e2: (t0, s0), (t1, s0), (t2, s1); e3: (t1, s1).
TEST(GroupByExpertTest, HandExample) {
  const int32_t ids[6] = {2, 0, 2, 3, 0, 2};
  absl::StatusOr<kernels::ExpertGrouping> g = kernels::GroupByExpert(ids, 3, 2, 4);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->offsets, (std::vector<int64_t>{0, 2, 2, 5, 6}));
  EXPECT_EQ(g->rows, (std::vector<int32_t>{0, 2, 0, 1, 2, 1}));
  EXPECT_EQ(g->slot, (std::vector<int32_t>{1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(g->grouped_row, (std::vector<int32_t>{2, 0, 3, 5, 1, 4}));
  EXPECT_EQ(g->count(1), 0);
}

TEST(GroupByExpertTest, OutOfRangeIdIsAnError) {
  const int32_t high[4] = {0, 1, 4, 2};
  absl::StatusOr<kernels::ExpertGrouping> g = kernels::GroupByExpert(high, 2, 2, 4);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("token 1 choice 0: expert id 4"), std::string::npos)
      << g.status();
  const int32_t negative[2] = {-1, 0};
  EXPECT_FALSE(kernels::GroupByExpert(negative, 1, 2, 4).ok());
  EXPECT_FALSE(kernels::GroupByExpert(negative, 1, 0, 4).ok());
}

// ------------------------------------------------------------------------------- MoeLayer

// Every expert a copy of one dense SwiGLU MLP, weights normalised to sum 1: whatever the
// router says, the block is that MLP (computed here with MatMul + SwiGlu on the same bytes).
TEST(MoeLayerTest, IdenticalExpertsEqualTheDenseMlp) {
  const int64_t E = 8, H = 64, F = 96;
  auto comm = MakeSoloCommunicator();
  for (DType type : {DType::kF32, DType::kQ8_0}) {
    for (const RoutingParams& p : {Softmax(2, true), Grouped(3, 4, 2, 1.0f)}) {
      for (int64_t T : {1, 3, 37}) {
        SCOPED_TRACE(testing::Message() << kernels::Name(type) << " T=" << T);
        const std::vector<float> g = Random(F * H, 1), u = Random(F * H, 2), d = Random(H * F, 3);
        std::vector<float> gs, us, ds;
        for (int64_t e = 0; e < E; ++e) {
          gs.insert(gs.end(), g.begin(), g.end());
          us.insert(us.end(), u.begin(), u.end());
          ds.insert(ds.end(), d.begin(), d.end());
        }
        MoeWeights w;
        w.router = Make(DType::kF32, {E, H}, Random(E * H, 4 + T, 2.0f));  // any router
        w.gate = Make(type, {E, F, H}, gs);
        w.up = Make(type, {E, F, H}, us);
        w.down = Make(type, {E, H, F}, ds);
        absl::StatusOr<std::unique_ptr<MoeLayer>> layer =
            MoeLayer::Create(std::move(w), p, comm.get());
        ASSERT_TRUE(layer.ok()) << layer.status();
        const std::vector<float> x = Random(T * H, 5);
        const std::vector<float> out = Forward(**layer, x, T);

        const OwnedTensor dg = Make(type, {F, H}, g), du = Make(type, {F, H}, u),
                          dd = Make(type, {H, F}, d);
        std::vector<float> hg(T * F), hu(T * F), want(T * H);
        const ConstTensor xt(x.data(), DType::kF32, {T, H});
        kernels::MatMul(Tensor(hg.data(), DType::kF32, {T, F}), xt, dg.cview());
        kernels::MatMul(Tensor(hu.data(), DType::kF32, {T, F}), xt, du.cview());
        kernels::SwiGlu(Tensor(hg.data(), DType::kF32, {T, F}),
                        ConstTensor(hg.data(), DType::kF32, {T, F}),
                        ConstTensor(hu.data(), DType::kF32, {T, F}));
        kernels::MatMul(Tensor(want.data(), DType::kF32, {T, H}),
                        ConstTensor(hg.data(), DType::kF32, {T, F}), dd.cview());
        ExpectClose(out, want, 1e-5f);
      }
    }
  }
}

// Poisons expert e's weights with NaN: if Forward touched them, the output would be NaN.
void Poison(MoeWeights& w, int64_t e) {
  for (OwnedTensor* t : {&w.gate, &w.up, &w.down}) {
    const int64_t n = t->cview().dim(1) * t->cview().dim(2);
    std::fill(t->as<float>() + e * n, t->as<float>() + (e + 1) * n, std::nanf(""));
  }
}

// k = 1 and a router whose only signal is feature 0 (set to 4 in every token) pointing at
// expert 2: every token goes to expert 2 with weight exactly 1; the others are never read.
TEST(MoeLayerTest, OneExpertGetsEveryToken) {
  const int64_t E = 4, H = 32, F = 64, T = 19;
  Model m = MakeModel(E, H, F, DType::kF32, Softmax(1, true), 11);
  std::fill(m.router.begin(), m.router.end(), 0.0f);
  m.router[2 * H + 0] = 1.0f;
  m.weights.router = Make(DType::kF32, {E, H}, m.router);
  for (int64_t e : {0, 1, 3}) Poison(m.weights, e);
  std::vector<float> x = Random(T * H, 12);
  for (int64_t t = 0; t < T; ++t) x[t * H] = 4.0f;
  auto comm = MakeSoloCommunicator();
  std::unique_ptr<MoeLayer> layer = Build(m, comm.get());
  ASSERT_NE(layer, nullptr);
  const std::vector<float> out = Forward(*layer, x, T);
  EXPECT_EQ(layer->tokens_per_expert(), (std::vector<int64_t>{0, 0, T, 0}));
  std::vector<float> want(T * H);
  for (int64_t t = 0; t < T; ++t) {  // per token: expert 2 alone
    const std::vector<double> y =
        ExpertRef(&x[t * H], &m.gate[2 * F * H], &m.up[2 * F * H], &m.down[2 * H * F], H, F);
    for (int64_t h = 0; h < H; ++h) want[t * H + h] = static_cast<float>(y[h]);
  }
  ExpectClose(out, want, 1e-5f);
}

// E = 8, k = 2, a router that puts every token on experts 1 and 5 (feature 0 = 4 scores
// them +40 and +32, the rest of x is small): the other six experts get no token, are never
// read (poisoned), and the output matches the per-token definition.
TEST(MoeLayerTest, SomeExpertsGetNoTokens) {
  const int64_t E = 8, H = 32, F = 64, T = 23;
  Model m = MakeModel(E, H, F, DType::kF32, Softmax(2, true), 21);
  m.router[1 * H] = 10.0f;
  m.router[5 * H] = 8.0f;
  for (int64_t e : {0, 2, 3, 4, 6, 7}) m.router[e * H] = 0.0f;
  m.weights.router = Make(DType::kF32, {E, H}, m.router);
  for (int64_t e : {0, 2, 3, 4, 6, 7}) Poison(m.weights, e);
  std::vector<float> x = Random(T * H, 22, 0.1f);
  for (int64_t t = 0; t < T; ++t) x[t * H] = 4.0f;
  const std::vector<float> want = MoeRef(m, x, T);
  auto comm = MakeSoloCommunicator();
  std::unique_ptr<MoeLayer> layer = Build(m, comm.get());
  ASSERT_NE(layer, nullptr);
  ExpectClose(Forward(*layer, x, T), want, 1e-5f);
  EXPECT_EQ(layer->tokens_per_expert(), (std::vector<int64_t>{0, T, 0, 0, 0, T, 0, 0}));
  Forward(*layer, x, 5);  // statistics accumulate over calls ...
  EXPECT_EQ(layer->tokens_per_expert()[1], T + 5);
  layer->ResetTokensPerExpert();  // ... until reset
  EXPECT_EQ(layer->tokens_per_expert(), std::vector<int64_t>(E, 0));
}

// The whole block against MoeRef for each architecture's shape of routing and shared expert.
TEST(MoeLayerTest, MatchesReferenceForEachArchitecture) {
  struct Case {
    const char* name;
    RoutingParams p;
    int64_t Fs;
    bool shared_gate, bias;
  };
  const Case cases[] = {
      {"mixtral", Softmax(2, true), 0, false, false},
      {"qwen2moe: shared expert with sigmoid gate", Softmax(4, false), 64, true, false},
      {"qwen3moe", Softmax(4, true), 0, false, false},
      {"deepseek-v3: grouped, bias, shared", Grouped(2, 4, 2, 2.5f), 32, false, true},
  };
  auto comm = MakeSoloCommunicator();
  for (const Case& c : cases) {
    for (DType type : {DType::kF32, DType::kQ8_0}) {
      SCOPED_TRACE(testing::Message() << c.name << " " << kernels::Name(type));
      Model m = MakeModel(8, 64, 32, type, c.p, 31, c.Fs, c.shared_gate, c.bias);
      const int64_t T = 29;
      const std::vector<float> x = Random(T * 64, 32);
      const std::vector<float> want = MoeRef(m, x, T);
      std::unique_ptr<MoeLayer> layer = Build(m, comm.get());
      ASSERT_NE(layer, nullptr);
      ExpectClose(Forward(*layer, x, T), want, 1e-5f);
    }
  }
}

// Shared expert alone: with every routed expert's weights zero the routed part is 0, so
// out = sigmoid(x·g) * down(silu(gate(x)) * up(x)), written out here by hand (f32 loops).
TEST(MoeLayerTest, SharedExpertWithSigmoidGate) {
  const int64_t E = 2, H = 32, F = 32, Fs = 32, T = 2;
  Model m = MakeModel(E, H, F, DType::kF32, Softmax(2, true), 41, Fs, true);
  for (OwnedTensor* t : {&m.weights.gate, &m.weights.up, &m.weights.down}) {
    std::fill(t->as<float>(), t->as<float>() + t->cview().numel(), 0.0f);
  }
  const std::vector<float> x = Random(T * H, 42);
  std::vector<float> want(T * H);
  for (int64_t t = 0; t < T; ++t) {
    float z = 0;
    for (int64_t h = 0; h < H; ++h) z += x[t * H + h] * m.sg[h];
    const float gate = 1.0f / (1.0f + std::exp(-z));
    std::vector<float> a(Fs);
    for (int64_t f = 0; f < Fs; ++f) {
      float hg = 0, hu = 0;
      for (int64_t h = 0; h < H; ++h) {
        hg += x[t * H + h] * m.sgate[f * H + h];
        hu += x[t * H + h] * m.sup[f * H + h];
      }
      a[f] = hg / (1.0f + std::exp(-hg)) * hu;
    }
    for (int64_t h = 0; h < H; ++h) {
      float y = 0;
      for (int64_t f = 0; f < Fs; ++f) y += a[f] * m.sdown[h * Fs + f];
      want[t * H + h] = gate * y;
    }
  }
  auto comm = MakeSoloCommunicator();
  std::unique_ptr<MoeLayer> layer = Build(m, comm.get());
  ASSERT_NE(layer, nullptr);
  ExpectClose(Forward(*layer, x, T), want, 1e-5f);
}

// One token, k = 2 of E = 8 Q8_0 experts: the layer reads the router (f32), the two chosen
// experts' gate, up and down, and the shared expert and its gate; nothing else.
TEST(MoeLayerTest, DecodeReadsOnlyChosenExperts) {
  const int64_t E = 8, H = 64, F = 96, Fs = 64;
  Model m = MakeModel(E, H, F, DType::kQ8_0, Softmax(2, true), 51, Fs, true);
  auto comm = MakeSoloCommunicator();
  std::unique_ptr<MoeLayer> layer = Build(m, comm.get());
  ASSERT_NE(layer, nullptr);
  const std::vector<float> x = Random(H, 52);
  Forward(*layer, x, 1);
  const int64_t q8 = 34;  // bytes per 32 weights
  const int64_t router = E * H * 4;
  const int64_t expert = (F * H + F * H + H * F) / 32 * q8;  // 3 * 96 * 64 / 32 * 34 = 19584
  const int64_t shared = (Fs * H + Fs * H + H * Fs) / 32 * q8 + H * 4;
  EXPECT_EQ(expert, 19584);
  EXPECT_EQ(layer->bytes_read_last_forward(), router + 2 * expert + shared);
  int64_t used = 0;
  for (int64_t n : layer->tokens_per_expert()) used += n > 0;
  EXPECT_EQ(used, 2);
  EXPECT_EQ(layer->bytes(), router + E * expert + shared);
}

class FakeGroup final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  absl::Status AllReduceSum(Tensor) override { return absl::OkStatus(); }
  absl::Status AllGather(Tensor, ConstTensor) override { return absl::OkStatus(); }
  absl::Status ReduceScatterSum(Tensor, ConstTensor) override { return absl::OkStatus(); }
  absl::Status AllToAllV(Tensor, std::span<const int64_t>, ConstTensor,
                         std::span<const int64_t>) override {
    return absl::OkStatus();
  }
  absl::Status Gather(Tensor, ConstTensor, int) override { return absl::OkStatus(); }
  absl::Status Broadcast(Tensor, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

TEST(MoeLayerTest, CreateRejectsBadInput) {
  auto solo = MakeSoloCommunicator();
  FakeGroup two;
  {
    Model m = MakeModel(4, 32, 32, DType::kF32, Softmax(2, true), 61);
    EXPECT_EQ(MoeLayer::Create(std::move(m.weights), m.routing, &two).status().code(),
              absl::StatusCode::kUnimplemented);
  }
  {
    Model m = MakeModel(4, 32, 32, DType::kF32, Softmax(2, true), 61);
    m.weights.down = Make(DType::kF32, {4, 32, 64}, Random(4 * 32 * 64, 1));  // F mismatch
    EXPECT_EQ(MoeLayer::Create(std::move(m.weights), m.routing, solo.get()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    Model m = MakeModel(4, 32, 32, DType::kF32, Softmax(2, true), 61);
    m.weights.router = Make(DType::kQ8_0, {4, 32}, m.router);  // router must be f32
    EXPECT_FALSE(MoeLayer::Create(std::move(m.weights), m.routing, solo.get()).ok());
  }
  {
    Model m = MakeModel(4, 32, 32, DType::kF32, Softmax(5, true), 61);  // k > E
    EXPECT_FALSE(MoeLayer::Create(std::move(m.weights), m.routing, solo.get()).ok());
  }
  {
    const float bias[4] = {};
    Model m = MakeModel(4, 32, 32, DType::kF32, Grouped(2, 2, 1, 1), 61);
    m.routing.selection_bias = bias;  // the layer must own it: MoeWeights::selection_bias
    EXPECT_FALSE(MoeLayer::Create(std::move(m.weights), m.routing, solo.get()).ok());
  }
  {
    Model m = MakeModel(4, 32, 32, DType::kF32, Softmax(2, true), 61);
    std::unique_ptr<MoeLayer> layer = Build(m, solo.get());
    ASSERT_NE(layer, nullptr);
    std::vector<float> x(2 * 32), out(2 * 16);
    EXPECT_FALSE(layer
                     ->Forward(Tensor(out.data(), DType::kF32, {2, 16}),
                               ConstTensor(x.data(), DType::kF32, {2, 32}))
                     .ok());
  }
}

}  // namespace
}  // namespace tessera::parallel
