#include "kiln/ir/parser.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/text_lexer.h"

namespace kiln::ir {

namespace {

using text::Lexer;
using text::Token;
using text::TokenKind;

[[noreturn]] void fail_at(const Token& at, std::string_view message) {
  throw ParseError(fmt::format("{}:{}: {}", at.line, at.column, message), at.line, at.column);
}

bool is_float_text(std::string_view s) {
  return s.find_first_of(".eE") != std::string_view::npos || s == "inf" || s == "-inf" ||
         s == "nan" || s == "-nan";
}

// A float literal as T (float or double); nan/inf spelled out, tiny values flush toward zero.
template <class T>
T parse_float_text(const Token& token, std::string_view dtype) {
  std::string_view s = token.text;
  bool negative = !s.empty() && s[0] == '-';
  std::string_view body = negative ? s.substr(1) : s;
  if (body == "nan")
    return negative ? -std::numeric_limits<T>::quiet_NaN() : std::numeric_limits<T>::quiet_NaN();
  if (body == "inf")
    return negative ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  T value{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (end != s.data() + s.size() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    fail_at(token, fmt::format("invalid number {}", text::describe(token)));
  }
  if (ec == std::errc::result_out_of_range) {
    bool underflow =
        s.find("e-") != std::string_view::npos || s.find("E-") != std::string_view::npos;
    if (!underflow)
      fail_at(token, fmt::format("number {} is out of range for {}", text::describe(token), dtype));
    return negative ? -T(0) : T(0);
  }
  return value;
}

int64_t parse_int_text(const Token& token) {
  std::string_view s = token.text;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec == std::errc::result_out_of_range) {
    fail_at(token, fmt::format("integer {} is out of range for i64", text::describe(token)));
  }
  if (ec != std::errc() || end != s.data() + s.size()) {
    fail_at(token, fmt::format("invalid number {}", text::describe(token)));
  }
  return value;
}

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options) : lexer_(text), options_(options) {
    token_ = lexer_.next();
  }

  Function parse_function();

 private:
  // Nested function attributes (scan bodies) deeper than this are a ParseError, so that a
  // hostile text cannot exhaust the stack.
  static constexpr int kMaxNesting = 32;

  // Token stream.
  const Token& peek() const { return token_; }
  Token take() {
    Token t = std::move(token_);
    token_ = lexer_.next();
    return t;
  }
  bool accept_punct(std::string_view p) {
    if (!token_.is_punct(p)) return false;
    take();
    return true;
  }
  Token expect_punct(std::string_view p, std::string_view context) {
    if (!token_.is_punct(p)) {
      fail_at(token_, fmt::format("expected '{}' {}, got {}", p, context, text::describe(token_)));
    }
    return take();
  }
  Token expect_kind(TokenKind kind, std::string_view what) {
    if (token_.kind != kind)
      fail_at(token_, fmt::format("expected {}, got {}", what, text::describe(token_)));
    return take();
  }
  Token expect_keyword(std::string_view word, std::string_view context) {
    if (!token_.is_ident(word)) {
      fail_at(token_,
              fmt::format("expected '{}' {}, got {}", word, context, text::describe(token_)));
    }
    return take();
  }

  // Pieces of the grammar.
  int64_t parse_int(std::string_view what);
  TensorType parse_type();
  std::vector<TensorType> parse_type_list();  // `()`, `T` or `(T, T)`
  void parse_params();
  Value* parse_value_ref();
  void define(const Token& name, Value* value);
  void parse_node();
  std::vector<TensorType> parse_node_types();  // `()` or `T, T, ...`
  std::vector<Value*> parse_operands();
  Attrs parse_attrs();
  AttrValue parse_attr_value();
  std::vector<int64_t> parse_int_list();
  HostTensor parse_dense();
  SourceLoc parse_loc();
  void parse_return(const std::vector<TensorType>& signature);
  void parse_update();
  // `func @name(params) -> types { nodes return ... }` into function_.
  void parse_function_text();
  // The `NAME func ...` attributes after a node's line.
  void parse_function_attrs(Attrs& attrs);
  void check_node(const Token& at, Op op, const std::vector<Value*>& inputs, const Attrs& attrs,
                  const std::vector<TensorType>& types);

