// The IR text form: exact printer output, parse errors with their line:column, and robustness of
// the parser against truncated, mutated and garbage input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"

using namespace kiln;
using namespace kiln::ir;

namespace {

TensorType f32(std::initializer_list<int64_t> dims) {
  return {DType::f32, Shape(dims)};
}

// The example from printer.h, built without shape inference.
Function poly() {
  Function f("poly");
  Value* x = f.add_param(f32({4}), "x");
  Value* w = f.add_param(f32({2, 2}), "w");
  Value* v0 = f.append_unchecked(Op::mul, {x, x}, {}, {f32({4})})->output();
  Attrs value;
  value.set_tensor("value", HostTensor::scalar(10.0f));
  Value* v1 = f.append_unchecked(Op::constant, {}, value, {f32({})})->output();
  Value* v2 = f.append_unchecked(Op::mul, {v0, v1}, {}, {f32({4})}, "dense_1/matmul")->output();
  Attrs split;
  split.set_int("axis", 0).set_ints("sizes", {2, 2});
  f.append_unchecked(Op::split, {x}, split, {f32({2}), f32({2})});
  Value* v5 =
      f.append_unchecked(Op::add, {w, w}, {}, {f32({2, 2})}, "s", SourceLoc{"file.cpp", 12, 5})
          ->output();
  f.set_outputs({v2, v5});
  f.add_update(w, v5);
  return f;
}

const char* const kPolyText = R"(func @poly(%x: f32[4], %w: f32[2,2]) -> (f32[4], f32[2,2]) {
  %0 = mul(%x, %x) : f32[4]
  %1 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %2 = mul(%0, %1) : f32[4]  scope "dense_1/matmul"
  %3, %4 = split(%x) {axis = 0, sizes = [2, 2]} : f32[2], f32[2]
  %5 = add(%w, %w) : f32[2,2]  scope "s"
  return %2, %5
  update %w = %5
}
)";

const ParseOptions kNoVerify{.verify = false};

// Parses `text` (without inference checks) and expects a ParseError at line:column whose message
// contains `what`.
void check_parse_error(const std::string& text, int line, int column, const std::string& what) {
  INFO("text:\n" << text);
  try {
    parse(text, kNoVerify);
    FAIL("no ParseError");
  } catch (const ParseError& e) {
    INFO("message: " << e.what());
    CHECK(e.line() == line);
    CHECK(e.column() == column);
    CHECK_THAT(e.what(),
               Catch::StartsWith(std::to_string(line) + ":" + std::to_string(column) + ": "));
    CHECK_THAT(e.what(), Catch::Contains(what));
  }
}

// Parsing `text` either succeeds or throws ParseError; nothing else escapes.
void check_parses_or_rejects(const std::string& text, const ParseOptions& options) {
  try {
    Function f = parse(text, options);
    CHECK(parse(print(f), kNoVerify).name() == f.name());
  } catch (const ParseError& e) {
    CHECK_THAT(e.what(), Catch::Matches("^[0-9]+:[0-9]+: (.|\n)*"));
  }
}

}  // namespace

TEST_CASE("printer writes the documented syntax", "[ir][text]") {
  Function f = poly();
  CHECK(print(f) == kPolyText);
  std::string with_locs = kPolyText;
  with_locs.replace(with_locs.find("scope \"s\""), 9, "scope \"s\" loc \"file.cpp\":12:5");
  CHECK(print(f, {.locations = true}) == with_locs);
}

