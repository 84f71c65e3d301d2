// The parsed form of a Jinja template (jinja.h), shared by the parser (jinja_parse.cc) and
// the evaluator (jinja_eval.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tokenizer/jinja.h"

namespace tessera::tokenizer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // args
    kTuple,    // args
    kDict,     // args: key, value, key, value, ...
    kAttr,     // args[0].name
    kItem,     // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // name ("-", "+", "not") args[0]
    kBinary,   // args[0] name args[1]: + - * / // % ** ~ == != < > <= >= in "not in"
    kAnd,      // args[0] and args[1]
    kOr,
    kCond,     // args[0] if args[1] else args[2] (args[2] null: undefined)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  bool negate = false;  // kTest: "is not"
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kBody,      // body
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body); the else branch has a null condition
    kFor,       // for targets in expr [if filter]: body [else: else_body]
    kSet,       // set targets = expr; with attr: set targets[0].attr = expr
    kSetBlock,  // set targets[0]: body
    kMacro,     // macro name(params = defaults): body
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr, filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::string> targets;
  std::string attr, name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null when it has none
  Body body, else_body;
};

// Arguments of a call, filter or test.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Renderer;

// A function value: a builtin (range, namespace, raise_exception, ...) or a macro.
struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(Renderer&, const Args&, int line)> call;
};

// ---- Lexing (jinja_lex.cc) ----

// One piece of the template: text, or the inside of a {{ }} / {% %} tag.
struct Piece {
  enum class Kind { kText, kOutput, kBlock } kind;
  std::string text;
  int line;
};
// The template's text and tags, whitespace control applied.
absl::StatusOr<std::vector<Piece>> Split(absl::string_view src);

struct Token {
  enum class Kind { kName, kInt, kFloat, kString, kOp, kEnd } kind;
  std::string text;
  Value value;
};
// A tag's inside as tokens, ending with a kEnd token.
absl::StatusOr<std::vector<Token>> Lex(absl::string_view s, int line);

absl::StatusOr<std::shared_ptr<const Node>> ParseTemplate(absl::string_view source,
                                                          const Limits& limits);

// "line N: message" as INVALID_ARGUMENT.
absl::Status LineError(int line, absl::string_view message);

// Python's float repr (shortest round trip: 1.0, 0.30000000000000004, 1e+20).
std::string FloatRepr(double d);

// ---- Shared by the evaluator and the builtins (jinja_builtins.cc) ----

// Counts one unit of work against Limits::max_steps.
absl::Status Step(Renderer& r, int line);
const Limits& LimitsOf(const Renderer& r);

// Builds a string piece by piece, taint included, in linear time.
class StringBuilder {
 public:
  void Append(const Value& s);  // a string
  size_t size() const { return text_.size(); }
  Value Take();

 private:
  std::string text_;
  Ranges taint_;
};

// a + b of strings, keeping both taints.
Value Concat(const Value& a, const Value& b);
// Work units for building a string of `bytes` (one per 256 bytes), so that copying is
// bounded by Limits::max_steps too.
absl::Status StepBytes(Renderer& r, size_t bytes, int line);
// How deeply lists and dicts nest in v (0 for a scalar); true when v holds a namespace.
int Nesting(const Value& v);
bool HoldsNamespace(const Value& v);
// Whether v holds any input: a tainted string, or a list or dict with one inside.
bool HasInput(const Value& v);
// `s` made from `from`: wholly input if `from` held any.
Value Derived(const Value& from, std::string s);
// from[begin, begin + n) of a string, its taint clipped.
Value Substr(const Value& from, size_t begin, size_t n);
// Python ==; and <, returning -1 / 0 / 1 (strings, numbers, lists), an error otherwise.
bool Equal(const Value& a, const Value& b);
absl::StatusOr<int> Compare(const Value& a, const Value& b, int line);
// The items a for loop visits: list items, dict keys, a string's characters.
absl::StatusOr<List> Iterate(const Value& v, int line);
// x.name: a dict's key (or its items / keys / values / get method), a namespace's
// attribute, a string's method; undefined when there is none.
Value GetAttr(const Value& v, const std::string& name);
absl::StatusOr<Value> ApplyFilter(Renderer& r, const std::string& name, const Value& v,
                                  const Args& args, int line);
absl::StatusOr<bool> ApplyTest(Renderer& r, const std::string& name, const Value& v,
                               const Args& args, int line);
// Helpers of the builtins (jinja_builtins.cc), shared with the filters (jinja_filters.cc).
const char* TypeName(const Value& v);
// UTF-8 code points of s, as (byte offset, length).
std::vector<std::pair<size_t, size_t>> CodePoints(const std::string& s);
// Python's str.strip / lstrip / rstrip: ASCII whitespace, or the characters of `chars`.
Value Strip(const Value& s, bool left, bool right, const Value* chars);
// Python's str.upper / lower (full Unicode mappings), title / capitalize.
std::string Lower(const std::string& s);
std::string Upper(const std::string& s);
std::string Title(const std::string& s);
std::string Capitalize(const std::string& s);
// s with `a` replaced by `b`, at most `count` times (-1: all).
std::string Replace(const std::string& s, const std::string& a, const std::string& b, int64_t count);
// Argument `i` by position, or by keyword `name`; null when absent.
const Value* Arg(const Args& a, size_t i, absl::string_view name);
// An integer argument, `fallback` when absent or none.
absl::StatusOr<int64_t> IntArg(const Value* v, int64_t fallback, absl::string_view what, int line);

// range, namespace, raise_exception, strftime_now (at `unix_time`).
std::vector<std::pair<std::string, Value>> BuiltinGlobals(int64_t unix_time);

}  // namespace tessera::tokenizer::jinja
