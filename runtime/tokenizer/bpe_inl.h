// Template body of SpmMergeByScore (see bpe.h); not for direct inclusion.
#pragma once

#include <queue>

#include "runtime/tokenizer/unicode.h"

namespace tessera::tokenizer {

template <typename Lookup>
std::vector<std::pair<size_t, size_t>> SpmMergeByScore(absl::string_view text, const Lookup& lookup,
                                                       const std::vector<float>& scores) {
  struct Sym {
    size_t off, len;
    int prev, next;
  };
  std::vector<Sym> syms;
  for (size_t off = 0; off < text.size();) {
    const size_t len = Utf8CharLen(text, off);
    const int idx = static_cast<int>(syms.size());
    syms.push_back({off, len, idx - 1, -1});
    if (idx > 0) syms[idx - 1].next = idx;
    off += len;
  }

  struct Cand {
    float score;
    int left, right;
    size_t len;  // combined length when pushed: a stale candidate no longer matches
  };
  // Highest score first; on equal scores the leftmost pair (as llama.cpp / sentencepiece).
  auto worse = [](const Cand& a, const Cand& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const size_t len = syms[l].len + syms[r].len;
    const std::optional<int32_t> id = lookup(text.substr(syms[l].off, len));
    if (!id) return;
    const float score = *id >= 0 && static_cast<size_t>(*id) < scores.size() ? scores[*id] : 0.f;
    heap.push({score, l, r, len});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len || l.next != c.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }

  std::vector<std::pair<size_t, size_t>> out;
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    out.emplace_back(syms[i].off, syms[i].len);
  }
  return out;
}

}  // namespace tessera::tokenizer
