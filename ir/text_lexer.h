// Internal: the tokenizer of the IR text form (used by parser.cpp).
#pragma once

#include <string>
#include <string_view>

namespace kiln::ir::text {

enum class TokenKind {
  kIdent,      // func, mul, f32, true, scope, inf ...
  kNumber,     // 12, -3, 1.5, 1e-05, -inf, -nan (the sign is part of the number)
  kString,     // "..." (text holds the unescaped contents)
  kValueName,  // %x, %0, %"any name" (text holds the name)
  kFuncName,   // @poly (text holds the name)
  kPunct,      // ( ) { } [ ] < > , : = ->
  kEnd,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  int line = 1;
  int column = 1;
  bool is(TokenKind k, std::string_view t) const { return kind == k && text == t; }
  bool is_punct(std::string_view t) const { return is(TokenKind::kPunct, t); }
  bool is_ident(std::string_view t) const { return is(TokenKind::kIdent, t); }
};

// How a token reads in an error message: 'mul', '%x', "scope", end of input.
std::string describe(const Token& token);

// Splits text into tokens on demand; throws ParseError("line:col: ...") on a malformed token.
class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}
  // The next token, consumed.
  Token next();

 private:
  char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool at_end() const { return pos_ >= text_.size(); }
  void advance();
  void skip_space_and_comments();
  [[noreturn]] void fail(int line, int column, std::string_view message) const;
  Token make(TokenKind kind, std::string text, int line, int column) const;
  std::string read_string(int line, int column);  // after the opening quote
  std::string read_name(char sigil, int line, int column);
  Token read_number(int line, int column);

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

}  // namespace kiln::ir::text
