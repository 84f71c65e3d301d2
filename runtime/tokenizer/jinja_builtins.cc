// Jinja builtins: filters, tests, string and dict methods, globals, with Python's
// semantics where the templates rely on them.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "unicode/locid.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {

void StringBuilder::Append(const Value& s) {
  const size_t at = text_.size();
  for (auto [x, y] : s.taint()) {
    if (!taint_.empty() && taint_.back().second == x + at) {
      taint_.back().second = y + at;  // adjacent ranges merge, so they stay few
    } else {
      taint_.emplace_back(x + at, y + at);
    }
  }
  text_ += s.str();
}

Value StringBuilder::Take() {
  Value v = Value::String(std::move(text_), std::move(taint_));
  text_.clear();
  taint_.clear();
  return v;
}

Value Concat(const Value& a, const Value& b) {
  StringBuilder out;
  out.Append(a);
  out.Append(b);
  return out.Take();
}

absl::Status StepBytes(Renderer& r, size_t bytes, int line) {
  for (size_t i = 0; i <= bytes / 256; ++i) {
    if (absl::Status s = Step(r, line); !s.ok()) return s;
  }
  return absl::OkStatus();
}

int Nesting(const Value& v) {
  int depth = 0;
  if (v.kind() == Value::Kind::kList) {
    for (const Value& e : v.list()) depth = std::max(depth, Nesting(e));
    return depth + 1;
  }
  if (v.kind() == Value::Kind::kDict) {
    for (const auto& [k, e] : v.dict()) depth = std::max(depth, Nesting(e));
    return depth + 1;
  }
  return 0;
}

bool HoldsNamespace(const Value& v) {
  if (v.kind() == Value::Kind::kNamespace) return true;
  if (v.kind() == Value::Kind::kList) {
    return std::any_of(v.list().begin(), v.list().end(), HoldsNamespace);
  }
  if (v.kind() == Value::Kind::kDict) {
    return std::any_of(v.dict().begin(), v.dict().end(), [](const auto& kv) { return HoldsNamespace(kv.second); });
  }
  return false;
}

Value Derived(const Value& from, std::string s) {
  return HasInput(from) ? Value::Input(std::move(s)) : Value::String(std::move(s));
}

Value Substr(const Value& from, size_t begin, size_t n) {
  const size_t end = std::min(from.str().size(), begin + n);
  Ranges t;
  for (auto [x, y] : from.taint()) {
    const size_t a = std::max(x, begin), b = std::min(y, end);
    if (a < b) t.emplace_back(a - begin, b - begin);
  }
  return Value::String(from.str().substr(begin, end - begin), std::move(t));
}

bool Equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) return a.number() == b.number();
  if ((a.kind() == K::kBool) != (b.kind() == K::kBool)) {
    // Python: True == 1; keep it simple and exact for the templates' uses.
    if (a.kind() == K::kBool && b.is_number()) return (a.AsBool() ? 1 : 0) == b.number();
    if (b.kind() == K::kBool && a.is_number()) return (b.AsBool() ? 1 : 0) == a.number();
    return false;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone: return true;
    case K::kBool: return a.AsBool() == b.AsBool();
    case K::kString: return a.str() == b.str();
    case K::kList:
      if (a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i) {
        if (!Equal(a.list()[i], b.list()[i])) return false;
      }
      return true;
    case K::kDict:
      if (a.dict().size() != b.dict().size()) return false;
      for (const auto& [k, v] : a.dict()) {
        bool found = false;
        for (const auto& [k2, v2] : b.dict()) {
          if (k == k2) {
            found = Equal(v, v2);
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    case K::kCallable: return &a.callable() == &b.callable();
    case K::kNamespace: return &a.ns() == &b.ns();
    default: return false;
  }
}

const char* TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kCallable: return "function";
    case Value::Kind::kNamespace: return "Namespace";
  }
  return "?";
}

// UTF-8 code points of s, as byte offsets and lengths.
std::vector<std::pair<size_t, size_t>> CodePoints(const std::string& s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.emplace_back(i, n);
    i += n;
  }
  return out;
}

// Python's str.isspace over ASCII: \t..\r, space and the separators \x1c..\x1f.
static bool IsPySpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

