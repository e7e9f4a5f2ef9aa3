// The IR: a Function is an ordered list of Nodes in topological order; each Node produces Values.
// Pure dataflow: state lives at the boundary as parameters plus `updates` (param → new value).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/op.h"
#include "kiln/ir/source_loc.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

class Node;

// A typed SSA value: a function parameter or one result of a node.
class Value {
 public:
  Value(TensorType type, Node* producer, int index, std::string name)
      : type_(std::move(type)), producer_(producer), index_(index), name_(std::move(name)) {}
  const TensorType& type() const { return type_; }
  // The node that computes it; nullptr for a parameter.
  Node* producer() const { return producer_; }
  bool is_param() const { return producer_ == nullptr; }
  // Result index within its node, or parameter index.
  int index() const { return index_; }
  // The parameter's name (values computed by nodes are unnamed; the printer numbers them).
  const std::string& name() const { return name_; }

 private:
  TensorType type_;
  Node* producer_;
  int index_;
  std::string name_;
};

class Node {
 public:
  Node(Op op, std::vector<Value*> inputs, Attrs attrs, std::string scope, SourceLoc loc);
  Op op() const { return op_; }
  std::span<Value* const> inputs() const { return inputs_; }
  Value* input(size_t i) const { return inputs_.at(i); }
  void set_input(size_t i, Value* v) { inputs_.at(i) = v; }
  size_t num_outputs() const { return outputs_.size(); }
  Value* output(size_t i = 0) const { return outputs_.at(i).get(); }
  std::vector<TensorType> output_types() const;
  std::vector<TensorType> input_types() const;
  const Attrs& attrs() const { return attrs_; }
  Attrs& mutable_attrs() { return attrs_; }
  // Name scope, e.g. "dense_1/matmul"; may be empty.
  const std::string& scope() const { return scope_; }
  const SourceLoc& loc() const { return loc_; }

 private:
  friend class Function;
  Op op_;
  std::vector<Value*> inputs_;
  std::vector<std::unique_ptr<Value>> outputs_;
  Attrs attrs_;
  std::string scope_;
  SourceLoc loc_;
};

class Function {
 public:
  explicit Function(std::string name = "main") : name_(std::move(name)) {}
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;
  Function(Function&&) = default;
  Function& operator=(Function&&) = default;

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  // A deep copy (same name, params, nodes with their scopes and locations, outputs, updates):
  // Functions are move-only, so passes that consume one are given a clone.
  Function clone() const;

  // Adds a parameter; an empty name gets "argN".
  Value* add_param(TensorType type, std::string name = "");
  // Appends a node whose result types are inferred from the op's rule. Throws the rule's
  // kiln::Error (with operands, scope and location added) if the op does not apply.
  Node* append(Op op, std::vector<Value*> inputs, Attrs attrs = {}, std::string scope = "",
               SourceLoc loc = {});
  // Appends a node with the given result types, unchecked (the parser and passes use this;
  // the verifier checks it later).
  Node* append_unchecked(Op op, std::vector<Value*> inputs, Attrs attrs,
                         std::vector<TensorType> output_types, std::string scope = "",
                         SourceLoc loc = {});

  void set_outputs(std::vector<Value*> outputs) { outputs_ = std::move(outputs); }
  // Declares that after a call, parameter `param` takes the value `value`.
  void add_update(Value* param, Value* value) { updates_.push_back({param, value}); }

  std::span<const std::unique_ptr<Value>> params() const { return params_; }
  Value* param(size_t i) const { return params_.at(i).get(); }
  std::span<const std::unique_ptr<Node>> nodes() const { return nodes_; }
  // Mutable node list for passes (keep it topologically ordered).
  std::vector<std::unique_ptr<Node>>& mutable_nodes() { return nodes_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  struct Update {
    Value* param;
    Value* value;
  };
  const std::vector<Update>& updates() const { return updates_; }
  // Mutable update list for passes (e.g. to redirect an update to an equivalent value).
  std::vector<Update>& mutable_updates() { return updates_; }

 private:
  std::string name_;
  std::vector<std::unique_ptr<Value>> params_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Value*> outputs_;
  std::vector<Update> updates_;
};

}  // namespace kiln::ir
