// A small Jinja interpreter for chat templates: the subset published templates use
// (Llama 3.x, Qwen2/3, Mistral, Gemma 3, DeepSeek-V3, SmolLM2, ...), rendered as Hugging
// Face transformers renders them (jinja2's ImmutableSandboxedEnvironment with trim_blocks,
// lstrip_blocks and the loopcontrols extension; tojson as json.dumps(ensure_ascii=False);
// raise_exception and strftime_now as globals).
//
// Statements: if/elif/else, for (tuple targets, `if` filter, else, loop.*, break/continue),
// set (names, namespace attributes, block set), macro (positional and keyword arguments),
// generation (rendered as its body), comments, whitespace control (-) and {%+ %}.
// Expressions: literals (strings, numbers, true/false/none, lists, dicts, tuples), names,
// attribute and item access, slices, calls, filters, tests (is / is not), arithmetic,
// ~, comparisons, in / not in, and / or / not, conditional expressions.
//
// Untrusted input: templates and the values rendered are both data from outside. Parsing
// and rendering never abort: every failure is an INVALID_ARGUMENT naming the template line
// ("line 12: unknown filter 'foo'"), including raise_exception's message. Nesting depth,
// output size and work (loop iterations, calls) are limited (Limits); lists and dicts
// cannot be mutated (as in the sandbox), so a template cannot build cycles.
//
// Taint: every string carries the byte ranges that came from values marked as input (the
// conversation), through concatenation, trimming and slicing (other transformations taint
// the whole result). Rendered::input_ranges says which bytes of the output came from the
// input, so the caller can keep a message from forging the template's special tokens.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tessera::tokenizer::jinja {

// Sorted, disjoint [begin, end) byte ranges.
using Ranges = std::vector<std::pair<size_t, size_t>>;

struct Limits {
  int max_depth = 200;                 // expression / statement / macro call nesting
  size_t max_output = 4 << 20;         // bytes of rendered text (and of any one string)
  int64_t max_steps = 4'000'000;       // loop iterations + calls + output writes
};

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's
struct Callable;
struct Namespace;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable, kNamespace };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s, Ranges taint = {});
  static Value Input(std::string s);  // a string wholly from the input
  static Value MakeList(List items);
  static Value MakeTuple(List items);  // a list that prints as Python's tuple
  static Value MakeDict(Dict items);
  static Value MakeCallable(std::shared_ptr<const Callable> c);
  static Value MakeNamespace(std::shared_ptr<Namespace> ns);
  // JSON -> Value; with `input`, every string (keys excepted) is marked as input.
  static Value FromJson(const nlohmann::json& j, bool input);
  static Value FromJson(const nlohmann::ordered_json& j, bool input);  // keys in file order

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool AsBool() const;  // Python truthiness
  int64_t int_value() const { return i_; }
  double number() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : d_; }
  const std::string& str() const { return *s_; }
  const Ranges& taint() const { return *taint_; }
  const List& list() const { return *list_; }
  const Dict& dict() const { return *dict_; }
  const Callable& callable() const { return *callable_; }
  Namespace& ns() const { return *ns_; }
  // Dict / namespace member, or undefined.
  Value Get(absl::string_view key) const;
  // What {{ value }} writes (str() in Python: None -> "None", lists as their repr), with
  // its taint.
  Value ToStr() const;
  // Python repr (strings quoted), for lists' and dicts' str().
  std::string Repr() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const Ranges> taint_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<const Dict> dict_;
  std::shared_ptr<const Callable> callable_;
  std::shared_ptr<Namespace> ns_;
};

// namespace(): the one mutable object (set ns.attr = ...).
struct Namespace {
  std::map<std::string, Value> attrs;
};

struct Node;  // the parsed template (jinja_internal.h)

struct Rendered {
  std::string text;
  Ranges input_ranges;  // bytes of `text` that came from input strings
};

class Template {
 public:
  static absl::StatusOr<Template> Parse(absl::string_view source, const Limits& limits = {});
  // Renders with `context`'s keys as the top-level variables (a dict). strftime_now
  // formats `unix_time` (local time; -1: now).
  absl::StatusOr<Rendered> Render(const Value& context, int64_t unix_time = -1) const;

 private:
  std::shared_ptr<const Node> root_;
  Limits limits_;
};

}  // namespace tessera::tokenizer::jinja