// Python's str.strip / lstrip / rstrip (ASCII whitespace, or the given characters).
Value Strip(const Value& s, bool left, bool right, const Value* chars) {
  const std::string& t = s.str();
  auto drop = [&](char c) {
    return chars && chars->is_string() ? chars->str().find(c) != std::string::npos : IsPySpace(c);
  };
  size_t b = 0, e = t.size();
  if (left) {
    while (b < e && drop(t[b])) ++b;
  }
  if (right) {
    while (e > b && drop(t[e - 1])) --e;
  }
  return Substr(s, b, e - b);
}

static absl::StatusOr<List> SplitString(const Value& s, const Value* sep, int64_t maxsplit, int line) {
  List out;
  const std::string& t = s.str();
  if (sep == nullptr || sep->kind() == Value::Kind::kNone) {  // runs of whitespace
    size_t i = 0;
    int64_t splits = 0;
    while (i < t.size()) {
      while (i < t.size() && IsPySpace(t[i])) ++i;
      if (i >= t.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && splits >= maxsplit) {
        j = t.size();
        while (j > i && IsPySpace(t[j - 1])) --j;
      } else {
        while (j < t.size() && !IsPySpace(t[j])) ++j;
      }
      out.push_back(Substr(s, i, j - i));
      ++splits;
      i = j;
    }
    return out;
  }
  if (!sep->is_string()) return LineError(line, "split: the separator must be a string");
  const std::string& d = sep->str();
  if (d.empty()) return LineError(line, "split: empty separator");
  size_t i = 0;
  int64_t splits = 0;
  while (true) {
    const size_t j = (maxsplit >= 0 && splits >= maxsplit) ? std::string::npos : t.find(d, i);
    if (j == std::string::npos) {
      out.push_back(Substr(s, i, t.size() - i));
      return out;
    }
    out.push_back(Substr(s, i, j - i));
    ++splits;
    i = j + d.size();
  }
}

