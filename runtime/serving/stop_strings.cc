#include "runtime/serving/stop_strings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera::serving {

absl::StatusOr<StopStrings> StopStrings::Create(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] is an empty string"));
    }
  }
  return StopStrings(std::move(stops));
}

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

bool StopStrings::Append(absl::string_view piece) {
  if (done_) return true;
  const size_t before = text_.size();
  text_.append(piece.data(), piece.size());
  // A match not found before ends at least partly inside the new piece.
  const size_t from = before >= longest_ ? before - longest_ + 1 : 0;
  size_t cut = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t at = text_.find(stops_[i], from);
    if (at < cut) {  // the earliest match wins (the first listed on a tie)
      cut = at;
      matched_ = static_cast<int>(i);
    }
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    done_ = true;
  }
  return done_;
}

size_t StopStrings::stable() const {
  if (done_ || longest_ == 0) return text_.size();
  return text_.size() >= longest_ ? text_.size() - longest_ + 1 : 0;
}

}  // namespace tessera::serving
