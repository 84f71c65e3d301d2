// Jinja filters (x | name(args)), with Python's and transformers' semantics.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {
namespace {

void JsonString(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys), as transformers'
// tojson filter.
absl::Status ToJson(const Value& v, int indent, bool sort_keys, int level, int line, size_t limit,
                    std::string& out) {
  if (out.size() > limit) return LineError(line, "tojson: the output is too large");
  if (level > 200) return LineError(line, "tojson: nested too deeply");
  auto newline = [&](int l) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * l, ' ');
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return absl::OkStatus();
    case Value::Kind::kBool: out += v.AsBool() ? "true" : "false"; return absl::OkStatus();
    case Value::Kind::kInt: out += absl::StrCat(v.int_value()); return absl::OkStatus();
    case Value::Kind::kFloat: {
      const double d = v.number();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : FloatRepr(d);
      return absl::OkStatus();
    }
    case Value::Kind::kString: JsonString(v.str(), out); return absl::OkStatus();
    case Value::Kind::kList: {
      if (v.list().empty()) {
        out += "[]";
        return absl::OkStatus();
      }
      out += '[';
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        if (absl::Status s = ToJson(v.list()[i], indent, sort_keys, level + 1, line, limit, out); !s.ok()) {
          return s;
        }
      }
      newline(level);
      out += ']';
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      if (v.dict().empty()) {
        out += "{}";
        return absl::OkStatus();
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict()) items.push_back(&kv);
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        JsonString(items[i]->first, out);
        out += ": ";
        if (absl::Status s = ToJson(items[i]->second, indent, sort_keys, level + 1, line, limit, out); !s.ok()) {
          return s;
        }
      }
      newline(level);
      out += '}';
      return absl::OkStatus();
    }
    default:
      return LineError(line, absl::StrCat("tojson: a ", TypeName(v), " is not JSON serializable"));
  }
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(Renderer& r, const std::string& name, const Value& v,
                                  const Args& args, int line) {
  using K = Value::Kind;
  const Value* a0 = Arg(args, 0, "");
  auto need_string = [&]() -> absl::Status {
    if (v.is_string()) return absl::OkStatus();
    return LineError(line, absl::StrCat("filter '", name, "' needs a string, not a ", TypeName(v)));
  };
  if (name == "safe") return v;
  if (name == "trim") {
    if (absl::Status s = need_string(); !s.ok()) return s;
    return Strip(v, true, true, Arg(args, 0, "chars"));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    const Value s = v.ToStr();
    const std::string& t = s.str();
    return Derived(s, name == "upper" ? Upper(t) : name == "lower" ? Lower(t)
                                               : name == "title" ? Title(t) : Capitalize(t));
  }
  if (name == "replace") {
    Value s = v.ToStr();
    const Value* b = Arg(args, 1, "new");
    if (!a0 || !a0->is_string() || !b || !b->is_string()) {
      return LineError(line, "replace: the arguments must be strings");
    }
    auto count = IntArg(Arg(args, 2, "count"), -1, "count", line);
    if (!count.ok()) return count.status();
    std::string out = Replace(s.str(), a0->str(), b->str(), *count);
    return (!s.taint().empty() || !b->taint().empty()) ? Value::Input(std::move(out)) : Value::String(std::move(out));
  }
  if (name == "string") return v.ToStr();
  if (name == "length" || name == "count") {
    switch (v.kind()) {
      case K::kString: return Value::Int(static_cast<int64_t>(CodePoints(v.str()).size()));
      case K::kList: return Value::Int(static_cast<int64_t>(v.list().size()));
      case K::kDict: return Value::Int(static_cast<int64_t>(v.dict().size()));
      case K::kUndefined: return Value::Int(0);
      default: return LineError(line, absl::StrCat("a ", TypeName(v), " has no length"));
    }
  }
  if (name == "default" || name == "d") {
    const Value* boolean = Arg(args, 1, "boolean");
    const bool use = v.is_undefined() || (boolean && boolean->AsBool() && !v.AsBool());
    if (!use) return v;
    return a0 ? *a0 : Value::String("");
  }
  if (name == "tojson") {
    auto indent = IntArg(Arg(args, 0, "indent"), -1, "tojson's indent", line);
    if (!indent.ok()) return indent.status();
    const Value* sort = Arg(args, 3, "sort_keys");
    std::string out;
    if (absl::Status s = ToJson(v, *indent, sort && sort->AsBool(), 0, line, LimitsOf(r).max_output, out); !s.ok()) {
      return s;
    }
    return Derived(v, std::move(out));
  }
  if (name == "int") {
    if (v.kind() == K::kInt) return v;
    if (v.kind() == K::kFloat && std::isfinite(v.number()) && std::fabs(v.number()) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(v.number()));
    }
    if (v.kind() == K::kBool) return Value::Int(v.AsBool());
    if (v.is_string()) {
      char* end = nullptr;
      errno = 0;
      const long long i = std::strtoll(v.str().c_str(), &end, 10);
      if (errno == 0 && end && *end == '\0' && !v.str().empty()) return Value::Int(i);
    }
    return a0 ? *a0 : Value::Int(0);
  }
  if (name == "float") {
    if (v.is_number()) return Value::Float(v.number());
    if (v.is_string()) {
      char* end = nullptr;
      const double d = std::strtod(v.str().c_str(), &end);
      if (end && *end == '\0' && !v.str().empty()) return Value::Float(d);
    }
    return a0 ? *a0 : Value::Float(0);
  }
  if (name == "abs") {
    if (v.kind() == K::kInt) return Value::Int(v.int_value() < 0 ? -v.int_value() : v.int_value());
    if (v.kind() == K::kFloat) return Value::Float(std::fabs(v.number()));
    return LineError(line, "abs: not a number");
  }
  if (name == "round") {
    if (!v.is_number()) return LineError(line, "round: not a number");
    auto digits = IntArg(Arg(args, 0, "precision"), 0, "round's precision", line);
    if (!digits.ok()) return digits.status();
    const double m = std::pow(10.0, static_cast<double>(*digits));
    return Value::Float(std::nearbyint(v.number() * m) / m);  // Python rounds half to even
  }
  if (name == "items") {
    if (v.kind() == K::kUndefined) return Value::MakeList({});
    if (v.kind() != K::kDict) return LineError(line, "items: not a mapping");
    return GetAttr(v, "items").callable().call(r, {}, line);
  }
  if (name == "escape" || name == "e") {
    const Value s = v.ToStr();
    std::string out;
    for (char c : s.str()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Derived(s, std::move(out));
  }
  if (name == "indent") {
    if (absl::Status s = need_string(); !s.ok()) return s;
    auto width = IntArg(Arg(args, 0, "width"), 4, "indent's width", line);
    if (!width.ok()) return width.status();
    if (*width < 0 || *width > 1000) return LineError(line, "indent: width out of range");
    const Value* first = Arg(args, 1, "first");
    const Value* blank = Arg(args, 2, "blank");
    const std::string pad(static_cast<size_t>(*width), ' ');
    std::string out;
    const std::string& t = v.str();
    size_t i = 0;
    bool first_line = true;
    while (i <= t.size()) {
      size_t j = t.find('\n', i);
      const bool last = j == std::string::npos;
      if (last) j = t.size();
      const absl::string_view ln(t.data() + i, j - i);
      if ((!first_line || (first && first->AsBool())) && (!ln.empty() || (blank && blank->AsBool()))) out += pad;
      out.append(ln.data(), ln.size());
      if (last) break;
      out += '\n';
      first_line = false;
      i = j + 1;
    }
    return Derived(v, std::move(out));
  }
  // Filters over sequences.
  auto items = Iterate(v, line);
  if (!items.ok()) return items.status();
  if (name == "list") return Value::MakeList(*items);
  if (name == "first") return items->empty() ? Value() : items->front();
  if (name == "last") return items->empty() ? Value() : items->back();
  if (name == "reverse") {
    if (v.is_string()) {
      StringBuilder out;
      for (auto it = items->rbegin(); it != items->rend(); ++it) out.Append(*it);
      return out.Take();
    }
    return Value::MakeList(List(items->rbegin(), items->rend()));
  }
  if (name == "join") {
    const Value* attr = Arg(args, 1, "attribute");
    Value sep = a0 && a0->is_string() ? *a0 : Value::String("");
    StringBuilder out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (absl::Status s = Step(r, line); !s.ok()) return s;
      if (i) out.Append(sep);
      const Value e = attr && attr->is_string() ? GetAttr((*items)[i], attr->str()) : (*items)[i];
      out.Append(e.ToStr());
      if (out.size() > LimitsOf(r).max_output) return LineError(line, "join: the output is too large");
    }
    return out.Take();
  }
  if (name == "unique") {
    List out;
    for (const Value& e : *items) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return Equal(o, e); })) out.push_back(e);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "sum" || name == "min" || name == "max") {
    if (items->empty()) return name == "sum" ? Value::Int(0) : Value();
    Value best = (*items)[0];
    double sum = 0;
    bool all_int = true;
    int64_t isum = 0;
    for (const Value& e : *items) {
      if (name == "sum") {
        if (!e.is_number()) return LineError(line, "sum: not a number");
        all_int &= e.kind() == K::kInt;
        sum += e.number();
        isum += e.kind() == K::kInt ? e.int_value() : 0;
        continue;
      }
      auto c = Compare(e, best, line);
      if (!c.ok()) return c.status();
      if ((name == "min" && *c < 0) || (name == "max" && *c > 0)) best = e;
    }
    if (name == "sum") return all_int ? Value::Int(isum) : Value::Float(sum);
    return best;
  }
  if (name == "sort") {
    const Value* reverse = Arg(args, 0, "reverse");
    const Value* attr = Arg(args, 2, "attribute");
    List out = *items;
    absl::Status err = absl::OkStatus();
    auto key = [&](const Value& e) { return attr && attr->is_string() ? GetAttr(e, attr->str()) : e; };
    std::stable_sort(out.begin(), out.end(), [&](const Value& a, const Value& b) {
      auto c = Compare(key(a), key(b), line);
      if (!c.ok()) {
        err = c.status();
        return false;
      }
      return reverse && reverse->AsBool() ? *c > 0 : *c < 0;
    });
    if (!err.ok()) return err;
    return Value::MakeList(std::move(out));
  }
  if (name == "map" || name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    List out;
    for (const Value& e : *items) {
      if (absl::Status s = Step(r, line); !s.ok()) return s;
      if (name == "map") {
        if (const Value* attr = Arg(args, 99, "attribute")) {
          Value got = attr->is_string() ? GetAttr(e, attr->str()) : Value();
          if (got.is_undefined()) {
            if (const Value* d = Arg(args, 99, "default")) got = *d;
          }
          out.push_back(got);
          continue;
        }
        if (!a0 || !a0->is_string()) return LineError(line, "map: expected a filter name or attribute=");
        Args rest;
        rest.positional.assign(args.positional.begin() + 1, args.positional.end());
        auto mapped = ApplyFilter(r, a0->str(), e, rest, line);
        if (!mapped.ok()) return mapped.status();
        out.push_back(*mapped);
        continue;
      }
      const bool by_attr = name == "selectattr" || name == "rejectattr";
      size_t next = 0;
      Value subject = e;
      if (by_attr) {
        if (!a0 || !a0->is_string()) return LineError(line, absl::StrCat(name, ": expected an attribute name"));
        subject = GetAttr(e, a0->str());
        next = 1;
      }
      bool pass;
      if (next < args.positional.size()) {
        const Value& test = args.positional[next];
        if (!test.is_string()) return LineError(line, absl::StrCat(name, ": expected a test name"));
        Args rest;
        rest.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next) + 1,
                               args.positional.end());
        auto t = ApplyTest(r, test.str(), subject, rest, line);
        if (!t.ok()) return t.status();
        pass = *t;
      } else {
        pass = subject.AsBool();
      }
      if (pass == (name == "selectattr" || name == "select")) out.push_back(e);
    }
    return Value::MakeList(std::move(out));
  }
  return LineError(line, absl::StrCat("unknown filter '", name, "'"));
}

}  // namespace tessera::tokenizer::jinja