// Python's str.upper / lower (full Unicode case mapping, ICU's root locale), and title /
// capitalize over code points (simple title-case and lower-case mappings).
std::string Lower(const std::string& s) {
  std::string out;
  icu::UnicodeString::fromUTF8(s).toLower(icu::Locale::getRoot()).toUTF8String(out);
  return out;
}
std::string Upper(const std::string& s) {
  std::string out;
  icu::UnicodeString::fromUTF8(s).toUpper(icu::Locale::getRoot()).toUTF8String(out);
  return out;
}
static std::string RecaseWords(const std::string& s, bool every_word) {
  const icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  icu::UnicodeString out;
  bool start = true;
  for (int32_t i = 0; i < u.length();) {
    const UChar32 c = u.char32At(i);
    i += U16_LENGTH(c);
    const bool cased = u_isUAlphabetic(c) != 0;
    out.append(start && cased ? u_totitle(c) : u_tolower(c));
    if (every_word) {
      start = !cased;
    } else {
      start = false;
    }
  }
  std::string r;
  out.toUTF8String(r);
  return r;
}
std::string Title(const std::string& s) { return RecaseWords(s, true); }
std::string Capitalize(const std::string& s) { return RecaseWords(s, false); }
std::string Replace(const std::string& s, const std::string& a, const std::string& b, int64_t count) {
  if (a.empty()) return s;
  std::string out;
  size_t i = 0;
  int64_t n = 0;
  while (true) {
    const size_t j = (count >= 0 && n >= count) ? std::string::npos : s.find(a, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += b;
    i = j + a.size();
    ++n;
  }
  out.append(s, i, std::string::npos);
  return out;
}

const Value* Arg(const Args& a, size_t i, absl::string_view name) {
  for (const auto& [k, v] : a.keyword) {
    if (k == name) return &v;
  }
  return i < a.positional.size() ? &a.positional[i] : nullptr;
}

absl::StatusOr<int64_t> IntArg(const Value* v, int64_t fallback, absl::string_view what, int line) {
  if (v == nullptr || v->kind() == Value::Kind::kNone) return fallback;
  if (v->kind() != Value::Kind::kInt) return LineError(line, absl::StrCat(what, " must be an integer"));
  return v->int_value();
}

namespace {

Value Method(std::string name, std::function<absl::StatusOr<Value>(const Args&, int)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->call = [fn = std::move(fn)](Renderer&, const Args& a, int line) { return fn(a, line); };
  return Value::MakeCallable(std::move(c));
}

Value StringMethod(const Value& s, const std::string& name) {
  static const char* kNames[] = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split",
                                 "rsplit", "upper", "lower", "replace", "title", "capitalize",
                                 "find", "rfind", "count", "join", "splitlines", "isdigit",
                                 "isalpha", "isalnum", "isspace", "isupper", "islower",
                                 "removeprefix", "removesuffix"};
  if (std::find(std::begin(kNames), std::end(kNames), name) == std::end(kNames)) return Value();
  return Method(name, [s, name](const Args& a, int line) -> absl::StatusOr<Value> {
    const std::string& t = s.str();
    const Value* a0 = Arg(a, 0, "");
    auto str_arg = [&](absl::string_view what) -> absl::StatusOr<std::string> {
      if (a0 == nullptr || !a0->is_string()) return LineError(line, absl::StrCat(name, ": ", what, " must be a string"));
      return a0->str();
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      return Strip(s, name != "rstrip", name != "lstrip", a0);
    }
    if (name == "startswith" || name == "endswith") {
      std::vector<std::string> options;
      if (a0 && a0->kind() == Value::Kind::kList) {
        for (const Value& o : a0->list()) {
          if (o.is_string()) options.push_back(o.str());
        }
      } else {
        auto o = str_arg("the prefix");
        if (!o.ok()) return o.status();
        options.push_back(*o);
      }
      for (const std::string& o : options) {
        if (name == "startswith" ? t.compare(0, o.size(), o) == 0
                                 : t.size() >= o.size() && t.compare(t.size() - o.size(), o.size(), o) == 0) {
          return Value::Bool(true);
        }
      }
      return Value::Bool(false);
    }
    if (name == "split" || name == "rsplit") {
      auto maxsplit = IntArg(Arg(a, 1, "maxsplit"), -1, "maxsplit", line);
      if (!maxsplit.ok()) return maxsplit.status();
      if (name == "rsplit" && *maxsplit >= 0) return LineError(line, "rsplit with maxsplit is not supported");
      auto parts = SplitString(s, Arg(a, 0, "sep"), *maxsplit, line);
      if (!parts.ok()) return parts.status();
      return Value::MakeList(*std::move(parts));
    }
    if (name == "splitlines") {
      List out;
      size_t i = 0;
      while (i < t.size()) {
        size_t j = t.find_first_of("\r\n", i);
        if (j == std::string::npos) j = t.size();
        out.push_back(Substr(s, i, j - i));
        i = j + (t.compare(j, 2, "\r\n") == 0 ? 2 : 1);
      }
      return Value::MakeList(std::move(out));
    }
    if (name == "upper") return Derived(s, Upper(t));
    if (name == "lower") return Derived(s, Lower(t));
    if (name == "title") return Derived(s, Title(t));
    if (name == "capitalize") return Derived(s, Capitalize(t));
    if (name == "replace") {
      const Value* b = Arg(a, 1, "");
      if (!a0 || !a0->is_string() || !b || !b->is_string()) {
        return LineError(line, "replace: the arguments must be strings");
      }
      auto count = IntArg(Arg(a, 2, "count"), -1, "count", line);
      if (!count.ok()) return count.status();
      std::string r = Replace(t, a0->str(), b->str(), *count);
      return (!s.taint().empty() || !b->taint().empty()) ? Value::Input(std::move(r)) : Value::String(std::move(r));
    }
    if (name == "find" || name == "rfind" || name == "count") {
      auto needle = str_arg("the argument");
      if (!needle.ok()) return needle.status();
      if (name == "count") {
        if (needle->empty()) return Value::Int(static_cast<int64_t>(CodePoints(t).size()) + 1);
        int64_t n = 0;
        for (size_t i = t.find(*needle); i != std::string::npos; i = t.find(*needle, i + needle->size())) ++n;
        return Value::Int(n);
      }
      const size_t i = name == "find" ? t.find(*needle) : t.rfind(*needle);
      return Value::Int(i == std::string::npos ? -1 : static_cast<int64_t>(i));
    }
    if (name == "join") {
      if (!a0 || a0->kind() != Value::Kind::kList) return LineError(line, "join: expected a list");
      StringBuilder out;
      for (size_t i = 0; i < a0->list().size(); ++i) {
        if (i) out.Append(s);
        out.Append(a0->list()[i].ToStr());
        if (out.size() > (size_t{64} << 20)) return LineError(line, "join: the string is too large");
      }
      return out.Take();
    }
    if (name == "removeprefix" || name == "removesuffix") {
      auto affix = str_arg("the argument");
      if (!affix.ok()) return affix.status();
      if (name == "removeprefix" && t.compare(0, affix->size(), *affix) == 0) {
        return Substr(s, affix->size(), t.size());
      }
      if (name == "removesuffix" && t.size() >= affix->size() && !affix->empty() &&
          t.compare(t.size() - affix->size(), affix->size(), *affix) == 0) {
        return Substr(s, 0, t.size() - affix->size());
      }
      return s;
    }
    bool all = !t.empty();
    bool cased = false;
    for (char c : t) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (name == "isdigit") all &= absl::ascii_isdigit(u) != 0;
      if (name == "isalpha") all &= absl::ascii_isalpha(u) != 0;
      if (name == "isalnum") all &= absl::ascii_isalnum(u) != 0;
      if (name == "isspace") all &= IsPySpace(c);
      if (name == "isupper") all &= !absl::ascii_islower(u), cased |= absl::ascii_isupper(u) != 0;
      if (name == "islower") all &= !absl::ascii_isupper(u), cased |= absl::ascii_islower(u) != 0;
    }
    if (name == "isupper" || name == "islower") all = all && cased;
    return Value::Bool(all);
  });
}

}  // namespace

