// Renders a parsed Jinja template (jinja_internal.h): scopes as jinja2 keeps them (a for
// loop's body starts each iteration from the enclosing values, `if` opens no scope, a
// macro sees the template's top level and its arguments), output with its input taint.
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {

class Renderer {
 public:
  Renderer(std::shared_ptr<const Node> root, const Limits& limits, int64_t unix_time)
      : root_(std::move(root)), limits_(limits) {
    scopes_.emplace_back();
    for (auto& [k, v] : BuiltinGlobals(unix_time)) scopes_.front()[k] = std::move(v);
  }

  absl::StatusOr<Rendered> Run(const Value& context) {
    if (context.kind() == Value::Kind::kDict) {
      for (const auto& [k, v] : context.dict()) scopes_.front()[k] = v;
    }
    scopes_.emplace_back();  // the template's own assignments
    outputs_.emplace_back();
    Flow flow = Flow::kNormal;
    if (absl::Status s = Exec(root_->body, flow); !s.ok()) return s;
    Value out = outputs_.back().Take();
    Rendered r;
    r.text = out.str();
    r.input_ranges = out.taint();
    return r;
  }

  absl::Status Step(int line) {
    if (++steps_ > limits_.max_steps) {
      return LineError(line, absl::StrCat("the template does more than ", limits_.max_steps,
                                          " steps of work"));
    }
    return absl::OkStatus();
  }
  const Limits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Scope = std::map<std::string, Value>;

  struct Depth {
    explicit Depth(Renderer& r) : r(r) { ++r.depth_; }
    ~Depth() { --r.depth_; }
    Renderer& r;
  };
  absl::Status CheckDepth(int line) const {
    if (depth_ > limits_.max_depth) {
      return LineError(line, absl::StrCat("rendering nested deeper than ", limits_.max_depth));
    }
    return absl::OkStatus();
  }

  // Values nest no deeper than max_depth (printing and comparing them recurses).
  absl::Status CheckNesting(const Value& v, int line) const {
    if (Nesting(v) > limits_.max_depth) {
      return LineError(line, absl::StrCat("lists and dicts nested deeper than ", limits_.max_depth));
    }
    return absl::OkStatus();
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  absl::Status Write(const Value& v, int line) {
    if (absl::Status s = Step(line); !s.ok()) return s;
    StringBuilder& out = outputs_.back();
    if (out.size() + v.str().size() > limits_.max_output) {
      return LineError(line, absl::StrCat("the output exceeds ", limits_.max_output, " bytes"));
    }
    out.Append(v);
    return absl::OkStatus();
  }

  // ---- Statements ----

  absl::Status Exec(const Body& body, Flow& flow) {
    for (const NodePtr& n : body) {
      if (absl::Status s = ExecNode(*n, flow); !s.ok()) return s;
      if (flow != Flow::kNormal) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status Assign(const std::vector<std::string>& targets, const Value& v, int line, Scope& scope) {
    if (targets.size() == 1) {
      scope[targets[0]] = v;
      return absl::OkStatus();
    }
    auto items = Iterate(v, line);
    if (!items.ok()) return items.status();
    if (items->size() != targets.size()) {
      return LineError(line, absl::StrCat("cannot unpack ", items->size(), " values into ",
                                          targets.size(), " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) scope[targets[i]] = (*items)[i];
    return absl::OkStatus();
  }

  absl::Status ExecNode(const Node& n, Flow& flow) {
    Depth d(*this);
    if (absl::Status s = CheckDepth(n.line); !s.ok()) return s;
    switch (n.kind) {
      case Node::Kind::kBody: return Exec(n.body, flow);
      case Node::Kind::kText: return Write(Value::String(n.text), n.line);
      case Node::Kind::kOutput: {
        auto v = Eval(*n.expr);
        if (!v.ok()) return v.status();
        return Write(v->ToStr(), n.line);
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            auto c = Eval(*cond);
            if (!c.ok()) return c.status();
            take = c->AsBool();
          }
          if (take) return Exec(body, flow);
        }
        return absl::OkStatus();
      case Node::Kind::kFor: return For(n, flow);
      case Node::Kind::kSet: {
        auto v = Eval(*n.expr);
        if (!v.ok()) return v.status();
        if (!n.attr.empty()) {
          const Value target = Lookup(n.targets[0]);
          if (target.kind() != Value::Kind::kNamespace) {
            return LineError(n.line, absl::StrCat("cannot set an attribute of '", n.targets[0],
                                                  "', which is not a namespace()"));
          }
          // No namespace inside a namespace: no cycles, so printing one terminates.
          if (HoldsNamespace(*v)) {
            return LineError(n.line, "a namespace() attribute cannot hold a namespace");
          }
          target.ns().attrs[n.attr] = *v;
          return absl::OkStatus();
        }
        return Assign(n.targets, *v, n.line, scopes_.back());
      }
      case Node::Kind::kSetBlock: {
        auto v = Capture(n.body, n.line);
        if (!v.ok()) return v.status();
        scopes_.back()[n.targets[0]] = *v;
        return absl::OkStatus();
      }
      case Node::Kind::kMacro: {
        scopes_.back()[n.name] = MakeMacro(n);
        return absl::OkStatus();
      }
      case Node::Kind::kBreak: flow = Flow::kBreak; return absl::OkStatus();
      case Node::Kind::kContinue: flow = Flow::kContinue; return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> Capture(const Body& body, int line) {
    outputs_.emplace_back();
    Flow flow = Flow::kNormal;
    absl::Status s = Exec(body, flow);
    Value out = outputs_.back().Take();
    outputs_.pop_back();
    if (!s.ok()) return s;
    (void)line;
    return out;
  }

  absl::Status For(const Node& n, Flow& outer_flow) {
    auto iterable = Eval(*n.expr);
    if (!iterable.ok()) return iterable.status();
    auto all = Iterate(*iterable, n.line);
    if (!all.ok()) return all.status();
    // The loop filter runs first, so loop.index and loop.last count the items kept.
    List items;
    for (const Value& item : *all) {
      if (n.filter) {
        scopes_.emplace_back();
        absl::Status s = Assign(n.targets, item, n.line, scopes_.back());
        absl::StatusOr<Value> keep = s.ok() ? Eval(*n.filter) : absl::StatusOr<Value>(s);
        scopes_.pop_back();
        if (!keep.ok()) return keep.status();
        if (!keep->AsBool()) continue;
      }
      items.push_back(item);
    }
    if (items.empty()) {
      Flow flow = Flow::kNormal;
      return Exec(n.else_body, flow);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      if (absl::Status s = Step(n.line); !s.ok()) return s;
      scopes_.emplace_back();
      Scope& scope = scopes_.back();
      Dict loop = {{"index", Value::Int(i + 1)},
                   {"index0", Value::Int(i)},
                   {"revindex", Value::Int(len - i)},
                   {"revindex0", Value::Int(len - i - 1)},
                   {"first", Value::Bool(i == 0)},
                   {"last", Value::Bool(i == len - 1)},
                   {"length", Value::Int(len)},
                   {"previtem", i > 0 ? items[i - 1] : Value()},
                   {"nextitem", i + 1 < len ? items[i + 1] : Value()}};
      scope["loop"] = Value::MakeDict(std::move(loop));
      absl::Status s = Assign(n.targets, items[i], n.line, scope);
      Flow flow = Flow::kNormal;
      if (s.ok()) s = Exec(n.body, flow);
      scopes_.pop_back();
      if (!s.ok()) return s;
      if (flow == Flow::kBreak) break;
    }
    (void)outer_flow;
    return absl::OkStatus();
  }

  Value MakeMacro(const Node& n) {
    auto c = std::make_shared<Callable>();
    c->name = n.name;
    const Node* node = &n;
    c->call = [node](Renderer& r, const Args& a, int line) -> absl::StatusOr<Value> {
      return r.CallMacro(*node, a, line);
    };
    return Value::MakeCallable(std::move(c));
  }

  absl::StatusOr<Value> CallMacro(const Node& m, const Args& a, int line) {
    if (a.positional.size() > m.params.size()) {
      return LineError(line, absl::StrCat("macro '", m.name, "' takes ", m.params.size(),
                                          " arguments, ", a.positional.size(), " given"));
    }
    Scope args;
    for (size_t i = 0; i < m.params.size(); ++i) {
      if (i < a.positional.size()) {
        args[m.params[i]] = a.positional[i];
        continue;
      }
      bool found = false;
      for (const auto& [k, v] : a.keyword) {
        if (k == m.params[i]) args[k] = v, found = true;
      }
      if (!found && m.defaults[i]) {
        auto d = Eval(*m.defaults[i]);
        if (!d.ok()) return d.status();
        args[m.params[i]] = *d;
      }
    }
    for (const auto& [k, v] : a.keyword) {
      if (std::find(m.params.begin(), m.params.end(), k) == m.params.end()) {
        return LineError(line, absl::StrCat("macro '", m.name, "' has no argument '", k, "'"));
      }
    }
    // The macro sees the globals, the template's top level and its arguments.
    std::vector<Scope> saved;
    while (scopes_.size() > 2) {
      saved.push_back(std::move(scopes_.back()));
      scopes_.pop_back();
    }
    scopes_.push_back(std::move(args));
    auto out = Capture(m.body, line);
    scopes_.pop_back();
    while (!saved.empty()) {
      scopes_.push_back(std::move(saved.back()));
      saved.pop_back();
    }
    return out;
  }

  // ---- Expressions ----

  absl::StatusOr<Args> EvalArgs(const Expr& e, size_t first) {
    Args a;
    for (size_t i = first; i < e.args.size(); ++i) {
      auto v = Eval(*e.args[i]);
      if (!v.ok()) return v.status();
      a.positional.push_back(*v);
    }
    for (const auto& [k, x] : e.kwargs) {
      auto v = Eval(*x);
      if (!v.ok()) return v.status();
      a.keyword.emplace_back(k, *v);
    }
    return a;
  }

  static std::string Describe(const Expr& e) {
    if (e.kind == Expr::Kind::kName) return e.name;
    if (e.kind == Expr::Kind::kAttr) return Describe(*e.args[0]) + "." + e.name;
    if (e.kind == Expr::Kind::kItem) return Describe(*e.args[0]) + "[...]";
    return "the value";
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    Depth d(*this);
    if (absl::Status s = CheckDepth(e.line); !s.ok()) return s;
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const ExprPtr& x : e.args) {
          auto v = Eval(*x);
          if (!v.ok()) return v.status();
          items.push_back(*v);
        }
        Value v = e.kind == Expr::Kind::kTuple ? Value::MakeTuple(std::move(items))
                                               : Value::MakeList(std::move(items));
        if (absl::Status s = CheckNesting(v, e.line); !s.ok()) return s;
        return v;
      }
      case Expr::Kind::kDict: {
        Dict items;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          auto k = Eval(*e.args[i]);
          if (!k.ok()) return k.status();
          auto v = Eval(*e.args[i + 1]);
          if (!v.ok()) return v.status();
          if (!k->is_string()) return LineError(e.line, "dict keys must be strings");
          bool replaced = false;
          for (auto& [key, val] : items) {
            if (key == k->str()) val = *v, replaced = true;
          }
          if (!replaced) items.emplace_back(k->str(), *v);
        }
        Value v = Value::MakeDict(std::move(items));
        if (absl::Status s = CheckNesting(v, e.line); !s.ok()) return s;
        return v;
      }
      case Expr::Kind::kAttr:
      case Expr::Kind::kItem: return Subscript(e);
      case Expr::Kind::kSlice: return Slice(e);
      case Expr::Kind::kCall: {
        auto f = Eval(*e.args[0]);
        if (!f.ok()) return f.status();
        if (f->kind() != Value::Kind::kCallable) {
          return LineError(e.line, absl::StrCat("'", Describe(*e.args[0]), "' is not callable"));
        }
        auto a = EvalArgs(e, 1);
        if (!a.ok()) return a.status();
        if (absl::Status s = Step(e.line); !s.ok()) return s;
        return f->callable().call(*this, *a, e.line);
      }
      case Expr::Kind::kFilter: {
        auto v = Eval(*e.args[0]);
        if (!v.ok()) return v.status();
        auto a = EvalArgs(e, 1);
        if (!a.ok()) return a.status();
        return ApplyFilter(*this, e.name, *v, *a, e.line);
      }
      case Expr::Kind::kTest: {
        auto v = Eval(*e.args[0]);
        if (!v.ok()) return v.status();
        auto a = EvalArgs(e, 1);
        if (!a.ok()) return a.status();
        auto t = ApplyTest(*this, e.name, *v, *a, e.line);
        if (!t.ok()) return t.status();
        return Value::Bool(*t != e.negate);
      }
      case Expr::Kind::kUnary: {
        auto v = Eval(*e.args[0]);
        if (!v.ok()) return v.status();
        if (e.name == "not") return Value::Bool(!v->AsBool());
        if (v->kind() == Value::Kind::kInt) {
          if (e.name == "+") return *v;
          if (v->int_value() == INT64_MIN) return LineError(e.line, "integer overflow");
          return Value::Int(-v->int_value());
        }
        if (v->kind() == Value::Kind::kFloat) return Value::Float(e.name == "-" ? -v->number() : v->number());
        return LineError(e.line, absl::StrCat("bad operand for unary ", e.name));
      }
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr: {
        auto a = Eval(*e.args[0]);
        if (!a.ok()) return a.status();
        if (a->AsBool() == (e.kind == Expr::Kind::kOr)) return a;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kCond: {
        auto c = Eval(*e.args[1]);
        if (!c.ok()) return c.status();
        if (c->AsBool()) return Eval(*e.args[0]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value();
      }
      case Expr::Kind::kBinary: return Binary(e);
    }
    return LineError(e.line, "unknown expression");
  }

  absl::StatusOr<Value> Subscript(const Expr& e) {
    auto base = Eval(*e.args[0]);
    if (!base.ok()) return base.status();
    if (base->is_undefined()) {
      return LineError(e.line, absl::StrCat("'", Describe(*e.args[0]), "' is undefined"));
    }
    if (e.kind == Expr::Kind::kAttr) {
      if (base->kind() == Value::Kind::kList) {  // x.0
        char* end = nullptr;
        const long long i = std::strtoll(e.name.c_str(), &end, 10);
        if (end && *end == '\0' && i >= 0 && static_cast<size_t>(i) < base->list().size()) {
          return base->list()[static_cast<size_t>(i)];
        }
        return Value();
      }
      return GetAttr(*base, e.name);
    }
    auto key = Eval(*e.args[1]);
    if (!key.ok()) return key.status();
    if (key->kind() == Value::Kind::kInt &&
        (base->kind() == Value::Kind::kList || base->is_string())) {
      auto items = Iterate(*base, e.line);
      if (!items.ok()) return items.status();
      int64_t i = key->int_value();
      const int64_t n = static_cast<int64_t>(items->size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();  // jinja2: an undefined value, not an error
      return (*items)[static_cast<size_t>(i)];
    }
    if (key->is_string()) {
      if (base->kind() == Value::Kind::kDict) {
        Value v = base->Get(key->str());
        return v.is_undefined() ? GetAttr(*base, key->str()) : v;
      }
      return GetAttr(*base, key->str());
    }
    return Value();
  }

  absl::StatusOr<Value> Slice(const Expr& e) {
    auto base = Eval(*e.args[0]);
    if (!base.ok()) return base.status();
    int64_t parts[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int i = 0; i < 3; ++i) {
      if (!e.args[1 + i]) continue;
      auto v = Eval(*e.args[1 + i]);
      if (!v.ok()) return v.status();
      if (v->kind() == Value::Kind::kNone) continue;
      if (v->kind() != Value::Kind::kInt) return LineError(e.line, "slice indices must be integers");
      parts[i] = v->int_value();
      given[i] = true;
    }
    const int64_t step = parts[2];
    if (step == 0) return LineError(e.line, "slice step cannot be zero");
    auto items = Iterate(*base, e.line);
    if (!items.ok()) return items.status();
    const int64_t n = static_cast<int64_t>(items->size());
    auto clamp = [&](int64_t i, bool is_given, int64_t fallback) {
      if (!is_given) return fallback;
      if (i < 0) i += n;
      if (step > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t start = clamp(parts[0], given[0], step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(parts[1], given[1], step > 0 ? n : -1);
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back((*items)[static_cast<size_t>(i)]);
    if (base->is_string()) {
      if (step == 1) {
        size_t b = 0, len = 0, pos = 0;
        for (int64_t i = 0; i < n; ++i) {
          const size_t w = (*items)[static_cast<size_t>(i)].str().size();
          if (i == start) b = pos;
          if (i >= start && i < stop) len += w;
          pos += w;
        }
        return Substr(*base, start >= n ? pos : b, len);
      }
      StringBuilder s;
      for (const Value& c : out) s.Append(c);
      return s.Take();
    }
    return Value::MakeList(std::move(out));
  }

  absl::StatusOr<Value> Binary(const Expr& e) {
    auto av = Eval(*e.args[0]);
    if (!av.ok()) return av.status();
    auto bv = Eval(*e.args[1]);
    if (!bv.ok()) return bv.status();
    const Value &a = *av, &b = *bv;
    const std::string& op = e.name;
    auto type_error = [&]() {
      return LineError(e.line, absl::StrCat("unsupported operand types for ", op));
    };
    if (op == "~") {
      const Value x = a.ToStr(), y = b.ToStr();
      if (x.str().size() + y.str().size() > limits_.max_output) {
        return LineError(e.line, "a string exceeds the output limit");
      }
      if (absl::Status s = StepBytes(*this, x.str().size() + y.str().size(), e.line); !s.ok()) return s;
      return Concat(x, y);
    }
    if (op == "==") return Value::Bool(Equal(a, b));
    if (op == "!=") return Value::Bool(!Equal(a, b));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      auto c = Compare(a, b, e.line);
      if (!c.ok()) return c.status();
      return Value::Bool(op == "<" ? *c < 0 : op == ">" ? *c > 0 : op == "<=" ? *c <= 0 : *c >= 0);
    }
    if (op == "in" || op == "not in") {
      bool found = false;
      if (b.is_string()) {
        if (!a.is_string()) return LineError(e.line, "'in <string>' needs a string on the left");
        found = b.str().find(a.str()) != std::string::npos;
      } else if (b.kind() == Value::Kind::kDict) {
        found = a.is_string() && !b.Get(a.str()).is_undefined();
      } else if (b.kind() == Value::Kind::kList) {
        for (const Value& x : b.list()) found = found || Equal(x, a);
      } else {
        return LineError(e.line, absl::StrCat("'in' needs a string, list or mapping on the right"));
      }
      return Value::Bool(found == (op == "in"));
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        if (a.str().size() + b.str().size() > limits_.max_output) {
          return LineError(e.line, "a string exceeds the output limit");
        }
        if (absl::Status s = StepBytes(*this, a.str().size() + b.str().size(), e.line); !s.ok()) return s;
        return Concat(a, b);
      }
      if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList) {
        if (a.list().size() + b.list().size() > limits_.max_output) return LineError(e.line, "a list too long");
        if (absl::Status s = StepBytes(*this, 16 * (a.list().size() + b.list().size()), e.line); !s.ok()) {
          return s;
        }
        List out = a.list();
        out.insert(out.end(), b.list().begin(), b.list().end());
        return Value::MakeList(std::move(out));
      }
    }
    if (op == "*" && ((a.is_string() && b.kind() == Value::Kind::kInt) ||
                      (b.is_string() && a.kind() == Value::Kind::kInt))) {
      const Value& s = a.is_string() ? a : b;
      const int64_t n = a.is_string() ? b.int_value() : a.int_value();
      if (n > 0 && s.str().size() * static_cast<uint64_t>(n) > limits_.max_output) {
        return LineError(e.line, "a string exceeds the output limit");
      }
      StringBuilder out;
      for (int64_t i = 0; i < n; ++i) out.Append(s);
      return out.Take();
    }
    const bool nums = (a.is_number() || a.kind() == Value::Kind::kBool) &&
                      (b.is_number() || b.kind() == Value::Kind::kBool);
    if (!nums) return type_error();
    const bool ints = a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat;
    const int64_t x = a.kind() == Value::Kind::kBool ? a.AsBool() : a.int_value();
    const int64_t y = b.kind() == Value::Kind::kBool ? b.AsBool() : b.int_value();
    const double p = a.kind() == Value::Kind::kBool ? a.AsBool() : a.number();
    const double q = b.kind() == Value::Kind::kBool ? b.AsBool() : b.number();
    int64_t r = 0;
    if (ints && (op == "+" || op == "-" || op == "*")) {
      const bool overflow = op == "+" ? __builtin_add_overflow(x, y, &r)
                            : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                        : __builtin_mul_overflow(x, y, &r);
      if (overflow) return LineError(e.line, "integer overflow");
      return Value::Int(r);
    }
    if (op == "+") return Value::Float(p + q);
    if (op == "-") return Value::Float(p - q);
    if (op == "*") return Value::Float(p * q);
    if (op == "/" || op == "//" || op == "%") {
      if (q == 0) return LineError(e.line, "division by zero");
      if (ints && op != "/") {
        if (x == INT64_MIN && y == -1) return LineError(e.line, "integer overflow");
        int64_t quot = x / y, rem = x % y;
        if (rem != 0 && ((rem < 0) != (y < 0))) --quot, rem += y;  // Python floors
        return Value::Int(op == "//" ? quot : rem);
      }
      if (op == "/") return Value::Float(p / q);
      const double f = std::floor(p / q);
      return Value::Float(op == "//" ? f : p - f * q);
    }
    if (op == "**") {
      if (ints && y >= 0) {  // by squaring
        int64_t acc = 1, base = x;
        for (int64_t k = y; k > 0; k >>= 1) {
          if ((k & 1) && __builtin_mul_overflow(acc, base, &acc)) {
            return LineError(e.line, "integer overflow");
          }
          if (k > 1 && __builtin_mul_overflow(base, base, &base)) {
            return LineError(e.line, "integer overflow");
          }
        }
        return Value::Int(acc);
      }
      return Value::Float(std::pow(p, q));
    }
    return type_error();
  }

  std::shared_ptr<const Node> root_;
  const Limits& limits_;
  std::vector<Scope> scopes_;
  std::vector<StringBuilder> outputs_;
  int depth_ = 0;
  int64_t steps_ = 0;

  friend absl::Status Step(Renderer& r, int line);
};

absl::Status Step(Renderer& r, int line) { return r.Step(line); }
const Limits& LimitsOf(const Renderer& r) { return r.limits(); }

absl::StatusOr<Template> Template::Parse(absl::string_view source, const Limits& limits) {
  auto root = ParseTemplate(source, limits);
  if (!root.ok()) return root.status();
  Template t;
  t.root_ = *std::move(root);
  t.limits_ = limits;
  return t;
}

absl::StatusOr<Rendered> Template::Render(const Value& context, int64_t unix_time) const {
  Renderer r(root_, limits_, unix_time);
  return r.Run(context);
}

}  // namespace tessera::tokenizer::jinja
