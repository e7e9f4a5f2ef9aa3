#include "kiln/ir/function.h"

#include <fmt/format.h>

#include <unordered_map>

#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"

namespace kiln::ir {

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

Function Function::clone() const {
  Function copy(name_);
  std::unordered_map<const Value*, Value*> map;
  for (const auto& param : params_)
    map[param.get()] = copy.add_param(param->type(), param->name());
  for (const auto& node : nodes_) {
    std::vector<Value*> inputs;
    for (const Value* v : node->inputs())
      inputs.push_back(map.at(v));
    Node* made = copy.append_unchecked(node->op(), std::move(inputs), node->attrs(),
                                       node->output_types(), node->scope(), node->loc());
    for (size_t i = 0; i < node->num_outputs(); ++i)
      map[node->output(i)] = made->output(i);
  }
  std::vector<Value*> outputs;
  for (const Value* v : outputs_)
    outputs.push_back(map.at(v));
  copy.set_outputs(std::move(outputs));
  for (const Update& update : updates_)
    copy.add_update(map.at(update.param), map.at(update.value));
  return copy;
}

}  // namespace kiln::ir
