// The engine across ranks, with ranks as threads over in-process communicators (the MPI
// runs are tests/dist: `tessera generate` and `tessera batch` under mpirun): the leader
// broadcasts every step plan, the workers execute them, logits reach the leader only, and
// 12 concurrent requests give the same tokens and prompt logits as one process. Workers
// refuse corrupt, replayed and stale plans with errors naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "parallel/inprocess_communicator.h"
#include "runtime/engine/engine.h"
#include "runtime/serving/step_plan.h"

namespace tessera {
namespace {

using parallel::Communicator;
using parallel::InProcessCommunicator;

std::unique_ptr<ModelSource> Open(const std::string& arch) {
  auto source = ModelSource::Open(std::string(TESSERA_TEST_DATA_DIR) + "/golden/" + arch);
  EXPECT_TRUE(source.ok()) << source.status();
  return source.ok() ? *std::move(source) : nullptr;
}

std::vector<EngineRequest> Requests(int n, int64_t vocab) {
  std::mt19937 rng(23);
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < n; ++i) {
    EngineRequest r;
    r.id = 10 + i;
    const int64_t len = 1 + static_cast<int64_t>(rng() % 40);
    for (int64_t k = 0; k < len; ++k) r.prompt.push_back(static_cast<int32_t>(rng() % vocab));
    r.sampling.max_new_tokens = 3 + static_cast<int32_t>(rng() % 8);
    r.sampling.temperature = i % 2 ? 0.8f : 0.0f;
    r.sampling.seed = rng();
    r.prompt_logits = i % 3 == 0;
    reqs.push_back(std::move(r));
  }
  return reqs;
}

struct Result {
  std::vector<int32_t> tokens;
  std::vector<float> prompt_logits;
};

// Runs `reqs` on the leader's engine to the end.
std::map<serving::RequestId, Result> RunAll(Engine& e, const std::vector<EngineRequest>& reqs) {
  std::map<serving::RequestId, Result> out;
  for (const EngineRequest& r : reqs) EXPECT_TRUE(e.Add(r).ok());
  for (int steps = 0; !e.idle() && steps < 10000; ++steps) {
    absl::StatusOr<std::vector<EngineOutput>> step = e.Step();
    EXPECT_TRUE(step.ok()) << step.status();
    if (!step.ok()) break;
    for (EngineOutput& o : *step) {
      EXPECT_TRUE(o.error.ok()) << o.error;
      Result& r = out[o.id];
      r.tokens.insert(r.tokens.end(), o.tokens.begin(), o.tokens.end());
      if (o.finish) r.prompt_logits = std::move(o.prompt_logits);
    }
  }
  EXPECT_TRUE(e.Shutdown().ok());
  return out;
}

constexpr EngineConfig kConfig{.kv_blocks = 40, .block_size = 8, .max_batch_tokens = 32,
                               .max_seqs = 8};
// The same with an f16 KV cache: the workers take the type from the leader's configuration.
constexpr EngineConfig kHalfKvConfig{.kv_blocks = 40, .block_size = 8, .max_batch_tokens = 32,
                                     .max_seqs = 8, .kv_type = kernels::DType::kF16};

std::map<serving::RequestId, Result> RunSolo(const ModelSource& source,
                                             const std::vector<EngineRequest>& reqs,
                                             const EngineConfig& config = kConfig) {
  auto solo = parallel::MakeSoloCommunicator();
  auto model = Transformer::Load(source, solo.get(), {});
  EXPECT_TRUE(model.ok()) << model.status();
  auto engine = Engine::Create(**model, config);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return RunAll(**engine, reqs);
}

// `ranks` threads, each with a world and a tp (or ep) communicator; rank 0 leads.
std::map<serving::RequestId, Result> RunRanks(const ModelSource& source, int ranks, bool ep,
                                              const std::vector<EngineRequest>& reqs,
                                              std::vector<int64_t>* gather_bytes,
                                              const EngineConfig& config = kConfig) {
  auto world = InProcessCommunicator::MakeGroup(ranks, absl::Seconds(30));
  auto group = InProcessCommunicator::MakeGroup(ranks, absl::Seconds(30));
  std::vector<std::unique_ptr<Communicator>> solos;
  for (int r = 0; r < ranks; ++r) solos.push_back(parallel::MakeSoloCommunicator());
  std::map<serving::RequestId, Result> out;
  std::vector<absl::Status> status(ranks);
  gather_bytes->assign(ranks, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      Communicator* tp = ep ? solos[r].get() : group[r].get();
      auto model = Transformer::Load(source, tp, {.ep = ep ? group[r].get() : nullptr});
      if (!model.ok()) {
        status[r] = model.status();
        if (r == 0) (void)ReleaseWorkers(*world[0]);
        return;
      }
      if (r == 0) {
        auto engine = Engine::Create(**model, config, world[0].get());
        if (!engine.ok()) {
          status[r] = engine.status();
          return;
        }
        out = RunAll(**engine, reqs);
      } else {
        status[r] = RunWorker(**model, *world[r]);
      }
      (*gather_bytes)[r] = tp->stats()[parallel::CollectiveKind::kGather].bytes;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return out;
}

void ExpectSame(const std::map<serving::RequestId, Result>& got,
                const std::map<serving::RequestId, Result>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [id, w] : want) {
    const Result& g = got.at(id);
    EXPECT_EQ(g.tokens, w.tokens) << what << " request " << id;
    ASSERT_EQ(g.prompt_logits.size(), w.prompt_logits.size()) << what << " request " << id;
    for (size_t i = 0; i < w.prompt_logits.size(); ++i) {
      ASSERT_NEAR(g.prompt_logits[i], w.prompt_logits[i],
                  1e-4f * std::max(1.0f, std::abs(w.prompt_logits[i])))
          << what << " request " << id << " logit " << i;
    }
  }
}

TEST(EngineRanksTest, TensorParallelMatchesOneProcessAndLogitsReachTheLeaderOnly) {
  auto source = Open("llama");
  ASSERT_NE(source, nullptr);
  const std::vector<EngineRequest> reqs = Requests(12, source->config()->vocab);
  const auto want = RunSolo(*source, reqs);
  int64_t prompt_logits = 0;
  for (const auto& [id, r] : want) prompt_logits += static_cast<int64_t>(r.prompt_logits.size());
  EXPECT_GT(prompt_logits, 0);
  std::vector<int64_t> gathered;
  ExpectSame(RunRanks(*source, 2, /*ep=*/false, reqs, &gathered), want, "tp 2");
  // Each rank sends its half of the vocabulary to rank 0: the bytes are equal on both.
  EXPECT_GT(gathered[1], 0);
  EXPECT_EQ(gathered[0], gathered[1]);
}

TEST(EngineRanksTest, UnevenVocabularyTensorParallelMatchesOneProcess) {
  // Vocabulary 389 (prime): at tp 2 and 4 the last embedding and LM-head shards are padded.
  for (const std::string file : {"", "/model-f32.gguf"}) {
    auto source = ModelSource::Open(std::string(TESSERA_TEST_DATA_DIR) + "/golden/llama_uneven" + file);
    ASSERT_TRUE(source.ok()) << source.status();
    ASSERT_EQ((*source)->config()->vocab, 389);
    const std::vector<EngineRequest> reqs = Requests(8, 389);
    const auto want = RunSolo(**source, reqs);
    for (int tp : {2, 4}) {
      std::vector<int64_t> gathered;
      ExpectSame(RunRanks(**source, tp, /*ep=*/false, reqs, &gathered), want,
                 "uneven vocabulary, tp " + std::to_string(tp) + file);
      EXPECT_EQ(gathered.front(), gathered.back());  // padded: every rank sends as much
    }
  }
}

TEST(EngineRanksTest, ExpertParallelMatchesOneProcess) {
  auto source = Open("mixtral");
  ASSERT_NE(source, nullptr);
  const std::vector<EngineRequest> reqs = Requests(12, source->config()->vocab);
  const auto want = RunSolo(*source, reqs);
  std::vector<int64_t> gathered;
  ExpectSame(RunRanks(*source, 2, /*ep=*/true, reqs, &gathered), want, "ep 2");
  EXPECT_EQ(gathered[1], 0);  // alone in its tp group: the worker skips the LM head
}

TEST(EngineRanksTest, HalfKvTensorParallelMatchesOneProcess) {
  auto source = Open("llama");
  ASSERT_NE(source, nullptr);
  const std::vector<EngineRequest> reqs = Requests(6, source->config()->vocab);
  std::vector<int64_t> gathered;
  ExpectSame(RunRanks(*source, 2, /*ep=*/false, reqs, &gathered, kHalfKvConfig),
             RunSolo(*source, reqs, kHalfKvConfig), "tp 2, f16 KV");
}

// Two engines in one process, each on its own model and its own thread pool, stepped from
// two threads at once: each gives the tokens it gives alone.
TEST(EngineRanksTest, TwoEnginesInOneProcessEachOnItsOwnPool) {
  auto source = Open("llama");
  ASSERT_NE(source, nullptr);
  const std::vector<EngineRequest> reqs = Requests(6, source->config()->vocab);
  const auto want = RunSolo(*source, reqs);
  std::map<serving::RequestId, Result> got[2];
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto solo = parallel::MakeSoloCommunicator();
      auto model = Transformer::Load(*source, solo.get(), {});
      ASSERT_TRUE(model.ok()) << model.status();
      EngineConfig config = kConfig;
      config.threads = 2 + i;
      auto engine = Engine::Create(**model, config);
      ASSERT_TRUE(engine.ok()) << engine.status();
      got[i] = RunAll(**engine, reqs);
    });
  }
  for (std::thread& t : threads) t.join();
  ExpectSame(got[0], want, "engine 0 of 2");
  ExpectSame(got[1], want, "engine 1 of 2");
  EngineConfig bad = kConfig;
  bad.threads = -1;
  auto solo = parallel::MakeSoloCommunicator();
  auto model = Transformer::Load(*source, solo.get(), {});
  ASSERT_TRUE(model.ok());
  EXPECT_NE(Engine::Create(**model, bad).status().message().find("threads -1"), std::string::npos);
}

