// Jinja tokens -> Node trees, by recursive descent with jinja2's operator precedence.
#include <initializer_list>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {
namespace {

// ---- Expressions ----

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line, const Limits& limits)
      : t_(std::move(tokens)), line_(line), limits_(limits) {}

  const Token& Peek(size_t ahead = 0) const { return t_[std::min(p_ + ahead, t_.size() - 1)]; }
  bool AtEnd() const { return Peek().kind == Token::Kind::kEnd; }
  bool IsOp(absl::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kOp && Peek(ahead).text == op;
  }
  bool IsName(absl::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kName && Peek(ahead).text == name;
  }
  bool Accept(absl::string_view op) {
    if (!IsOp(op)) return false;
    ++p_;
    return true;
  }
  bool AcceptName(absl::string_view name) {
    if (!IsName(name)) return false;
    ++p_;
    return true;
  }
  absl::Status Expect(absl::string_view op) {
    if (Accept(op)) return absl::OkStatus();
    return Error(absl::StrCat("expected '", op, "'"));
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != Token::Kind::kName) return Error("expected a name");
    return t_[p_++].text;
  }
  absl::Status Error(absl::string_view what) const {
    const Token& t = Peek();
    return LineError(line_, absl::StrCat(what, ", found ",
                                         t.kind == Token::Kind::kEnd ? "the end of the tag"
                                                                     : absl::StrCat("'", t.text, "'")));
  }
  absl::Status ExpectEnd() { return AtEnd() ? absl::OkStatus() : Error("expected the end of the tag"); }

  // An expression without a trailing `if` (a for loop's iterable, before its filter).
  absl::StatusOr<ExprPtr> ParseNoCondition() { return Or(); }

  // A full expression: a conditional expression, or a tuple of them when `tuple`.
  absl::StatusOr<ExprPtr> Parse(bool tuple = false) {
    auto first = Conditional();
    if (!first.ok() || !tuple || !IsOp(",")) return first;
    ExprPtr t = Make(Expr::Kind::kTuple);
    t->args.push_back(std::move(*first));
    while (Accept(",")) {
      if (AtEnd() || IsOp(")") || IsOp("=")) break;
      auto e = Conditional();
      if (!e.ok()) return e.status();
      t->args.push_back(std::move(*e));
    }
    return t;
  }

 private:
  ExprPtr Make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    return e;
  }
  ExprPtr Binary(Expr::Kind k, std::string op, ExprPtr a, ExprPtr b) {
    ExprPtr e = Make(k);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }
  struct DepthGuard {
    explicit DepthGuard(ExprParser& p) : p(p) { ++p.depth_; }
    ~DepthGuard() { --p.depth_; }
    ExprParser& p;
  };
  absl::Status CheckDepth() const {
    if (depth_ > limits_.max_depth) {
      return LineError(line_, absl::StrCat("expression nested deeper than ", limits_.max_depth));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ExprPtr> Conditional() {
    DepthGuard g(*this);
    if (absl::Status s = CheckDepth(); !s.ok()) return s;
    auto value = Or();
    if (!value.ok()) return value;
    while (IsName("if")) {
      ++p_;
      auto cond = Or();
      if (!cond.ok()) return cond;
      ExprPtr e = Make(Expr::Kind::kCond);
      e->args.push_back(std::move(*value));
      e->args.push_back(std::move(*cond));
      if (AcceptName("else")) {
        auto other = Conditional();
        if (!other.ok()) return other;
        e->args.push_back(std::move(*other));
      } else {
        e->args.push_back(nullptr);
      }
      value = std::move(e);
    }
    return value;
  }
  // One left-associative level: next (op next)*, `op` one of `ops` (names or operators).
  using Level = absl::StatusOr<ExprPtr> (ExprParser::*)();
  absl::StatusOr<ExprPtr> LeftAssoc(Level next, std::initializer_list<const char*> ops,
                                    Expr::Kind kind = Expr::Kind::kBinary) {
    auto a = (this->*next)();
    while (a.ok()) {
      const char* op = nullptr;
      for (const char* o : ops) {
        if (IsOp(o) || IsName(o)) op = o;
      }
      if (op == nullptr) break;
      ++p_;
      auto b = (this->*next)();
      if (!b.ok()) return b;
      a = Binary(kind, op, std::move(*a), std::move(*b));
    }
    return a;
  }
  absl::StatusOr<ExprPtr> Or() { return LeftAssoc(&ExprParser::And, {"or"}, Expr::Kind::kOr); }
  absl::StatusOr<ExprPtr> And() { return LeftAssoc(&ExprParser::Not, {"and"}, Expr::Kind::kAnd); }
  absl::StatusOr<ExprPtr> Not() {
    if (IsName("not")) {
      ++p_;
      DepthGuard g(*this);
      if (absl::Status s = CheckDepth(); !s.ok()) return s;
      auto a = Not();
      if (!a.ok()) return a;
      ExprPtr e = Make(Expr::Kind::kUnary);
      e->name = "not";
      e->args.push_back(std::move(*a));
      return e;
    }
    return Compare();
  }
  absl::StatusOr<ExprPtr> Compare() {
    auto a = Concat();
    while (a.ok()) {
      std::string op;
      if (Peek().kind == Token::Kind::kOp &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = t_[p_++].text;
      } else if (IsName("in")) {
        ++p_;
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        p_ += 2;
        op = "not in";
      } else {
        break;
      }
      auto b = Concat();
      if (!b.ok()) return b;
      a = Binary(Expr::Kind::kBinary, op, std::move(*a), std::move(*b));
    }
    return a;
  }
  absl::StatusOr<ExprPtr> Concat() { return LeftAssoc(&ExprParser::Math1, {"~"}); }
  absl::StatusOr<ExprPtr> Math1() { return LeftAssoc(&ExprParser::Math2, {"+", "-"}); }
  absl::StatusOr<ExprPtr> Math2() { return LeftAssoc(&ExprParser::Pow, {"*", "/", "//", "%"}); }
  absl::StatusOr<ExprPtr> Pow() { return LeftAssoc(&ExprParser::UnaryFiltered, {"**"}); }
  absl::StatusOr<ExprPtr> UnaryFiltered() { return Unary(true); }
  // As jinja2: `-x|f` is f(-x) (the sign binds tighter than the filter).
  absl::StatusOr<ExprPtr> Unary(bool with_filter = true) {
    DepthGuard g(*this);
    if (absl::Status s = CheckDepth(); !s.ok()) return s;
    if (IsOp("-") || IsOp("+")) {
      const std::string op = t_[p_++].text;
      auto a = Unary(/*with_filter=*/false);
      if (!a.ok()) return a;
      ExprPtr e = Make(Expr::Kind::kUnary);
      e->name = op;
      e->args.push_back(std::move(*a));
      return with_filter ? FilterTail(std::move(e)) : absl::StatusOr<ExprPtr>(std::move(e));
    }
    auto a = Primary();
    if (!a.ok()) return a;
    auto b = Postfix(std::move(*a));
    if (!b.ok()) return b;
    if (!with_filter) return b;
    return FilterTail(std::move(*b));
  }
  // Call arguments after '(' up to and including ')'.
  absl::Status CallArgs(Expr& e) {
    while (!Accept(")")) {
      if (Peek().kind == Token::Kind::kName && IsOp("=", 1)) {
        std::string key = t_[p_].text;
        p_ += 2;
        auto v = Conditional();
        if (!v.ok()) return v.status();
        e.kwargs.emplace_back(std::move(key), std::move(*v));
      } else {
        if (!e.kwargs.empty()) return Error("a positional argument after a keyword argument");
        auto v = Conditional();
        if (!v.ok()) return v.status();
        e.args.push_back(std::move(*v));
      }
      if (!IsOp(")") && !Accept(",")) return Error("expected ',' or ')'");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<ExprPtr> Postfix(ExprPtr a) {
    while (true) {
      if (Accept(".")) {
        auto name = Peek().kind == Token::Kind::kInt ? absl::StatusOr<std::string>(t_[p_++].text)
                                                     : ExpectName();
        if (!name.ok()) return name.status();
        ExprPtr e = Make(Expr::Kind::kAttr);
        e->name = *name;
        e->args.push_back(std::move(a));
        a = std::move(e);
      } else if (Accept("[")) {
        std::vector<ExprPtr> parts;
        bool slice = false;
        for (int part = 0; part < 3; ++part) {
          if (IsOp(":") || IsOp("]")) {
            parts.push_back(nullptr);
          } else {
            auto v = Parse();
            if (!v.ok()) return v.status();
            parts.push_back(std::move(*v));
          }
          if (!Accept(":")) break;
          slice = true;
        }
        if (absl::Status s = Expect("]"); !s.ok()) return s;
        ExprPtr e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kItem);
        e->args.push_back(std::move(a));
        if (!slice && parts[0] == nullptr) return Error("an empty subscript");
        for (ExprPtr& part : parts) e->args.push_back(std::move(part));
        while (slice && e->args.size() < 4) e->args.push_back(nullptr);
        a = std::move(e);
      } else if (Accept("(")) {
        ExprPtr e = Make(Expr::Kind::kCall);
        e->args.push_back(std::move(a));
        if (absl::Status s = CallArgs(*e); !s.ok()) return s;
        a = std::move(e);
      } else {
        return a;
      }
    }
  }
  absl::StatusOr<ExprPtr> FilterTail(ExprPtr a) {
    while (true) {
      if (Accept("|")) {
        auto name = ExpectName();
        if (!name.ok()) return name.status();
        ExprPtr e = Make(Expr::Kind::kFilter);
        e->name = *name;
        e->args.push_back(std::move(a));
        if (Accept("(")) {
          if (absl::Status s = CallArgs(*e); !s.ok()) return s;
        }
        a = std::move(e);
      } else if (IsName("is")) {
        ++p_;
        ExprPtr e = Make(Expr::Kind::kTest);
        e->negate = AcceptName("not");
        // Test names may be keywords (none, true, false, in).
        if (Peek().kind != Token::Kind::kName &&
            !(Peek().kind == Token::Kind::kOp && (Peek().text == "==" || Peek().text == "!="))) {
          return Error("expected a test name");
        }
        e->name = t_[p_++].text;
        e->args.push_back(std::move(a));
        if (Accept("(")) {
          if (absl::Status s = CallArgs(*e); !s.ok()) return s;
        } else if (!AtEnd() && (Peek().kind == Token::Kind::kString || Peek().kind == Token::Kind::kInt ||
                                Peek().kind == Token::Kind::kFloat ||
                                (Peek().kind == Token::Kind::kName && !IsName("and") && !IsName("or") &&
                                 !IsName("if") && !IsName("else") && !IsName("is") && !IsName("in") &&
                                 !IsName("not")))) {
          auto arg = Primary();  // `is divisibleby 3`, `is sameas none`
          if (!arg.ok()) return arg.status();
          auto post = Postfix(std::move(*arg));
          if (!post.ok()) return post.status();
          e->args.push_back(std::move(*post));
        }
        a = std::move(e);
      } else {
        return a;
      }
    }
  }
  absl::StatusOr<ExprPtr> Primary() {
    const Token& t = Peek();
    switch (t.kind) {
      case Token::Kind::kInt:
      case Token::Kind::kFloat: {
        ExprPtr e = Make(Expr::Kind::kLiteral);
        e->literal = t_[p_++].value;
        return e;
      }
      case Token::Kind::kString: {
        std::string s;
        while (Peek().kind == Token::Kind::kString) s += t_[p_++].text;  // adjacent literals join
        ExprPtr e = Make(Expr::Kind::kLiteral);
        e->literal = Value::String(std::move(s));
        return e;
      }
      case Token::Kind::kName: {
        const std::string n = t_[p_++].text;
        ExprPtr e = Make(Expr::Kind::kLiteral);
        if (n == "true" || n == "True") {
          e->literal = Value::Bool(true);
        } else if (n == "false" || n == "False") {
          e->literal = Value::Bool(false);
        } else if (n == "none" || n == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = n;
        }
        return e;
      }
      case Token::Kind::kOp:
        if (Accept("(")) {
          if (Accept(")")) return Make(Expr::Kind::kTuple);
          auto inner = Parse(/*tuple=*/true);
          if (!inner.ok()) return inner;
          if (absl::Status s = Expect(")"); !s.ok()) return s;
          return inner;
        }
        if (Accept("[")) {
          ExprPtr e = Make(Expr::Kind::kList);
          while (!Accept("]")) {
            auto v = Conditional();
            if (!v.ok()) return v;
            e->args.push_back(std::move(*v));
            if (!IsOp("]") && !Accept(",")) return Error("expected ',' or ']'");
          }
          return e;
        }
        if (Accept("{")) {
          ExprPtr e = Make(Expr::Kind::kDict);
          while (!Accept("}")) {
            auto k = Conditional();
            if (!k.ok()) return k;
            if (absl::Status s = Expect(":"); !s.ok()) return s;
            auto v = Conditional();
            if (!v.ok()) return v;
            e->args.push_back(std::move(*k));
            e->args.push_back(std::move(*v));
            if (!IsOp("}") && !Accept(",")) return Error("expected ',' or '}'");
          }
          return e;
        }
        break;
      case Token::Kind::kEnd:
        break;
    }
    return Error("expected an expression");
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  int line_;
  const Limits& limits_;
  int depth_ = 0;
};

// ---- Statements ----

class Parser {
 public:
  Parser(std::vector<Piece> pieces, const Limits& limits) : pieces_(std::move(pieces)), limits_(limits) {}

  absl::StatusOr<std::shared_ptr<const Node>> Run() {
    auto root = std::make_shared<Node>();
    root->kind = Node::Kind::kBody;
    root->line = 1;
    std::string end;
    if (absl::Status s = ParseBody(root->body, {}, &end, nullptr, 0); !s.ok()) return s;
    return std::shared_ptr<const Node>(std::move(root));
  }

 private:
  // Parses nodes into `body` until a block tag whose keyword is in `ends` (returned in
  // `end`, with its parser positioned after the keyword in `rest`); at top level (`ends`
  // empty) until the end of the template.
  absl::Status ParseBody(Body& body, const std::vector<std::string>& ends, std::string* end,
                         std::unique_ptr<ExprParser>* rest, int depth) {
    if (depth > limits_.max_depth) {
      return LineError(Line(), absl::StrCat("blocks nested deeper than ", limits_.max_depth));
    }
    while (i_ < pieces_.size()) {
      const Piece& p = pieces_[i_++];
      if (p.kind == Piece::Kind::kText) {
        auto n = NewNode(Node::Kind::kText, p.line);
        n->text = p.text;
        body.push_back(std::move(n));
        continue;
      }
      auto tokens = Lex(p.text, p.line);
      if (!tokens.ok()) return tokens.status();
      auto ep = std::make_unique<ExprParser>(std::move(*tokens), p.line, limits_);
      if (p.kind == Piece::Kind::kOutput) {
        auto e = ep->Parse(/*tuple=*/true);
        if (!e.ok()) return e.status();
        if (absl::Status s = ep->ExpectEnd(); !s.ok()) return s;
        auto n = NewNode(Node::Kind::kOutput, p.line);
        n->expr = std::move(*e);
        body.push_back(std::move(n));
        continue;
      }
      auto kw = ep->ExpectName();
      if (!kw.ok()) return LineError(p.line, "expected a statement keyword");
      for (const std::string& e : ends) {
        if (*kw == e) {
          *end = *kw;
          if (rest) *rest = std::move(ep);
          return absl::OkStatus();
        }
      }
      auto node = Statement(*kw, *ep, p.line, depth);
      if (!node.ok()) return node.status();
      if (*node) body.push_back(std::move(*node));
    }
    if (!ends.empty()) {
      return LineError(Line(), absl::StrCat("the template ends before '{% ", ends.back(), " %}'"));
    }
    return absl::OkStatus();
  }

  int Line() const { return pieces_.empty() ? 1 : pieces_[std::min(i_, pieces_.size()) - (i_ > 0)].line; }

  static NodePtr NewNode(Node::Kind k, int line) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = line;
    return n;
  }

  absl::StatusOr<NodePtr> Statement(const std::string& kw, ExprParser& ep, int line, int depth) {
    if (kw == "if") return If(ep, line, depth);
    if (kw == "for") return For(ep, line, depth);
    if (kw == "set") return Set(ep, line, depth);
    if (kw == "macro") return Macro(ep, line, depth);
    if (kw == "break" || kw == "continue") {
      if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
      if (loops_ == 0) return LineError(line, absl::StrCat("'", kw, "' outside a loop"));
      return NewNode(kw == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, line);
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: its body as is
      if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
      auto n = NewNode(Node::Kind::kBody, line);
      std::string end;
      if (absl::Status s = ParseBody(n->body, {"endgeneration"}, &end, nullptr, depth + 1); !s.ok()) {
        return s;
      }
      return n;
    }
    return LineError(line, absl::StrCat("unknown or unsupported statement '", kw, "'"));
  }

  absl::Status EndTag(std::unique_ptr<ExprParser>& rest) { return rest->ExpectEnd(); }

  absl::StatusOr<NodePtr> If(ExprParser& ep, int line, int depth) {
    auto n = NewNode(Node::Kind::kIf, line);
    auto cond = ep.Parse(true);
    if (!cond.ok()) return cond.status();
    if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
    while (true) {
      Body body;
      std::string end;
      std::unique_ptr<ExprParser> rest;
      if (absl::Status s = ParseBody(body, {"elif", "else", "endif"}, &end, &rest, depth + 1); !s.ok()) {
        return s;
      }
      n->branches.emplace_back(std::move(*cond), std::move(body));
      if (end == "endif") {
        if (absl::Status s = EndTag(rest); !s.ok()) return s;
        return n;
      }
      if (end == "else") {
        if (absl::Status s = EndTag(rest); !s.ok()) return s;
        Body other;
        if (absl::Status s = ParseBody(other, {"endif"}, &end, &rest, depth + 1); !s.ok()) return s;
        if (absl::Status s = EndTag(rest); !s.ok()) return s;
        n->branches.emplace_back(nullptr, std::move(other));
        return n;
      }
      cond = rest->Parse(true);  // elif
      if (!cond.ok()) return cond.status();
      if (absl::Status s = rest->ExpectEnd(); !s.ok()) return s;
    }
  }

  absl::StatusOr<NodePtr> For(ExprParser& ep, int line, int depth) {
    auto n = NewNode(Node::Kind::kFor, line);
    do {
      auto t = ep.ExpectName();
      if (!t.ok()) return t.status();
      n->targets.push_back(*t);
    } while (ep.Accept(","));
    if (!ep.AcceptName("in")) return ep.Error("expected 'in'");
    // The iterable stops before `if` (the loop filter) and `recursive`.
    auto iter = ep.ParseNoCondition();
    if (!iter.ok()) return iter.status();
    n->expr = std::move(*iter);
    if (ep.AcceptName("if")) {
      auto f = ep.Parse(false);
      if (!f.ok()) return f.status();
      n->filter = std::move(*f);
    }
    if (ep.IsName("recursive")) return LineError(line, "recursive loops are not supported");
    if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
    std::string end;
    std::unique_ptr<ExprParser> rest;
    ++loops_;
    absl::Status s = ParseBody(n->body, {"else", "endfor"}, &end, &rest, depth + 1);
    --loops_;
    if (!s.ok()) return s;
    if (absl::Status e = EndTag(rest); !e.ok()) return e;
    if (end == "else") {
      if (absl::Status e = ParseBody(n->else_body, {"endfor"}, &end, &rest, depth + 1); !e.ok()) return e;
      if (absl::Status e = EndTag(rest); !e.ok()) return e;
    }
    return n;
  }

  absl::StatusOr<NodePtr> Set(ExprParser& ep, int line, int depth) {
    auto n = NewNode(Node::Kind::kSet, line);
    auto first = ep.ExpectName();
    if (!first.ok()) return first.status();
    n->targets.push_back(*first);
    if (ep.Accept(".")) {
      auto attr = ep.ExpectName();
      if (!attr.ok()) return attr.status();
      n->attr = *attr;
    } else {
      while (ep.Accept(",")) {
        auto t = ep.ExpectName();
        if (!t.ok()) return t.status();
        n->targets.push_back(*t);
      }
    }
    if (ep.AtEnd() && n->attr.empty() && n->targets.size() == 1) {  // {% set x %}...{% endset %}
      n->kind = Node::Kind::kSetBlock;
      std::string end;
      std::unique_ptr<ExprParser> rest;
      if (absl::Status s = ParseBody(n->body, {"endset"}, &end, &rest, depth + 1); !s.ok()) return s;
      if (absl::Status s = EndTag(rest); !s.ok()) return s;
      return n;
    }
    if (absl::Status s = ep.Expect("="); !s.ok()) return s;
    auto v = ep.Parse(true);
    if (!v.ok()) return v.status();
    if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
    n->expr = std::move(*v);
    return n;
  }

  absl::StatusOr<NodePtr> Macro(ExprParser& ep, int line, int depth) {
    auto n = NewNode(Node::Kind::kMacro, line);
    auto name = ep.ExpectName();
    if (!name.ok()) return name.status();
    n->name = *name;
    if (absl::Status s = ep.Expect("("); !s.ok()) return s;
    while (!ep.Accept(")")) {
      auto p = ep.ExpectName();
      if (!p.ok()) return p.status();
      n->params.push_back(*p);
      if (ep.Accept("=")) {
        auto d = ep.Parse(false);
        if (!d.ok()) return d.status();
        n->defaults.push_back(std::move(*d));
      } else {
        n->defaults.push_back(nullptr);
      }
      if (!ep.IsOp(")") && !ep.Accept(",")) return ep.Error("expected ',' or ')'");
    }
    if (absl::Status s = ep.ExpectEnd(); !s.ok()) return s;
    std::string end;
    std::unique_ptr<ExprParser> rest;
    const int loops = loops_;
    loops_ = 0;  // break/continue do not reach through a macro
    absl::Status s = ParseBody(n->body, {"endmacro"}, &end, &rest, depth + 1);
    loops_ = loops;
    if (!s.ok()) return s;
    if (absl::Status e = EndTag(rest); !e.ok()) return e;
    return n;
  }

  std::vector<Piece> pieces_;
  size_t i_ = 0;
  const Limits& limits_;
  int loops_ = 0;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const Node>> ParseTemplate(absl::string_view source,
                                                          const Limits& limits) {
  // jinja2 drops one trailing newline of the template (keep_trailing_newline=False).
  if (absl::EndsWith(source, "\r\n")) {
    source.remove_suffix(2);
  } else if (absl::EndsWith(source, "\n")) {
    source.remove_suffix(1);
  }
  auto pieces = Split(source);
  if (!pieces.ok()) return pieces.status();
  return Parser(*std::move(pieces), limits).Run();
}

}  // namespace tessera::tokenizer::jinja