TEST_CASE("printer: names, quoting, empty lists, zero-result nodes", "[ir][text]") {
  Function f("my fn");
  Value* a = f.add_param(f32({2}), "a b");
  Value* b = f.add_param(f32({2}), "0");
  Value* c = f.add_param(f32({2}), "a b");
  Value* d = f.add_param(f32({0}), "dense_1/kernel");
  Node* n = f.append_unchecked(Op::add, {a, b}, {}, {f32({2})}, "quote\"back\\slash");
  n->mutable_attrs().set_string("s", "x\"y");
  f.append_unchecked(Op::split, {d}, Attrs().set_int("axis", 0).set_ints("sizes", {}), {});
  Node* n2 = f.append_unchecked(Op::neg, {c}, {}, {f32({2})}, "", SourceLoc{"f.cpp", 7, 0});
  f.set_outputs({n2->output()});
  const char* want =
      R"(func @"my fn"(%"a b": f32[2], %0: f32[2], %"a b.1": f32[2], %dense_1/kernel: f32[0]) -> f32[2] {
  %1 = add(%"a b", %0) {s = "x\"y"} : f32[2]  scope "quote\"back\\slash"
  split(%dense_1/kernel) {axis = 0, sizes = []} : ()
  %2 = neg(%"a b.1") : f32[2]
  return %2
}
)";
  CHECK(print(f) == want);
  CHECK(print(f, {.locations = true}) ==
        std::string(want).replace(std::string(want).find(": f32[2]\n  return") + 8, 0,
                                  "  loc \"f.cpp\":7"));
  // The renamed text reads back and prints the same.
  Function g = parse(want, kNoVerify);
  CHECK(print(g) == want);
  CHECK(g.param(2)->name() == "a b.1");
  CHECK(g.nodes()[0]->scope() == "quote\"back\\slash");
  CHECK(g.nodes()[0]->attrs().get_string("s") == "x\"y");

  Function empty("e");
  CHECK(print(empty) == "func @e() -> () {\n  return\n}\n");
  CHECK(print(parse(print(empty))) == print(empty));
}

TEST_CASE("printer: values outside the function print as undefined", "[ir][text]") {
  Function other("other");
  Value* foreign = other.add_param(f32({2}), "z");
  Function f("f");
  Node* n = f.append_unchecked(Op::neg, {foreign}, {}, {f32({2})});
  CHECK(print_node(f, *n) == "%0 = neg(%<undefined z>) : f32[2]");
  CHECK(print_value(f, n->output()) == "%0");
  CHECK(print_value(f, nullptr) == "%<null>");
}

TEST_CASE("parser reads the printed text back", "[ir][text]") {
  Function f = parse(kPolyText, kNoVerify);
  CHECK(f.name() == "poly");
  REQUIRE(f.params().size() == 2);
  CHECK(f.param(1)->name() == "w");
  REQUIRE(f.nodes().size() == 5);
  CHECK(f.nodes()[3]->op() == Op::split);
  CHECK(f.nodes()[3]->num_outputs() == 2);
  CHECK(f.nodes()[3]->attrs().get_ints("sizes") == std::vector<int64_t>{2, 2});
  CHECK(f.nodes()[2]->scope() == "dense_1/matmul");
  CHECK(f.nodes()[1]->attrs().get_tensor("value").data<float>()[0] == 10.0f);
  REQUIRE(f.updates().size() == 1);
  CHECK(f.updates()[0].param == f.param(1));
  CHECK(f.updates()[0].value == f.nodes()[4]->output());
  CHECK(print(f) == kPolyText);

  std::string with_locs = print(poly(), {.locations = true});
  Function g = parse(with_locs, kNoVerify);
  CHECK(g.nodes()[4]->loc() == SourceLoc{"file.cpp", 12, 5});
  CHECK(print(g, {.locations = true}) == with_locs);
}

TEST_CASE("parser: free-form names, whitespace and comments", "[ir][text]") {
  const char* text = R"(// a comment
func @f(%in: f32[3]) -> f32[3]   // trailing
{
  %a = neg(%in) : f32[ 3 ]
  %"b c" = abs(%a) : f32[3] scope "x"
  return %"b c"
})";
  Function f = parse(text, kNoVerify);
  CHECK(print(f) ==
        "func @f(%in: f32[3]) -> f32[3] {\n  %0 = neg(%in) : f32[3]\n  %1 = abs(%0) : f32[3]  "
        "scope \"x\"\n  return %1\n}\n");
}

TEST_CASE("parser reads every attribute kind", "[ir][text]") {
  const char* text = R"(func @f() -> () {
  %0 = constant() {b = true, d = i64, f = 1e-05, g = -2.5, i = -7, l = [], m = [1, -2, 3], n = nan, p = inf, q = -inf, s = "hi", t = dense<f32[0]>} : f32[]
  return
})";
  Function f = parse(text, kNoVerify);
  const Attrs& a = f.nodes()[0]->attrs();
  CHECK(a.get_bool("b"));
  CHECK(a.get_dtype("d") == DType::i64);
  CHECK(a.get_float("f") == 1e-05);
  CHECK(std::holds_alternative<double>(*a.find("g")));
  CHECK(a.get_int("i") == -7);
  CHECK(a.get_ints("l").empty());
  CHECK(a.get_ints("m") == std::vector<int64_t>{1, -2, 3});
  CHECK(std::isnan(a.get_float("n")));
  CHECK(a.get_float("p") == std::numeric_limits<double>::infinity());
  CHECK(a.get_float("q") == -std::numeric_limits<double>::infinity());
  CHECK(a.get_string("s") == "hi");
  CHECK(a.get_tensor("t").shape() == Shape{0});
  CHECK(print(parse(print(f), kNoVerify)) == print(f));
}

