// Jinja values: Python's semantics for truthiness, str() and repr().
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::Float(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.d_ = d;
  return v;
}
Value Value::String(std::string s, Ranges taint) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  v.taint_ = std::make_shared<const Ranges>(std::move(taint));
  return v;
}
Value Value::Input(std::string s) {
  const size_t n = s.size();
  return String(std::move(s), n > 0 ? Ranges{{0, n}} : Ranges{});
}
Value Value::MakeList(List items) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::MakeTuple(List items) {
  Value v = MakeList(std::move(items));
  v.tuple_ = true;
  return v;
}
Value Value::MakeDict(Dict items) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::make_shared<const Dict>(std::move(items));
  return v;
}
Value Value::MakeCallable(std::shared_ptr<const Callable> c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.callable_ = std::move(c);
  return v;
}
Value Value::MakeNamespace(std::shared_ptr<Namespace> ns) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.ns_ = std::move(ns);
  return v;
}

namespace {

template <typename Json>
Value FromJsonImpl(const Json& j, bool input) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::None();
    case nlohmann::json::value_t::boolean: return Value::Bool(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::Int(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return j.template get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) ? Value::Int(j.template get<int64_t>())
                                                                   : Value::Float(j.template get<double>());
    case nlohmann::json::value_t::number_float: return Value::Float(j.template get<double>());
    case nlohmann::json::value_t::string:
      return input ? Value::Input(j.template get<std::string>()) : Value::String(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      for (const auto& e : j) items.push_back(FromJsonImpl(e, input));
      return Value::MakeList(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict items;
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(it.key(), FromJsonImpl(*it, input));
      return Value::MakeDict(std::move(items));
    }
    default: return Value();
  }
}

}  // namespace

Value Value::FromJson(const nlohmann::json& j, bool input) { return FromJsonImpl(j, input); }
Value Value::FromJson(const nlohmann::ordered_json& j, bool input) { return FromJsonImpl(j, input); }

bool Value::AsBool() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return d_ != 0;
    case Kind::kString: return !s_->empty();
    case Kind::kList: return !list_->empty();
    case Kind::kDict: return !dict_->empty();
    case Kind::kCallable:
    case Kind::kNamespace: return true;
  }
  return false;
}

Value Value::Get(absl::string_view key) const {
  if (kind_ == Kind::kDict) {
    for (const auto& [k, v] : *dict_) {
      if (k == key) return v;
    }
  } else if (kind_ == Kind::kNamespace) {
    auto it = ns_->attrs.find(std::string(key));
    if (it != ns_->attrs.end()) return it->second;
  }
  return Value();
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits, then Python's layout: scientific below 1e-4 and from 1e16.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, end);  // "-d.ddde+XX"
  const size_t e = sci.find('e');
  const int exp = std::atoi(sci.c_str() + e + 1);
  std::string mant = sci.substr(0, e);
  const bool neg = !mant.empty() && mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) absl::StrAppend(&out, ".", digits.substr(1));
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp < 0) return absl::StrCat(out, "0.", std::string(-exp - 1, '0'), digits);
  const size_t int_digits = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_digits) {
    return out + digits + std::string(int_digits - digits.size(), '0') + ".0";
  }
  return out + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

namespace {

std::string QuoteRepr(const std::string& s) {
  // Python's repr: single quotes unless the text has one and no double quote.
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == q) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + q;
}

}  // namespace

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return b_ ? "True" : "False";
    case Kind::kInt: return absl::StrCat(i_);
    case Kind::kFloat: return FloatRepr(d_);
    case Kind::kString: return QuoteRepr(*s_);
    case Kind::kList: {
      std::string out = tuple_ ? "(" : "[";
      for (size_t i = 0; i < list_->size(); ++i) out += (i ? ", " : "") + (*list_)[i].Repr();
      if (tuple_ && list_->size() == 1) out += ",";
      return out + (tuple_ ? ")" : "]");
    }
    case Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < dict_->size(); ++i) {
        out += (i ? ", " : "") + QuoteRepr((*dict_)[i].first) + ": " + (*dict_)[i].second.Repr();
      }
      return out + "}";
    }
    case Kind::kCallable: return absl::StrCat("<function ", callable_->name, ">");
    case Kind::kNamespace: {
      std::string out = "<Namespace {";
      size_t i = 0;
      for (const auto& [k, v] : ns_->attrs) out += (i++ ? ", " : "") + QuoteRepr(k) + ": " + v.Repr();
      return out + "}>";
    }
  }
  return "";
}

bool HasInput(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString: return !v.taint().empty();
    case Value::Kind::kList:
      for (const Value& e : v.list()) {
        if (HasInput(e)) return true;
      }
      return false;
    case Value::Kind::kDict:
      for (const auto& [k, e] : v.dict()) {
        if (HasInput(e)) return true;
      }
      return false;
    default: return false;
  }
}

Value Value::ToStr() const {
  if (kind_ == Kind::kString) return *this;
  if (kind_ == Kind::kUndefined) return String("");
  std::string s = Repr();
  // A container holding input: all of its text counts as input.
  return HasInput(*this) ? Input(std::move(s)) : String(std::move(s));
}

}  // namespace tessera::tokenizer::jinja