absl::StatusOr<int> Compare(const Value& a, const Value& b, int line) {
  if (a.is_number() && b.is_number()) return a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList) {
    for (size_t i = 0; i < a.list().size() && i < b.list().size(); ++i) {
      if (Equal(a.list()[i], b.list()[i])) continue;
      return Compare(a.list()[i], b.list()[i], line);
    }
    return a.list().size() < b.list().size() ? -1 : a.list().size() > b.list().size() ? 1 : 0;
  }
  return LineError(line, absl::StrCat("cannot compare a ", TypeName(a), " with a ", TypeName(b)));
}

absl::StatusOr<List> Iterate(const Value& v, int line) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return List{};
    case Value::Kind::kList: return v.list();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& [k, e] : v.dict()) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (auto [b, n] : CodePoints(v.str())) chars.push_back(Substr(v, b, n));
      return chars;
    }
    default: return LineError(line, absl::StrCat("a ", TypeName(v), " is not iterable"));
  }
}

Value GetAttr(const Value& v, const std::string& name) {
  if (v.kind() == Value::Kind::kDict) {
    if (name == "items" || name == "keys" || name == "values") {
      return Method(name, [v, name](const Args&, int) -> absl::StatusOr<Value> {
        List out;
        for (const auto& [k, e] : v.dict()) {
          if (name == "items") {
            out.push_back(Value::MakeTuple({Value::String(k), e}));
          } else {
            out.push_back(name == "keys" ? Value::String(k) : e);
          }
        }
        return Value::MakeList(std::move(out));
      });
    }
    if (name == "get") {
      return Method(name, [v](const Args& a, int line) -> absl::StatusOr<Value> {
        const Value* key = Arg(a, 0, "key");
        if (!key || !key->is_string()) return LineError(line, "get: the key must be a string");
        Value got = v.Get(key->str());
        if (!got.is_undefined()) return got;
        const Value* fallback = Arg(a, 1, "default");
        return fallback ? *fallback : Value::None();
      });
    }
    return v.Get(name);
  }
  if (v.kind() == Value::Kind::kNamespace) return v.Get(name);
  if (v.is_string()) return StringMethod(v, name);
  return Value();
}