TEST_CASE("parser reads dense<> literals of every dtype", "[ir][text]") {
  auto tensor = [](const std::string& dense) {
    Function f =
        parse("func @f() -> () {\n  %0 = constant() {value = " + dense + "} : f32[]\n  return\n}",
              kNoVerify);
    return f.nodes()[0]->attrs().get_tensor("value");
  };
  HostTensor f = tensor("dense<f32[2,3]: 1.0, -2.5, nan, inf, -inf, 3>");
  REQUIRE(f.shape() == Shape{2, 3});
  CHECK(f.data<float>()[1] == -2.5f);
  CHECK(std::isnan(f.data<float>()[2]));
  CHECK(f.data<float>()[3] == std::numeric_limits<float>::infinity());
  CHECK(f.data<float>()[4] == -std::numeric_limits<float>::infinity());
  CHECK(f.data<float>()[5] == 3.0f);
  HostTensor tiny = tensor("dense<f32[2]: 1e-45, 1e-50>");
  CHECK(tiny.data<float>()[0] == std::numeric_limits<float>::denorm_min());
  CHECK(tiny.data<float>()[1] == 0.0f);
  HostTensor d = tensor("dense<f64[2]: 0.1, 4.9e-324>");
  CHECK(d.data<double>()[0] == 0.1);
  CHECK(d.data<double>()[1] == std::numeric_limits<double>::denorm_min());
  HostTensor i64 = tensor("dense<i64[3]: -9223372036854775808, 9223372036854775807, 0>");
  CHECK(i64.data<int64_t>()[0] == std::numeric_limits<int64_t>::min());
  CHECK(i64.data<int64_t>()[1] == std::numeric_limits<int64_t>::max());
  HostTensor i32 = tensor("dense<i32[2]: -2147483648, 2147483647>");
  CHECK(i32.data<int32_t>()[0] == std::numeric_limits<int32_t>::min());
  HostTensor b = tensor("dense<bool[3]: true, false, true>");
  CHECK(b.data<bool>()[0]);
  CHECK_FALSE(b.data<bool>()[1]);
  HostTensor u8 = tensor("dense<u8[4]: 0, 1, 128, 255>");
  REQUIRE(u8.dtype() == DType::u8);
  CHECK(std::vector<uint8_t>(u8.values<uint8_t>().begin(), u8.values<uint8_t>().end()) ==
        std::vector<uint8_t>{0, 1, 128, 255});
  HostTensor s = tensor("dense<f64[]: -0.0>");
  CHECK(std::signbit(s.data<double>()[0]));
  // Every value prints back the same.
  for (const char* text :
       {"dense<f32[3]: 0.1, 3.4028235e+38, 1e-45>", "dense<f64[2]: 0.1, 1.7976931348623157e+308>",
        "dense<i64[1]: -9223372036854775808>", "dense<bool[2]: true, false>", "dense<f32[2,0]>",
        "dense<u8[3]: 0, 7, 255>", "dense<f32[]: -inf>"}) {
    CHECK(attr_to_string(tensor(text)) == text);
  }
}

