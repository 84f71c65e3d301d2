// Stop strings: generation ends when the text produced so far contains one of them, even
// across token boundaries ("\n\nUser:" made of three tokens). Text-level, so it runs on the
// leader after detokenization; the scheduler knows only stop tokens.
//
// Append each new piece of decoded text; once a stop string occurs, done() is true and
// text() ends just before it (the stop string is not part of the output). A streaming
// caller may send text()[0, stable()) at once: the rest could still turn out to begin a
// stop string. Not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera::serving {

class StopStrings {
 public:
  // INVALID_ARGUMENT for an empty stop string (it would stop before the first token).
  static absl::StatusOr<StopStrings> Create(std::vector<std::string> stops);

  // Appends `piece`; returns done().
  bool Append(absl::string_view piece);
  bool done() const { return done_; }
  const std::string& text() const { return text_; }
  // The stop string that matched; empty before done().
  const std::string& matched() const { return matched_ >= 0 ? stops_[matched_] : kNone; }
  // Bytes of text() that no later piece can take back.
  size_t stable() const;

 private:
  explicit StopStrings(std::vector<std::string> stops);

  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string text_;
  bool done_ = false;
  int matched_ = -1;
  static inline const std::string kNone;
};

}  // namespace tessera::serving