  Lexer lexer_;
  Token token_;
  ParseOptions options_;
  Function function_;
  std::unordered_map<std::string, Value*> values_;
  std::unordered_set<const Value*> updated_;
  int depth_ = 0;
};

int64_t Parser::parse_int(std::string_view what) {
  if (token_.kind != TokenKind::kNumber) {
    fail_at(token_, fmt::format("expected {}, got {}", what, text::describe(token_)));
  }
  if (is_float_text(token_.text)) {
    fail_at(token_, fmt::format("expected {}, got the float {}", what, text::describe(token_)));
  }
  int64_t v = parse_int_text(token_);
  take();
  return v;
}

TensorType Parser::parse_type() {
  if (token_.kind != TokenKind::kIdent) {
    fail_at(token_,
            fmt::format("expected a tensor type like f32[2,3], got {}", text::describe(token_)));
  }
  std::optional<DType> dtype = parse_dtype(token_.text);
  if (!dtype) fail_at(token_, fmt::format("unknown dtype {}", text::describe(token_)));
  take();
  expect_punct("[", "after the dtype");
  std::vector<int64_t> dims;
  int64_t count = 1;
  if (!token_.is_punct("]")) {
    do {
      Token at = token_;
      int64_t d = parse_int("a dimension size");
      if (d < 0) fail_at(at, fmt::format("dimension size must be non-negative, got {}", d));
      if (__builtin_mul_overflow(count, d, &count)) {
        fail_at(at, "tensor type has more elements than fit in an i64");
      }
      dims.push_back(d);
    } while (accept_punct(","));
  }
  expect_punct("]", "after the dimensions");
  return TensorType{*dtype, Shape(std::move(dims))};
}

std::vector<TensorType> Parser::parse_type_list() {
  std::vector<TensorType> types;
  if (!accept_punct("(")) {
    types.push_back(parse_type());
    return types;
  }
  if (accept_punct(")")) return types;
  do
    types.push_back(parse_type());
  while (accept_punct(","));
  expect_punct(")", "after the types");
  return types;
}

void Parser::define(const Token& name, Value* value) {
  if (!values_.emplace(name.text, value).second) {
    fail_at(name, fmt::format("redefinition of %{}", name.text));
  }
}

void Parser::parse_params() {
  expect_punct("(", "before the parameters");
  if (accept_punct(")")) return;
  do {
    Token name = expect_kind(TokenKind::kValueName, "a parameter name like %x");
    expect_punct(":", "after the parameter name");
    TensorType type = parse_type();
    define(name, function_.add_param(std::move(type), name.text));
  } while (accept_punct(","));
  expect_punct(")", "after the parameters");
}

Value* Parser::parse_value_ref() {
  Token name = expect_kind(TokenKind::kValueName, "a value like %x");
  auto it = values_.find(name.text);
  if (it == values_.end()) fail_at(name, fmt::format("use of undefined value %{}", name.text));
  return it->second;
}

std::vector<Value*> Parser::parse_operands() {
  expect_punct("(", "after the op name");
  std::vector<Value*> inputs;
  if (accept_punct(")")) return inputs;
  while (true) {
    inputs.push_back(parse_value_ref());
    if (accept_punct(")")) return inputs;
    if (!accept_punct(",")) {
      fail_at(token_,
              fmt::format("expected ',' or ')' after operand, got {}", text::describe(token_)));
    }
  }
}

std::vector<int64_t> Parser::parse_int_list() {
  expect_punct("[", "to start an int list");
  std::vector<int64_t> values;
  if (accept_punct("]")) return values;
  do
    values.push_back(parse_int("an integer in the int list"));
  while (accept_punct(","));
  expect_punct("]", "after the int list");
  return values;
}

