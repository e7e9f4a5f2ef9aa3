#include "kiln/ir/text_lexer.h"

#include <fmt/format.h>

#include "kiln/ir/error.h"

namespace kiln::ir::text {

namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
// Characters of an unquoted %name / @name (the printer quotes anything else).
bool is_name_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '.' || c == '/';
}

// A character as it reads in an error message (control bytes as \xNN).
std::string show_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) return fmt::format("\\x{:02x}", u);
  return std::string(1, c);
}

std::string clip(std::string_view s) {
  constexpr size_t kMax = 32;
  if (s.size() <= kMax) return std::string(s);
  return fmt::format("{}...", s.substr(0, kMax));
}

}  // namespace

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::kEnd:
      return "end of input";
    case TokenKind::kString:
      return fmt::format("string \"{}\"", clip(token.text));
    case TokenKind::kValueName:
      return fmt::format("'%{}'", clip(token.text));
    case TokenKind::kFuncName:
      return fmt::format("'@{}'", clip(token.text));
    default:
      return fmt::format("'{}'", clip(token.text));
  }
}

void Lexer::advance() {
  if (text_[pos_] == '\n') {
    ++line_;
    column_ = 1;
  } else {
    ++column_;
  }
  ++pos_;
}

void Lexer::skip_space_and_comments() {
  while (!at_end()) {
    char c = peek();
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      advance();
    } else if (c == '/' && peek(1) == '/') {
      while (!at_end() && peek() != '\n')
        advance();
    } else {
      return;
    }
  }
}

void Lexer::fail(int line, int column, std::string_view message) const {
  throw ParseError(fmt::format("{}:{}: {}", line, column, message), line, column);
}

Token Lexer::make(TokenKind kind, std::string text, int line, int column) const {
  return Token{kind, std::move(text), line, column};
}

std::string Lexer::read_string(int line, int column) {
  std::string out;
  while (true) {
    if (at_end()) fail(line, column, "unterminated string");
    char c = peek();
    if (c == '"') {
      advance();
      return out;
    }
    if (c == '\\') {
      int esc_line = line_, esc_column = column_;
      advance();
      if (at_end()) fail(line, column, "unterminated string");
      char e = peek();
      if (e != '"' && e != '\\') {
        fail(esc_line, esc_column,
             fmt::format("unknown escape '\\{}' in string (only \\\" and \\\\)", show_char(e)));
      }
      out += e;
      advance();
      continue;
    }
    out += c;
    advance();
  }
}

std::string Lexer::read_name(char sigil, int line, int column) {
  if (peek() == '"') {
    advance();
    return read_string(line, column);
  }
  std::string name;
  while (!at_end() && is_name_char(peek())) {
    name += peek();
    advance();
  }
  if (name.empty()) {
    std::string got =
        at_end() ? std::string("end of input") : fmt::format("'{}'", show_char(peek()));
    fail(line, column, fmt::format("expected a name after '{}', got {}", sigil, got));
  }
  return name;
}

// A number: [-] digits/letters/'.' with a sign allowed right after an exponent 'e'. The parser
// validates the text; "-inf" and "-nan" are numbers, plain "inf"/"nan" are identifiers.
Token Lexer::read_number(int line, int column) {
  std::string s;
  if (peek() == '-') {
    s += '-';
    advance();
  }
  while (!at_end()) {
    char c = peek();
    bool sign_after_exponent = (c == '+' || c == '-') && !s.empty() &&
                               (s.back() == 'e' || s.back() == 'E') &&
                               is_digit(s.front() == '-' ? s[1] : s.front());
    if (!(is_alpha(c) || is_digit(c) || c == '.' || sign_after_exponent)) break;
    s += c;
    advance();
  }
  return make(TokenKind::kNumber, std::move(s), line, column);
}

Token Lexer::next() {
  skip_space_and_comments();
  int line = line_, column = column_;
  if (at_end()) return make(TokenKind::kEnd, "", line, column);
  char c = peek();
  if (is_alpha(c)) {
    std::string word;
    while (!at_end() && (is_alpha(peek()) || is_digit(peek()))) {
      word += peek();
      advance();
    }
    return make(TokenKind::kIdent, std::move(word), line, column);
  }
  if (is_digit(c) || (c == '-' && (is_digit(peek(1)) || is_alpha(peek(1))))) {
    return read_number(line, column);
  }
  if (c == '"') {
    advance();
    return make(TokenKind::kString, read_string(line, column), line, column);
  }
  if (c == '%' || c == '@') {
    advance();
    std::string name = read_name(c, line, column);
    return make(c == '%' ? TokenKind::kValueName : TokenKind::kFuncName, std::move(name), line,
                column);
  }
  if (c == '-' && peek(1) == '>') {
    advance();
    advance();
    return make(TokenKind::kPunct, "->", line, column);
  }
  if (std::string_view("(){}[]<>,:=").find(c) != std::string_view::npos) {
    advance();
    return make(TokenKind::kPunct, std::string(1, c), line, column);
  }
  fail(line, column, fmt::format("unexpected character '{}'", show_char(c)));
}

}  // namespace kiln::ir::text