TEST_CASE("parse errors say where and what", "[ir][text]") {
  const std::string head = "func @f(%x: f32[4]) -> f32[4] {\n";
  struct Case {
    std::string text;
    int line, column;
    std::string what;
  };
  std::vector<Case> cases = {
      {"", 1, 1, "expected 'func' at the start of a function, got end of input"},
      {"fun @f", 1, 1, "expected 'func'"},
      {"func f", 1, 6, "expected a function name like @main, got 'f'"},
      {"func @", 1, 6, "expected a name after '@', got end of input"},
      {"func @f(%x f32[4])", 1, 12, "expected ':' after the parameter name, got 'f32'"},
      {"func @f(%x: f33[4])", 1, 13, "unknown dtype 'f33'"},
      {"func @f(%x: f32[4)", 1, 18, "expected ']' after the dimensions, got ')'"},
      {"func @f(%x: f32[-1])", 1, 17, "dimension size must be non-negative, got -1"},
      {"func @f(%x: f32[1.5])", 1, 17, "expected a dimension size, got the float '1.5'"},
      {"func @f(%x: f32[99999999999999999999])", 1, 17,
       "integer '99999999999999999999' is out of range"},
      {"func @f(%x: f32[4294967296,4294967296])", 1, 28, "more elements than fit in an i64"},
      {"func @f(%x: f32[4], %x: f32[4])", 1, 21, "redefinition of %x"},
      {"func @f(%x: f32[4]) f32[4]", 1, 21, "expected '->' after the parameters, got 'f32'"},
      {head + "  %0 = fooo(%x) : f32[4]\n", 2, 8, "unknown op 'fooo'"},
      {head + "  %0 = neg(%x %x) : f32[4]\n", 2, 15, "expected ',' or ')' after operand, got '%x'"},
      {head + "  %0 = neg(%7) : f32[4]\n", 2, 12, "use of undefined value %7"},
      {head + "  %0 = neg(%x) : f32[4]\n  %0 = neg(%x) : f32[4]\n", 3, 3, "redefinition of %0"},
      {head + "  %x = neg(%x) : f32[4]\n", 2, 3, "redefinition of %x"},
      {head + "  %0 = neg(%x) f32[4]\n", 2, 16, "expected ':' before the result types, got 'f32'"},
      {head + "  %0, %1 = neg(%x) : f32[4]\n", 2, 20, "2 result names but 1 result type"},
      {head + "  %0 = neg(%x) {a 1} : f32[4]\n", 2, 19,
       "expected '=' after the attribute name, got '1'"},
      {head + "  %0 = neg(%x) {a = 1, a = 2} : f32[4]\n", 2, 24, "duplicate attribute 'a'"},
      {head + "  %0 = neg(%x) {a = %x} : f32[4]\n", 2, 21, "expected an attribute value"},
      {head + "  %0 = neg(%x) {a = [1, 2.0]} : f32[4]\n", 2, 25,
       "expected an integer in the int list, got the float '2.0'"},
      {head + "  %0 = neg(%x) {a = [[1]]} : f32[4]\n", 2, 22,
       "expected an integer in the int list, got '['"},
      {head + "  %0 = neg(%x) {a = 1.2.3} : f32[4]\n", 2, 21, "invalid number '1.2.3'"},
      {head + "  %0 = neg(%x) {a = 12abc} : f32[4]\n", 2, 21, "invalid number '12abc'"},
      {head + "  %0 = neg(%x) {a = 1e999} : f32[4]\n", 2, 21, "out of range"},
      {head + "  %0 = neg(%x) {a = 9223372036854775808} : f32[4]\n", 2, 21, "out of range for i64"},
      {head + "  %0 = neg(%x) {a = \"abc} : f32[4]\n", 2, 21, "unterminated string"},
      {head + "  %0 = neg(%x) {a = \"a\\nb\"} : f32[4]\n", 2, 23, "unknown escape '\\n'"},
      {head + "  %0 = neg(%x) {a = dense<f32[2]: 1.0>} : f32[4]\n", 2, 27,
       "dense<f32[2]> needs 2 values, got 1"},
      {head + "  %0 = neg(%x) {a = dense<f32[1000000000000]: 1.0>} : f32[4]\n", 2, 27,
       "needs 1000000000000 values, got 1"},
      {head + "  %0 = neg(%x) {a = dense<i32[1]: 1.5>} : f32[4]\n", 2, 35,
       "expected an integer for an i32 element"},
      {head + "  %0 = neg(%x) {a = dense<i32[1]: 2147483648>} : f32[4]\n", 2, 35,
       "out of range for i32"},
      {head + "  %0 = neg(%x) {a = dense<u8[2]: 0, 256>} : f32[4]\n", 2, 37,
       "integer 256 is out of range for u8 (0 to 255)"},
      {head + "  %0 = neg(%x) {a = dense<u8[1]: -1>} : f32[4]\n", 2, 34,
       "integer -1 is out of range for u8"},
      {head + "  %0 = neg(%x) {a = dense<u8[1]: 2.5>} : f32[4]\n", 2, 34,
       "expected an integer for a u8 element"},
      {head + "  %0 = neg(%x) {a = dense<bool[1]: 1>} : f32[4]\n", 2, 36, "expected true or false"},
      {head + "  %0 = neg(%x) {a = dense<f32[1]: 1e39>} : f32[4]\n", 2, 35, "out of range for f32"},
      {head + "  %0 = neg(%x) {a = dense<f32[1]: 1.0 2.0>} : f32[4]\n", 2, 39,
       "expected ',' or '>' in dense<...>"},
      {head + "  %0 = neg(%x) : f32[4] scope x\n", 2, 31, "expected a quoted scope after 'scope'"},
      {head + "  %0 = neg(%x) : f32[4] loc \"f\":-1\n", 2, 33, "line number -1 is out of range"},
      {head + "  %0 = neg(%x) : f32[4] loc \"f\"\n", 3, 1,
       "expected ':' after the file name, got end of input"},
      {head + "  %0 = neg(%x) : f32[4]\n  return %0, %x\n}", 3, 3,
       "return has 2 values but the signature has 1"},
      {head + "  %0 = neg(%x) : f32[3]\n  return %0\n}", 3, 10,
       "return value 0 has type f32[3] but the signature says f32[4]"},
      {head + "  return %x\n  update %x = \n}", 4, 1, "expected a value like %x, got '}'"},
      {head + "  return %x\n  %0 = neg(%x) : f32[4]\n}", 3, 3,
       "expected '}' after 'return' and the updates, got '%0'"},
      {head + "  return %x\n}\nfunc", 4, 1, "expected end of input after the function, got 'func'"},
      {head + "  return %x\n", 3, 1,
       "expected '}' after 'return' and the updates, got end of input"},
      {head + "}", 2, 1, "expected a node or 'return', got '}'"},
      {head + "  %0 = neg(%x) : f32[4] \x01", 2, 25, "unexpected character '\\x01'"},
      {head + "  % = neg(%x) : f32[4]\n", 2, 3, "expected a name after '%', got ' '"},
  };
  for (const Case& c : cases)
    check_parse_error(c.text, c.line, c.column, c.what);
}

