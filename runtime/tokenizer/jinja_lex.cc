// Jinja templates cut into text and tags (with jinja2's trim_blocks / lstrip_blocks and the
// - / + whitespace controls), and a tag's inside into tokens.
#include <cerrno>
#include <cstdlib>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/jinja_internal.h"

namespace tessera::tokenizer::jinja {

absl::Status LineError(int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

namespace {



int LinesIn(absl::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// The end of a tag opened at `pos` (the index of `close`), skipping quoted strings.
// Brackets count as jinja2's lexer counts them: `{{ {'a': {}} }}` closes at the last `}}`.
std::optional<size_t> FindClose(absl::string_view src, size_t pos, absl::string_view close) {
  char quote = 0;
  int depth = 0;
  std::optional<size_t> unbalanced;  // the first close inside brackets: a syntax error there
  for (size_t i = pos; i < src.size(); ++i) {
    const char c = src[i];
    if (quote) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (src.compare(i, close.size(), close) == 0) {
      if (depth == 0) return i;
      if (!unbalanced) unbalanced = i;
    }
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return unbalanced;
}

constexpr const char* kSpace = " \t\n\r\v\f";

}  // namespace

absl::StatusOr<std::vector<Piece>> Split(absl::string_view src) {
  std::vector<Piece> out;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false, trim_newline = false;
  while (true) {
    size_t open = absl::string_view::npos;
    for (size_t i = src.find('{', pos); i != absl::string_view::npos; i = src.find('{', i + 1)) {
      if (i + 1 < src.size() && (src[i + 1] == '{' || src[i + 1] == '%' || src[i + 1] == '#')) {
        open = i;
        break;
      }
    }
    std::string text(src.substr(pos, open == absl::string_view::npos ? src.size() - pos : open - pos));
    int text_line = line;
    line += LinesIn(text);
    // What the previous tag took of this text (its "-" control, or trim_blocks' newline);
    // a line starts here when that ended in a newline, or at the template's start.
    size_t taken = 0;
    if (strip_next) {
      taken = std::min(text.size(), text.find_first_not_of(kSpace));
    } else if (trim_newline && text.compare(0, 1, "\n") == 0) {
      taken = 1;
    } else if (trim_newline && text.compare(0, 2, "\r\n") == 0) {
      taken = 2;
    }
    const bool line_starting = pos == 0 || (taken > 0 && text[taken - 1] == '\n');
    text_line += LinesIn(absl::string_view(text).substr(0, taken));
    text.erase(0, taken);
    strip_next = trim_newline = false;
    if (open == absl::string_view::npos) {
      if (!text.empty()) out.push_back({Piece::Kind::kText, std::move(text), text_line});
      break;
    }
    const char type = src[open + 1];
    size_t inner = open + 2;
    const bool strip_before = inner < src.size() && src[inner] == '-';
    const bool keep_before = inner < src.size() && src[inner] == '+';
    if (strip_before || keep_before) ++inner;
    if (strip_before) {
      const size_t keep = text.find_last_not_of(kSpace);
      text.erase(keep == std::string::npos ? 0 : keep + 1);
    } else if (type != '{' && !keep_before) {
      // lstrip_blocks: the blanks between a line's start and a block or comment tag.
      const size_t nl = text.rfind('\n');
      const size_t from = nl == std::string::npos ? 0 : nl + 1;
      if ((nl != std::string::npos || line_starting) &&
          text.find_first_not_of(kSpace, from) == std::string::npos) {
        text.erase(from);
      }
    }
    if (!text.empty()) out.push_back({Piece::Kind::kText, std::move(text), text_line});
    const absl::string_view close = type == '{' ? "}}" : type == '%' ? "%}" : "#}";
    std::optional<size_t> end;
    if (type == '#') {
      if (const size_t e = src.find("#}", inner); e != absl::string_view::npos) end = e;
    } else {
      end = FindClose(src, inner, close);
    }
    if (!end) {
      return LineError(line, absl::StrCat("'", src.substr(open, 2), "' is never closed by '", close, "'"));
    }
    size_t inner_end = *end;
    const bool strip_after = inner_end > inner && src[inner_end - 1] == '-';
    if (strip_after) --inner_end;
    if (type != '#') {
      out.push_back({type == '{' ? Piece::Kind::kOutput : Piece::Kind::kBlock,
                     std::string(src.substr(inner, inner_end - inner)), line});
    }
    line += LinesIn(src.substr(open, *end + 2 - open));
    strip_next = strip_after;
    trim_newline = !strip_after && type != '{';  // trim_blocks
    pos = *end + 2;
  }
  return out;
}




absl::StatusOr<std::vector<Token>> Lex(absl::string_view s, int line) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Kind::kName, std::string(s.substr(i, j - i)), {}});
      i = j;
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < s.size() && (absl::ascii_isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j + 1 < s.size() && s[j] == '.' && absl::ascii_isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[k]))) {
          is_float = true;
          j = k;
          while (j < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      std::string num;
      for (char ch : s.substr(i, j - i)) {
        if (ch != '_') num.push_back(ch);
      }
      errno = 0;
      char* endp = nullptr;
      if (!is_float) {
        const long long v = std::strtoll(num.c_str(), &endp, 10);
        if (errno != ERANGE) {
          out.push_back({Token::Kind::kInt, num, Value::Int(v)});
          i = j;
          continue;
        }
      }
      out.push_back({Token::Kind::kFloat, num, Value::Float(std::strtod(num.c_str(), &endp))});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          v.push_back(s[j]);
          continue;
        }
        const char e = s[++j];
        switch (e) {
          case 'n': v.push_back('\n'); break;
          case 't': v.push_back('\t'); break;
          case 'r': v.push_back('\r'); break;
          case '\\': v.push_back('\\'); break;
          case '\'': v.push_back('\''); break;
          case '"': v.push_back('"'); break;
          case '\n': break;
          default: v.push_back('\\'); v.push_back(e); break;
        }
      }
      if (j >= s.size()) return LineError(line, "a string literal is not closed");
      out.push_back({Token::Kind::kString, v, Value::String(v)});
      i = j + 1;
    } else {
      static constexpr absl::string_view kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                                  "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                                  "]",  "{",  "}",  ".",  ",",  ":",  "|"};
      bool found = false;
      for (absl::string_view op : kOps) {
        if (s.compare(i, op.size(), op) == 0) {
          out.push_back({Token::Kind::kOp, std::string(op), {}});
          i += op.size();
          found = true;
          break;
        }
      }
      if (!found) return LineError(line, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }
  out.push_back({Token::Kind::kEnd, "", {}});
  return out;
}

}  // namespace tessera::tokenizer::jinja
