#include "kiln/ir/printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace kiln::ir {

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '/';
}

// A string literal, escaped exactly as string attributes are.
std::string quoted(std::string_view text) {
  return attr_to_string(AttrValue(std::string(text)));
}

// `%name` or `@name`; a name the lexer would not read back as one token is quoted.
std::string sigil_name(char sigil, std::string_view name) {
  bool bare = !name.empty() && std::all_of(name.begin(), name.end(), is_name_char);
  return fmt::format("{}{}", sigil, bare ? std::string(name) : quoted(name));
}

// The printed name of every value of a function: parameters by (unique) name, node results
// numbered in order, skipping numbers a parameter already uses.
class Namer {
 public:
  explicit Namer(const Function& function) {
    std::unordered_set<std::string> used;
    for (const auto& param : function.params()) {
      std::string name = param->name();
      for (int k = 1; used.count(name) != 0; ++k)
        name = fmt::format("{}.{}", param->name(), k);
      used.insert(name);
      names_[param.get()] = sigil_name('%', name);
    }
    int64_t next = 0;
    for (const auto& node : function.nodes()) {
      for (size_t i = 0; i < node->num_outputs(); ++i) {
        while (used.count(std::to_string(next)) != 0)
          ++next;
        names_[node->output(i)] = fmt::format("%{}", next++);
      }
    }
  }

  std::string ref(const Value* value) const {
    if (value == nullptr) return "%<null>";
    auto it = names_.find(value);
    if (it != names_.end()) return it->second;
    if (value->is_param()) return fmt::format("%<undefined {}>", value->name());
    return "%<undefined>";
  }

 private:
  std::unordered_map<const Value*, std::string> names_;
};

std::string join_refs(const Namer& namer, std::span<Value* const> values) {
  std::string out;
  for (const Value* v : values) {
    if (!out.empty()) out += ", ";
    out += namer.ref(v);
  }
  return out;
}

std::string node_text(const Namer& namer, const Node& node, const PrintOptions& options) {
  std::string out;
  for (size_t i = 0; i < node.num_outputs(); ++i) {
    out += i == 0 ? "" : ", ";
    out += namer.ref(node.output(i));
  }
  if (node.num_outputs() > 0) out += " = ";
  out += fmt::format("{}({})", op_name(node.op()), join_refs(namer, node.inputs()));
  if (std::string attrs = node.attrs().to_string(); !attrs.empty()) out += " " + attrs;
  std::vector<TensorType> types = node.output_types();
  out += fmt::format(" : {}", types.empty() ? std::string("()") : types_to_string(types));
  std::string suffix;
  if (!node.scope().empty()) suffix += fmt::format(" scope {}", quoted(node.scope()));
  const SourceLoc& loc = node.loc();
  if (options.locations && !loc.empty()) {
    suffix += fmt::format(" loc {}:{}", quoted(loc.file), loc.line);
    if (loc.column != 0) suffix += fmt::format(":{}", loc.column);
  }
  if (!suffix.empty())
    out += fmt::format(" {}", suffix);  // two spaces set scope and loc apart from the types
  return out;
}

std::string signature(const Function& function, const Namer& namer) {
  std::string params;
  for (const auto& param : function.params()) {
    if (!params.empty()) params += ", ";
    params += fmt::format("{}: {}", namer.ref(param.get()), param->type().to_string());
  }
  std::vector<TensorType> results;
  for (const Value* v : function.outputs()) {
    results.push_back(v == nullptr ? TensorType{} : v->type());
  }
  std::string result_text = types_to_string(results);
  if (results.size() != 1) result_text = fmt::format("({})", result_text);
  return fmt::format("func {}({}) -> {}", sigil_name('@', function.name()), params, result_text);
}

}  // namespace

std::string print_value(const Function& function, const Value* value) {
  return Namer(function).ref(value);
}

std::string print(const Function& function, const PrintOptions& options) {
  Namer namer(function);
  std::string out = signature(function, namer) + " {\n";
  for (const auto& node : function.nodes()) {
    out += fmt::format("  {}\n", node_text(namer, *node, options));
    // Function attributes (scan bodies) follow their node, indented, as nested functions.
    for (const auto& [name, value] : node->attrs().items()) {
      const auto* body = std::get_if<FunctionAttr>(&value);
      if (body == nullptr) continue;
      std::string text = options.locations ? print(body->function(), options) : body->text();
      std::string_view rest = text;
      bool first = true;
      while (!rest.empty()) {
        size_t end = rest.find('\n');
        std::string_view line = rest.substr(0, end);
        out += fmt::format("    {}{}\n", first ? name + " " : std::string(), line);
        first = false;
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      }
    }
  }
  out += "  return";
  if (!function.outputs().empty()) out += fmt::format(" {}", join_refs(namer, function.outputs()));
  out += "\n";
  for (const auto& update : function.updates()) {
    out += fmt::format("  update {} = {}\n", namer.ref(update.param), namer.ref(update.value));
  }
  return out + "}\n";
}

std::string print_node(const Function& function, const Node& node, const PrintOptions& options) {
  return node_text(Namer(function), node, options);
}

}  // namespace kiln::ir