// The worker's side alone: a leader thread sends hand-made messages.
class WorkerRefusesTest : public testing::Test {
 protected:
  void SetUp() override {
    source_ = Open("llama");
    ASSERT_NE(source_, nullptr);
    solo_ = parallel::MakeSoloCommunicator();
    auto model = Transformer::Load(*source_, solo_.get(), {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  // Runs the worker against `leader`, which drives world rank 0; returns the worker's status.
  absl::Status Worker(const std::function<void(Communicator&)>& leader) {
    auto world = InProcessCommunicator::MakeGroup(2, absl::Seconds(2));
    absl::Status worker;
    std::thread t([&] { worker = RunWorker(*model_, *world[1]); });
    leader(*world[0]);
    t.join();
    return worker;
  }

  static void SendBytes(Communicator& c, std::vector<uint8_t> bytes) {
    int32_t n = static_cast<int32_t>(bytes.size());
    (void)c.Broadcast(kernels::Tensor(&n, kernels::DType::kI32, {1}), 0);
    if (n > 0) (void)c.Broadcast(kernels::Tensor(bytes.data(), kernels::DType::kU8, {n}), 0);
  }

  // A real leader's first plan: the engine's config message and one prefill step.
  std::vector<std::vector<uint8_t>> Capture() {
    auto world = InProcessCommunicator::MakeGroup(2, absl::Seconds(2));
    std::vector<std::vector<uint8_t>> msgs;
    std::thread t([&] {
      std::vector<uint8_t> config(56);
      (void)world[1]->Broadcast(kernels::Tensor(config.data(), kernels::DType::kU8, {56}), 0);
      msgs.push_back(config);
      for (int i = 0; i < 2; ++i) {  // the prefill plan, then the stop plan
        int32_t n = 0;
        (void)world[1]->Broadcast(kernels::Tensor(&n, kernels::DType::kI32, {1}), 0);
        std::vector<uint8_t> plan(n);
        (void)world[1]->Broadcast(kernels::Tensor(plan.data(), kernels::DType::kU8, {n}), 0);
        msgs.push_back(plan);
      }
    });
    {
      auto engine = Engine::Create(*model_, kConfig, world[0].get());
      EXPECT_TRUE(engine.ok()) << engine.status();
      EngineRequest r{.id = 1, .prompt = {1, 2, 3}};
      r.sampling.max_new_tokens = 1;
      EXPECT_TRUE((*engine)->Add(r).ok());
      EXPECT_TRUE((*engine)->Step().ok());
    }  // the destructor sends the stop plan
    t.join();
    return msgs;
  }

  std::unique_ptr<ModelSource> source_;
  std::unique_ptr<Communicator> solo_;
  std::unique_ptr<Transformer> model_;
};

TEST_F(WorkerRefusesTest, BadPlansAndConfigs) {
  const auto msgs = Capture();
  ASSERT_EQ(msgs.size(), 3u);
  const std::vector<uint8_t>& config = msgs[0];
  const std::vector<uint8_t>& plan = msgs[1];
  auto send_config = [&](Communicator& c, std::vector<uint8_t> m) {
    (void)c.Broadcast(kernels::Tensor(m.data(), kernels::DType::kU8, {56}), 0);
  };
  // The captured plan runs, then the stop plan ends the worker cleanly.
  EXPECT_TRUE(Worker([&](Communicator& c) {
                send_config(c, config);
                SendBytes(c, plan);
                SendBytes(c, msgs[2]);
              }).ok());
  // A bad magic, an out-of-range pool, the leader's release.
  std::vector<uint8_t> bad = config;
  bad[0] ^= 1;
  EXPECT_NE(Worker([&](Communicator& c) { send_config(c, bad); }).message().find("magic"),
            std::string::npos);
  bad = config;
  std::memset(bad.data() + 8, 0, 8);  // kv_blocks 0
  EXPECT_NE(Worker([&](Communicator& c) { send_config(c, bad); }).message().find("kv_blocks 0"),
            std::string::npos);
  bad = config;
  bad[48] = 7;  // the KV type code
  EXPECT_NE(Worker([&](Communicator& c) { send_config(c, bad); }).message().find("KV type code 7"),
            std::string::npos);
  EXPECT_EQ(Worker([&](Communicator& c) { (void)ReleaseWorkers(c); }).code(),
            absl::StatusCode::kCancelled);
  // A truncated plan, a plan whose size is out of range, a corrupted field.
  absl::Status s = Worker([&](Communicator& c) {
    send_config(c, config);
    SendBytes(c, std::vector<uint8_t>(plan.begin(), plan.end() - 5));
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  s = Worker([&](Communicator& c) {
    send_config(c, config);
    int32_t n = -3;
    (void)c.Broadcast(kernels::Tensor(&n, kernels::DType::kI32, {1}), 0);
  });
  EXPECT_NE(s.message().find("size -3 bytes"), std::string::npos) << s;
  bad = plan;
  bad[0] ^= 0xff;
  s = Worker([&](Communicator& c) {
    send_config(c, config);
    SendBytes(c, bad);
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // The same plan twice: refused as a replay (a plan with a new step but the old KV
  // generation: refused as stale).
  s = Worker([&](Communicator& c) {
    send_config(c, config);
    SendBytes(c, plan);
    SendBytes(c, plan);
  });
  EXPECT_NE(s.message().find("replayed"), std::string::npos) << s;
  absl::StatusOr<serving::StepPlan> decoded =
      serving::DecodeStepPlan(plan, {.num_blocks = kConfig.kv_blocks, .vocab = 1 << 20});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  serving::StepPlan later = *decoded;
  later.step += 1;
  s = Worker([&](Communicator& c) {
    send_config(c, config);
    SendBytes(c, plan);
    SendBytes(c, serving::EncodeStepPlan(later));
  });
  EXPECT_NE(s.message().find("stale step plan"), std::string::npos) << s;
  // A position that is not the sequence's length.
  serving::StepPlan skewed = *decoded;
  skewed.seqs[0].first_position = 1;
  s = Worker([&](Communicator& c) {
    send_config(c, config);
    SendBytes(c, serving::EncodeStepPlan(skewed));
  });
  EXPECT_NE(s.message().find("starts at position 1, its KV holds 0"), std::string::npos) << s;
}

}  // namespace
}  // namespace tessera