AttrValue Parser::parse_attr_value() {
  const Token& t = token_;
  if (t.kind == TokenKind::kNumber) {
    if (is_float_text(t.text)) {
      double v = parse_float_text<double>(t, "a float attribute");
      take();
      return v;
    }
    return parse_int("an integer");
  }
  if (t.kind == TokenKind::kString) return take().text;
  if (t.is_punct("[")) return parse_int_list();
  if (t.kind == TokenKind::kIdent) {
    if (t.text == "true" || t.text == "false") return take().text == "true";
    if (t.text == "inf" || t.text == "nan") {
      double v = parse_float_text<double>(t, "a float attribute");
      take();
      return v;
    }
    if (t.text == "dense") return parse_dense();
    if (std::optional<DType> d = parse_dtype(t.text)) {
      take();
      return *d;
    }
  }
  fail_at(t, fmt::format("expected an attribute value (int, float, bool, string, [ints], dtype or "
                         "dense<...>), got {}",
                         text::describe(t)));
}

Attrs Parser::parse_attrs() {
  Attrs attrs;
  if (!accept_punct("{")) return attrs;
  if (accept_punct("}")) return attrs;
  do {
    Token name = expect_kind(TokenKind::kIdent, "an attribute name");
    if (attrs.has(name.text)) fail_at(name, fmt::format("duplicate attribute '{}'", name.text));
    expect_punct("=", "after the attribute name");
    attrs.set(name.text, parse_attr_value());
  } while (accept_punct(","));
  expect_punct("}", "after the attributes");
  return attrs;
}

// One element of a dense<> literal, stored into element i of `tensor`.
void store_element(HostTensor& tensor, int64_t i, const Token& t) {
  DType dtype = tensor.dtype();
  std::string_view dname = dtype_name(dtype);
  if (dtype == DType::boolean) {
    if (!t.is_ident("true") && !t.is_ident("false")) {
      fail_at(t,
              fmt::format("expected true or false for a bool element, got {}", text::describe(t)));
    }
    tensor.data<bool>()[i] = t.text == "true";
    return;
  }
  bool number = t.kind == TokenKind::kNumber || t.is_ident("inf") || t.is_ident("nan");
  if (!number)
    fail_at(t, fmt::format("expected a number for a {} element, got {}", dname, text::describe(t)));
  if (dtype == DType::f32) {
    tensor.data<float>()[i] = parse_float_text<float>(t, dname);
  } else if (dtype == DType::f64) {
    tensor.data<double>()[i] = parse_float_text<double>(t, dname);
  } else {
    if (is_float_text(t.text)) {
      fail_at(t, fmt::format("expected an integer for {} {} element, got {}",
                             dtype == DType::u8 ? "a" : "an", dname, text::describe(t)));
    }
    int64_t v = parse_int_text(t);
    if (dtype == DType::i32) {
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        fail_at(t, fmt::format("integer {} is out of range for i32", v));
      }
      tensor.data<int32_t>()[i] = static_cast<int32_t>(v);
    } else if (dtype == DType::u8) {
      if (v < 0 || v > std::numeric_limits<uint8_t>::max()) {
        fail_at(t, fmt::format("integer {} is out of range for u8 (0 to 255)", v));
      }
      tensor.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    } else {
      tensor.data<int64_t>()[i] = v;
    }
  }
}

// dense<T[shape]: v, v, ...>; the values are read before the tensor is allocated so that a
// huge shape with few values is an error, not an allocation.
HostTensor Parser::parse_dense() {
  take();  // 'dense'
  expect_punct("<", "after 'dense'");
  Token type_token = token_;
  TensorType type = parse_type();
  std::vector<Token> elements;
  if (accept_punct(":")) {
    do {
      if (token_.kind != TokenKind::kNumber && token_.kind != TokenKind::kIdent) {
        fail_at(token_, fmt::format("expected a tensor element, got {}", text::describe(token_)));
      }
      elements.push_back(take());
    } while (accept_punct(","));
  }
  if (!token_.is_punct(">")) {
    fail_at(token_,
            fmt::format("expected ',' or '>' in dense<...>, got {}", text::describe(token_)));
  }
  int64_t want = type.shape.num_elements();
  if (static_cast<int64_t>(elements.size()) != want) {
    fail_at(type_token, fmt::format("dense<{}> needs {} value{}, got {}", type.to_string(), want,
                                    want == 1 ? "" : "s", elements.size()));
  }
  HostTensor tensor(type);
  for (size_t i = 0; i < elements.size(); ++i)
    store_element(tensor, static_cast<int64_t>(i), elements[i]);
  take();  // '>'
  return tensor;
}

