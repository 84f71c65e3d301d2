// Ring attention across real MPI processes (ctest runs it under mpirun on 2, 3 and 4 ranks):
// every rank checks its share against single-rank attention over the whole sequence
// (ring_case.h), for lengths that do and do not divide by 2·cp, GQA, a sliding window and
// document masks. Rank 0 prints "ring_attention_mpi_test: PASS on N ranks".
#include <cstdio>

#include "parallel/mpi_communicator.h"
#include "ring_case.h"

int main(int argc, char** argv) {
  using namespace tessera::parallel;
  absl::StatusOr<std::unique_ptr<MpiSession>> session = MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<MpiCommunicator>> comm =
      MpiCommunicator::Create(MPI_COMM_WORLD, absl::Seconds(30));
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return 1;
  }
  const int cp = (*comm)->size(), rank = (*comm)->rank();
  int failures = 0;
  uint32_t seed = 1;
  for (int64_t L : {int64_t{2} * cp * 16, int64_t{2} * cp * 16 + 3, int64_t{257}}) {
    for (int64_t window : {int64_t{0}, int64_t{21}}) {
      for (bool docs : {false, true}) {
        testing::RingCase c{.length = L, .window = window, .seed = seed++};
        if (docs) c.doc_starts = {L / 4, L / 2 + 1};
        const testing::RingData data = testing::MakeRingData(c);
        absl::Status st;
        const double err = testing::RunRingShare(**comm, c, data, &st);
        if (!st.ok() || err >= 1e-5) {
          ++failures;
          std::fprintf(stderr, "rank %d: L %ld window %ld docs %d: %s, error %.3g (check failed)\n",
                       rank, static_cast<long>(L), static_cast<long>(window), docs,
                       st.ToString().c_str(), err);
        }
      }
    }
  }
  std::vector<float> total = {static_cast<float>(failures)};
  if (!(*comm)->AllReduceSum(tessera::kernels::Tensor(total.data(), tessera::kernels::DType::kF32, {1})).ok()) {
    return 1;
  }
  if (rank == 0) {
    std::printf("ring_attention_mpi_test: %s on %d ranks (%g failed cases)\n",
                total[0] == 0 ? "PASS" : "FAIL", cp, total[0]);
  }
  return total[0] == 0 ? 0 : 1;
}