TEST_CASE("parse with verify checks result types against the op's rule", "[ir][text]") {
  const char* text = "func @f(%x: f32[4]) -> f32[4] {\n  %0 = neg(%x) : f32[5]\n  return %x\n}";
  CHECK_NOTHROW(parse(text, kNoVerify));
  CHECK_THROWS_AS(parse(text), ParseError);
  CHECK_THROWS_WITH(parse(text),
                    Catch::StartsWith("2:3: neg: the text gives result types (f32[5]) but "
                                      "the op's rule gives (f32[4])"));
  // An inference error (a bool operand to neg) is reported at the node.
  const char* bad = "func @f(%x: bool[4]) -> bool[4] {\n  %0 = neg(%x) : bool[4]\n  return %x\n}";
  CHECK_THROWS_WITH(parse(bad), Catch::StartsWith("2:3: neg: "));
  const char* upd =
      "func @f(%x: f32[4]) -> f32[4] {\n  %0 = neg(%x) : f32[4]\n  return %x\n  update %0 = %x\n}";
  CHECK_THROWS_WITH(parse(upd), Catch::StartsWith("4:10: update target %0 is not a parameter"));
  const char* twice =
      "func @f(%x: f32[4]) -> f32[4] {\n  return %x\n  update %x = %x\n  update %x = %x\n}";
  CHECK_THROWS_WITH(parse(twice), Catch::StartsWith("4:10: parameter %x is updated twice"));
  const char* types =
      "func @f(%x: f32[4], %y: f32[2]) -> f32[4] {\n  return %x\n  update %x = %y\n}";
  CHECK_THROWS_WITH(parse(types),
                    Catch::StartsWith("3:15: update of %x (f32[4]) with %y of another type"));
  CHECK_NOTHROW(parse(types, kNoVerify));
}

TEST_CASE("parse_file reads a file and names it in errors", "[ir][text]") {
  std::string path = "ir_text_test_tmp.kiln";
  {
    std::ofstream out(path);
    out << kPolyText;
  }
  CHECK(print(parse_file(path, kNoVerify)) == kPolyText);
  {
    std::ofstream out(path);
    out << "func @f(";
  }
  CHECK_THROWS_WITH(parse_file(path), Catch::StartsWith(path + ":1:9: "));
  std::remove(path.c_str());
  CHECK_THROWS_AS(parse_file("/nonexistent/dir/x.kiln"), IOError);
}