SourceLoc Parser::parse_loc() {
  SourceLoc loc;
  loc.file = expect_kind(TokenKind::kString, "a quoted file name after 'loc'").text;
  expect_punct(":", "after the file name");
  auto number = [&](std::string_view what) {
    Token at = token_;
    int64_t v = parse_int(fmt::format("a {}", what));
    if (v < 0 || v > std::numeric_limits<uint32_t>::max()) {
      fail_at(at, fmt::format("{} {} is out of range", what, v));
    }
    return static_cast<uint32_t>(v);
  };
  loc.line = number("line number");
  if (accept_punct(":")) loc.column = number("column number");
  return loc;
}

void Parser::check_node(const Token& at, Op op, const std::vector<Value*>& inputs,
                        const Attrs& attrs, const std::vector<TensorType>& types) {
  std::vector<TensorType> in_types;
  for (const Value* v : inputs)
    in_types.push_back(v->type());
  std::vector<TensorType> inferred;
  try {
    inferred = infer_types(op, in_types, attrs);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    fail_at(at, e.message());
  }
  if (inferred != types) {
    fail_at(at, fmt::format("{}: the text gives result types ({}) but the op's rule gives ({})",
                            op_name(op), types_to_string(types), types_to_string(inferred)));
  }
}

std::vector<TensorType> Parser::parse_node_types() {
  std::vector<TensorType> types;
  if (accept_punct("(")) {
    expect_punct(")", "in '()', the types of a node without results");
    return types;
  }
  do
    types.push_back(parse_type());
  while (accept_punct(","));
  return types;
}

void Parser::parse_node() {
  Token start = token_;
  std::vector<Token> results;
  if (token_.kind == TokenKind::kValueName) {
    do
      results.push_back(expect_kind(TokenKind::kValueName, "a result name like %0"));
    while (accept_punct(","));
    expect_punct("=", "after the result names");
  }
  Token op_token = expect_kind(TokenKind::kIdent, "an op name");
  std::optional<Op> op = op_from_name(op_token.text);
  if (!op) fail_at(op_token, fmt::format("unknown op {}", text::describe(op_token)));
  std::vector<Value*> inputs = parse_operands();
  Attrs attrs = parse_attrs();
  Token colon = expect_punct(":", "before the result types");
  std::vector<TensorType> types = parse_node_types();
  if (types.size() != results.size()) {
    fail_at(colon, fmt::format("{} result name{} but {} result type{}", results.size(),
                               results.size() == 1 ? "" : "s", types.size(),
                               types.size() == 1 ? "" : "s"));
  }
  std::string scope;
  if (token_.is_ident("scope")) {
    take();
    scope = expect_kind(TokenKind::kString, "a quoted scope after 'scope'").text;
  }
  SourceLoc loc;
  if (token_.is_ident("loc")) {
    take();
    loc = parse_loc();
  }
  parse_function_attrs(attrs);
  if (options_.verify) check_node(start, *op, inputs, attrs, types);
  Node* node = function_.append_unchecked(*op, std::move(inputs), std::move(attrs),
                                          std::move(types), std::move(scope), std::move(loc));
  for (size_t i = 0; i < results.size(); ++i)
    define(results[i], node->output(i));
}

void Parser::parse_return(const std::vector<TensorType>& signature) {
  Token ret = expect_keyword("return", "or a node");
  std::vector<Value*> outputs;
  std::vector<Token> at;
  if (token_.kind == TokenKind::kValueName) {
    do {
      at.push_back(token_);
      outputs.push_back(parse_value_ref());
    } while (accept_punct(","));
  }
  if (outputs.size() != signature.size()) {
    fail_at(ret, fmt::format("return has {} value{} but the signature has {} result type{}",
                             outputs.size(), outputs.size() == 1 ? "" : "s", signature.size(),
                             signature.size() == 1 ? "" : "s"));
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i]->type() != signature[i]) {
      fail_at(at[i], fmt::format("return value {} has type {} but the signature says {}", i,
                                 outputs[i]->type().to_string(), signature[i].to_string()));
    }
  }
  function_.set_outputs(std::move(outputs));
}

