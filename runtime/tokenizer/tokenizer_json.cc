#include "runtime/tokenizer/tokenizer_json.h"

#include "absl/strings/str_cat.h"

namespace tessera::tokenizer {
namespace {

using json = nlohmann::json;

class Sax : public nlohmann::json_sax<json> {
 public:
  explicit Sax(TokenizerJson& out) : out_(out) {}

  bool null() override { return Value(json()); }
  bool boolean(bool v) override { return Value(json(v)); }
  bool number_integer(number_integer_t v) override { return Id(v) || Value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    return Id(v <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(v) : -1) ||
           Value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return Id(-1) || Value(json(v)); }
  bool string(string_t& v) override { return Id(-1) || Value(json(std::move(v))); }
  bool binary(binary_t& v) override { return Id(-1) || Value(json::binary(std::move(v))); }

  bool start_object(std::size_t) override {
    if (streaming_ > 0) {  // a nested value inside the vocab: invalid id, skip its contents
      if (streaming_ == 1) Id(-1);
      return Deeper();
    }
    if (stack_.size() == 2 && path_.size() == 2 && path_[1] == "model" && key_ == "vocab" &&
        stack_.back()->is_object()) {
      streaming_ = 1;
      out_.has_vocab = true;
      return true;
    }
    return Open(json::object());
  }
  bool end_object() override {
    if (streaming_ > 0) {
      --streaming_;
      return true;
    }
    return Close();
  }
  bool start_array(std::size_t) override {
    if (streaming_ > 0) {
      if (streaming_ == 1) Id(-1);
      return Deeper();
    }
    return Open(json::array());
  }
  bool end_array() override {
    if (streaming_ > 0) {
      --streaming_;
      return true;
    }
    return Close();
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&,
                   const nlohmann::detail::exception& e) override {
    error_ = absl::StrCat("not valid JSON at byte ", pos, ": ", e.what());
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  // In the vocab object (directly): record (key, id). Returns false when not streaming.
  bool Id(int64_t id) {
    if (streaming_ != 1) return streaming_ > 1;
    out_.vocab.emplace_back(std::move(key_), id);
    return true;
  }
  json* Insert(json v) {
    if (stack_.empty()) {
      out_.root = std::move(v);
      return &out_.root;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    json& slot = (*top)[key_];
    slot = std::move(v);
    return &slot;
  }
  bool Value(json v) {
    Insert(std::move(v));
    return true;
  }
  bool TooDeep() {
    error_ = absl::StrCat("nested more than ", kMaxTokenizerJsonDepth,
                          " levels deep (the limit; real tokenizers use under 10)");
    return false;
  }
  bool Deeper() {
    if (stack_.size() + streaming_ >= kMaxTokenizerJsonDepth) return TooDeep();
    ++streaming_;
    return true;
  }
  bool Open(json v) {
    if (stack_.size() >= kMaxTokenizerJsonDepth) return TooDeep();
    const bool in_object = !stack_.empty() && stack_.back()->is_object();
    std::string k = in_object ? key_ : std::string();
    stack_.push_back(Insert(std::move(v)));
    path_.push_back(std::move(k));
    return true;
  }
  bool Close() {
    if (stack_.empty()) return false;
    stack_.pop_back();
    path_.pop_back();
    return true;
  }

  TokenizerJson& out_;
  std::vector<json*> stack_;       // containers being filled, outermost first
  std::vector<std::string> path_;  // the key each container sits under ("" at top / in arrays)
  std::string key_;                // the last object key seen
  int streaming_ = 0;              // depth inside model.vocab; 0 when not in it
  std::string error_;
};

}  // namespace

absl::StatusOr<TokenizerJson> ParseTokenizerJson(const std::string& text, const std::string& name) {
  TokenizerJson out;
  Sax sax(out);
  const bool ok = json::sax_parse(text, &sax);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", sax.error().empty() ? "not valid JSON" : sax.error()));
  }
  return out;
}

}  // namespace tessera::tokenizer
