#include "runtime/tokenizer/bpe.h"

#include <queue>

namespace tessera::tokenizer {

void BpeMergeByRank(const MergeTable& merges, std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::vector<bool> alive(n, true);

  struct Cand {
    int32_t rank;
    int pos;
    int32_t left, right, result;
  };
  // Min-heap: lowest rank first, then leftmost position (Hugging Face's order).
  auto later = [](const Cand& a, const Cand& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos);
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(later)> heap(later);
  auto consider = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    const int j = next[i];
    if (const MergeTable::Merge* m = merges.Find(ids[i], ids[j])) {
      heap.push({m->rank, i, ids[i], ids[j], m->result});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    // Skip candidates made stale by an earlier merge at or next to this position.
    if (!alive[c.pos] || ids[c.pos] != c.left) continue;
    const int j = next[c.pos];
    if (j < 0 || ids[j] != c.right) continue;
    ids[c.pos] = c.result;
    alive[j] = false;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }

  size_t w = 0;
  for (int i = 0; i < n; ++i) {
    if (alive[i]) ids[w++] = ids[i];
  }
  ids.resize(w);
}

}  // namespace tessera::tokenizer
