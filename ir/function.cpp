#include "kiln/ir/function.h"

#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"

namespace kiln::ir {

SourceLoc SourceLoc::from(const std::source_location& loc) {
  return SourceLoc{loc.file_name(), loc.line(), loc.column()};
}

std::string SourceLoc::to_string() const {
  if (column == 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, column);
}

Node::Node(Op op, std::vector<Value*> inputs, Attrs attrs, std::string scope, SourceLoc loc)
    : op_(op),
      inputs_(std::move(inputs)),
      attrs_(std::move(attrs)),
      scope_(std::move(scope)),
      loc_(std::move(loc)) {}

std::vector<TensorType> Node::output_types() const {
  std::vector<TensorType> types;
  for (const auto& v : outputs_)
    types.push_back(v->type());
  return types;
}

std::vector<TensorType> Node::input_types() const {
  std::vector<TensorType> types;
  for (const Value* v : inputs_)
    types.push_back(v->type());
  return types;
}

Value* Function::add_param(TensorType type, std::string name) {
  if (name.empty()) name = fmt::format("arg{}", params_.size());
  params_.push_back(
      std::make_unique<Value>(std::move(type), nullptr, static_cast<int>(params_.size()), name));
  return params_.back().get();
}

Node* Function::append(Op op, std::vector<Value*> inputs, Attrs attrs, std::string scope,
                       SourceLoc loc) {
  std::vector<TensorType> in_types;
  for (const Value* v : inputs)
    in_types.push_back(v->type());
  std::vector<TensorType> out_types;
  try {
    out_types = infer_types(op, in_types, attrs);
  } catch (Error& e) {
    add_location(e, scope, loc);
    throw;
  }
  return append_unchecked(op, std::move(inputs), std::move(attrs), std::move(out_types),
                          std::move(scope), std::move(loc));
}

Node* Function::append_unchecked(Op op, std::vector<Value*> inputs, Attrs attrs,
                                 std::vector<TensorType> output_types, std::string scope,
                                 SourceLoc loc) {
  auto node = std::make_unique<Node>(op, std::move(inputs), std::move(attrs), std::move(scope),
                                     std::move(loc));
  for (size_t i = 0; i < output_types.size(); ++i) {
    node->outputs_.push_back(
        std::make_unique<Value>(std::move(output_types[i]), node.get(), static_cast<int>(i), ""));
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

}  // namespace kiln::ir