TEST_CASE("every prefix of a valid text parses or throws ParseError", "[ir][text][fuzz]") {
  std::string text = print(poly(), {.locations = true});
  text.insert(text.find("  return"),
              "  %9 = constant() {value = dense<i64[2]: -9223372036854775808, 5>, s = \"a\\\"b\"} "
              ": i64[2]\n");
  for (size_t n = 0; n <= text.size(); ++n) {
    check_parses_or_rejects(text.substr(0, n), kNoVerify);
    check_parses_or_rejects(text.substr(0, n), {});
  }
}

TEST_CASE("mutated and garbage text parses or throws ParseError", "[ir][text][fuzz]") {
  std::mt19937 rng(1234);
  std::string base = print(poly(), {.locations = true});
  const std::string alphabet = "%@(){}[]<>,:=-\"\\ \n0123456789.eafnix_/";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.erase(pos, 1 + rng() % 8);
          break;
        default:
          text.insert(pos, 1, static_cast<char>(rng() % 256));
          break;
      }
    }
    check_parses_or_rejects(text, iter % 2 == 0 ? kNoVerify : ParseOptions{});
  }
  for (int iter = 0; iter < 500; ++iter) {
    std::string garbage(rng() % 200, '\0');
    for (char& c : garbage)
      c = static_cast<char>(rng() % 256);
    if (iter % 2 == 0) garbage = "func @f(" + garbage;
    check_parses_or_rejects(garbage, {});
  }
}

TEST_CASE("pathological inputs neither crash nor hang", "[ir][text][fuzz]") {
  std::string deep = "func @f() -> () {\n  %0 = constant() {a = " + std::string(200000, '[') +
                     "} : f32[]\n  return\n}";
  CHECK_THROWS_AS(parse(deep), ParseError);
  std::string deep_types = "func @f() -> " + std::string(200000, '(');
  CHECK_THROWS_AS(parse(deep_types), ParseError);
  std::string long_number =
      "func @f(%x: f32[" + std::string(100000, '9') + "]) -> () {\n  return\n}";
  CHECK_THROWS_WITH(parse(long_number), Catch::Contains("out of range"));
  std::string many_dims = "func @f(%x: f32[" + std::string(1000, '1');
  CHECK_THROWS_AS(parse(many_dims), ParseError);
  std::string nul("func @f\0() -> () {}", 19);
  CHECK_THROWS_WITH(parse(nul), Catch::Contains("unexpected character '\\x00'"));
}

TEST_CASE("u8 types, parameters and constants round-trip through the text", "[ir][text]") {
  const char* text = R"(func @bytes(%x: u8[2,3]) -> (u8[2,3], bool[2,3], f32[2,3], u8[3]) {
  %0 = constant() {value = dense<u8[3]: 0, 128, 255>} : u8[3]
  %1 = add(%x, %0) : u8[2,3]
  %2 = greater(%1, %0) : bool[2,3]
  %3 = cast(%1) {dtype = f32} : f32[2,3]
  %4 = reduce_max(%x) {axes = [0]} : u8[3]
  return %1, %2, %3, %4
}
)";
  Function f = parse(text);  // verifying: the rules accept u8 where the text says so
  CHECK(f.param(0)->type() == TensorType{DType::u8, Shape{2, 3}});
  CHECK(f.nodes()[3]->attrs().get_dtype("dtype") == DType::f32);
  CHECK(print(f) == text);
  CHECK(print(parse(print(f))) == print(f));
  // The long name parses as the same dtype and prints short.
  Function g = parse("func @g(%x: uint8[2]) -> u8[2] {\n  return %x\n}\n");
  CHECK(g.param(0)->type().dtype == DType::u8);
  CHECK(print(g) == "func @g(%x: u8[2]) -> u8[2] {\n  return %x\n}\n");
  CHECK(parse_dtype("u8") == DType::u8);
  CHECK(parse_dtype("uint8") == DType::u8);
  CHECK(dtype_name(DType::u8) == "u8");
  CHECK(dtype_long_name(DType::u8) == "uint8");
  CHECK(dtype_size(DType::u8) == 1);
  CHECK(is_integer(DType::u8));
  CHECK(is_unsigned(DType::u8));
  CHECK_FALSE(is_unsigned(DType::i32));
  CHECK_FALSE(is_floating(DType::u8));
}