void Parser::parse_update() {
  take();  // 'update'
  Token target_token = token_;
  Value* target = parse_value_ref();
  expect_punct("=", "after the update target");
  Token value_token = token_;
  Value* value = parse_value_ref();
  if (options_.verify) {
    if (!target->is_param()) {
      fail_at(target_token, fmt::format("update target %{} is not a parameter", target_token.text));
    }
    if (!updated_.insert(target).second) {
      fail_at(target_token, fmt::format("parameter %{} is updated twice", target_token.text));
    }
    if (target->type() != value->type()) {
      fail_at(value_token,
              fmt::format("update of %{} ({}) with %{} of another type ({})", target_token.text,
                          target->type().to_string(), value_token.text, value->type().to_string()));
    }
  }
  function_.add_update(target, value);
}

void Parser::parse_function_attrs(Attrs& attrs) {
  // An identifier that is not an op, `return` or `update`, followed by `func`.
  while (token_.kind == TokenKind::kIdent && !token_.is_ident("return") &&
         !token_.is_ident("update") && !op_from_name(token_.text)) {
    Token name = take();
    // `name(` starts a node whose op is unknown, not a function attribute.
    if (token_.is_punct("(")) fail_at(name, fmt::format("unknown op {}", text::describe(name)));
    if (attrs.has(name.text)) fail_at(name, fmt::format("duplicate attribute '{}'", name.text));
    if (!token_.is_ident("func")) {
      fail_at(token_, fmt::format("expected 'func' after the function attribute name '{}', got {}",
                                  name.text, text::describe(token_)));
    }
    if (depth_ >= kMaxNesting) {
      fail_at(token_, fmt::format("functions nested more than {} deep", kMaxNesting));
    }
    // A nested function has its own names: it can refer only to its own parameters.
    Function outer = std::move(function_);
    auto outer_values = std::move(values_);
    auto outer_updated = std::move(updated_);
    function_ = Function();
    values_.clear();
    updated_.clear();
    ++depth_;
    parse_function_text();
    --depth_;
    auto body = std::make_shared<const Function>(std::move(function_));
    function_ = std::move(outer);
    values_ = std::move(outer_values);
    updated_ = std::move(outer_updated);
    attrs.set_function(name.text, std::move(body));
  }
}

void Parser::parse_function_text() {
  expect_keyword("func", "at the start of a function");
  Token name = expect_kind(TokenKind::kFuncName, "a function name like @main");
  function_.set_name(name.text);
  parse_params();
  expect_punct("->", "after the parameters");
  std::vector<TensorType> signature = parse_type_list();
  expect_punct("{", "to open the function body");
  while (!token_.is_ident("return")) {
    if (token_.kind == TokenKind::kEnd || token_.is_punct("}")) {
      fail_at(token_, fmt::format("expected a node or 'return', got {}", text::describe(token_)));
    }
    parse_node();
  }
  parse_return(signature);
  while (token_.is_ident("update"))
    parse_update();
  expect_punct("}", "after 'return' and the updates");
}

Function Parser::parse_function() {
  parse_function_text();
  if (token_.kind != TokenKind::kEnd) {
    fail_at(token_, fmt::format("expected end of input after the function, got {}",
                                text::describe(token_)));
  }
  return std::move(function_);
}

}  // namespace

Function parse(std::string_view text, const ParseOptions& options) {
  Parser parser(text, options);
  return parser.parse_function();
}

Function parse_file(const std::string& path, const ParseOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(fmt::format("cannot open '{}' for reading", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IOError(fmt::format("cannot read '{}'", path));
  try {
    return parse(buffer.str(), options);
  } catch (ParseError& e) {
    throw ParseError(fmt::format("{}:{}", path, e.message()), e.line(), e.column());
  }
}

}  // namespace kiln::ir