absl::StatusOr<bool> ApplyTest(Renderer& r, const std::string& name, const Value& v,
                               const Args& args, int line) {
  using K = Value::Kind;
  const Value* a0 = Arg(args, 0, "");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.kind() == K::kNone;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kFloat;
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.AsBool();
  if (name == "false") return v.kind() == K::kBool && !v.AsBool();
  if (name == "mapping") return v.kind() == K::kDict;
  if (name == "iterable") return v.kind() == K::kList || v.kind() == K::kDict || v.is_string();
  if (name == "sequence") return v.kind() == K::kList || v.kind() == K::kDict || v.is_string();
  if (name == "callable") return v.kind() == K::kCallable;
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return name == "lower" ? Lower(v.str()) == v.str() : Upper(v.str()) == v.str();
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (v.kind() != K::kInt) return LineError(line, absl::StrCat("test '", name, "' needs an integer"));
    if (name == "odd") return v.int_value() % 2 != 0;
    if (name == "even") return v.int_value() % 2 == 0;
    auto d = IntArg(a0, 0, "divisibleby's argument", line);
    if (!d.ok()) return d.status();
    if (*d == 0) return LineError(line, "divisibleby 0");
    return v.int_value() % *d == 0;
  }
  if (a0 == nullptr) return LineError(line, absl::StrCat("unknown test '", name, "' or it needs an argument"));
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return Equal(v, *a0);
  if (name == "ne" || name == "!=") return !Equal(v, *a0);
  if (name == "in") {
    auto items = Iterate(*a0, line);
    if (!items.ok()) return items.status();
    if (a0->is_string() && v.is_string()) return a0->str().find(v.str()) != std::string::npos;
    for (const Value& e : *items) {
      if (Equal(e, v)) return true;
    }
    return false;
  }
  if (name == "gt" || name == "lt" || name == "ge" || name == "le" || name == "greaterthan" ||
      name == "lessthan") {
    auto c = Compare(v, *a0, line);
    if (!c.ok()) return c.status();
    if (name == "gt" || name == "greaterthan") return *c > 0;
    if (name == "lt" || name == "lessthan") return *c < 0;
    return name == "ge" ? *c >= 0 : *c <= 0;
  }
  (void)r;
  return LineError(line, absl::StrCat("unknown test '", name, "'"));
}

std::vector<std::pair<std::string, Value>> BuiltinGlobals(int64_t unix_time) {
  std::vector<std::pair<std::string, Value>> g;
  auto add = [&](std::string name, std::function<absl::StatusOr<Value>(Renderer&, const Args&, int)> fn) {
    auto c = std::make_shared<Callable>();
    c->name = name;
    c->call = std::move(fn);
    g.emplace_back(std::move(name), Value::MakeCallable(std::move(c)));
  };
  add("range", [](Renderer& r, const Args& a, int line) -> absl::StatusOr<Value> {
    int64_t start = 0, stop = 0, step = 1;
    std::vector<int64_t> n;
    for (const Value& v : a.positional) {
      if (v.kind() != Value::Kind::kInt) return LineError(line, "range: the arguments must be integers");
      n.push_back(v.int_value());
    }
    if (n.size() == 1) {
      stop = n[0];
    } else if (n.size() == 2 || n.size() == 3) {
      start = n[0], stop = n[1];
      if (n.size() == 3) step = n[2];
    } else {
      return LineError(line, "range takes 1 to 3 arguments");
    }
    if (step == 0) return LineError(line, "range: step 0");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (absl::Status s = Step(r, line); !s.ok()) return s;
      out.push_back(Value::Int(i));
    }
    return Value::MakeList(std::move(out));
  });
  add("namespace", [](Renderer&, const Args& a, int line) -> absl::StatusOr<Value> {
    auto ns = std::make_shared<Namespace>();
    for (const auto& [k, v] : a.keyword) {
      if (HoldsNamespace(v)) return LineError(line, "a namespace() attribute cannot hold a namespace");
    }
    for (const Value& v : a.positional) {
      if (HoldsNamespace(v)) return LineError(line, "a namespace() attribute cannot hold a namespace");
      if (v.kind() != Value::Kind::kDict) return LineError(line, "namespace: positional arguments must be mappings");
      for (const auto& [k, e] : v.dict()) ns->attrs[k] = e;
    }
    for (const auto& [k, v] : a.keyword) ns->attrs[k] = v;
    return Value::MakeNamespace(std::move(ns));
  });
  add("raise_exception", [](Renderer&, const Args& a, int line) -> absl::StatusOr<Value> {
    const std::string msg = a.positional.empty() ? "" : a.positional[0].ToStr().str();
    return LineError(line, absl::StrCat("the template raised an error: ", msg));
  });
  add("strftime_now", [unix_time](Renderer&, const Args& a, int line) -> absl::StatusOr<Value> {
    if (a.positional.empty() || !a.positional[0].is_string()) {
      return LineError(line, "strftime_now: expected a format string");
    }
    // Local time now, as transformers does; a given time (tests) in UTC.
    const std::time_t t = unix_time >= 0 ? static_cast<std::time_t>(unix_time) : std::time(nullptr);
    std::tm tm{};
    if (unix_time >= 0) {
      gmtime_r(&t, &tm);
    } else {
      localtime_r(&t, &tm);
    }
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), a.positional[0].str().c_str(), &tm);
    return Value::String(std::string(buf, n));
  });
  return g;
}

}  // namespace tessera::tokenizer::jinja
