// The functional API: KerasTensor, k::Input, calling layers on symbolic tensors, the graph a
// functional Model runs, and the merge layers.
#include "kiln/frontend/keras/functional.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"

namespace kiln {

namespace {

// The stand-in sizes of unknown dimensions in the two traces that work out a layer's output
// shape: different, so a dimension that follows an unknown one differs between the traces.
constexpr int64_t kFirstStandIn = detail::kNoneStandIn, kSecondStandIn = kFirstStandIn + 3;

}  // namespace

namespace detail {

std::string shape_text(const Shape& shape) {
  std::vector<std::string> dims;
  for (int64_t d : shape)
    dims.push_back(d == kiln::None ? "None" : std::to_string(d));
  return fmt::format("({}{})", fmt::join(dims, ", "), dims.size() == 1 ? "," : "");
}

std::vector<TensorType> symbolic_types(
    const std::vector<TensorType>& types,
    const std::function<std::vector<TensorType>(const std::vector<Tensor>&)>& fn,
    const std::string& name) {
  std::vector<TensorType> runs[2];
  const int64_t stand_ins[2] = {kFirstStandIn, kSecondStandIn};
  for (int r = 0; r < 2; ++r) {
    detail::Trace trace(name + "_symbolic", {});
    detail::TraceScope scope(trace);
    std::vector<Tensor> xs;
    for (const TensorType& t : types)
      xs.push_back(trace.add_argument(concrete_type(t, stand_ins[r])));
    runs[r] = fn(xs);
  }
  std::vector<TensorType> out = runs[0];
  for (size_t i = 0; i < out.size() && i < runs[1].size(); ++i)
    for (int64_t d = 0; d < out[i].shape.rank() && d < runs[1][i].shape.rank(); ++d)
      if (out[i].shape[d] != runs[1][i].shape[d]) out[i].shape[d] = kiln::None;
  return out;
}

// What the functional API reads and writes of a layer's shared state.
struct LayerAccess {
  // The same for every handle of one layer.
  static const void* identity(const layers::Layer& layer) { return layer.state_.get(); }
  static void record_input(layers::Layer& layer, const std::shared_ptr<KerasNode>& node) {
    layer.state_->nodes.push_back(node);
    layer.state_->built = true;
  }
};

TensorType concrete_type(const TensorType& type, int64_t stand_in) {
  TensorType out = type;
  for (int64_t d = 0; d < out.shape.rank(); ++d)
    if (out.shape[d] == kiln::None) out.shape[d] = stand_in;
  return out;
}

}  // namespace detail

const Shape& KerasTensor::shape() const {
  static const Shape empty;
  return node_ ? node_->outputs[index_].shape : empty;
}

DType KerasTensor::dtype() const {
  return node_ ? node_->outputs[index_].dtype : f32;
}

std::string KerasTensor::name() const {
  if (!node_) return "";
  return fmt::format("{}[{}][{}]", node_->layer->name(), node_->call_index, index_);
}

const std::shared_ptr<layers::Layer>& KerasTensor::layer() const {
  static const std::shared_ptr<layers::Layer> none;
  return node_ ? node_->layer : none;
}

KerasTensor Input(const layers::InputShape& shape, DType dtype, std::string name,
                  std::source_location loc) {
  if (!shape.shape) {
    detail::raise<ValueError>("Input", {}, "give the shape of one sample (no batch dimension)",
                              loc);
  }
  for (int64_t d : *shape.shape) {
    if (d < 0 && d != kiln::None) {
      detail::raise<ValueError>("Input", {},
                                fmt::format("shape {} has a negative size; write k::None for a "
                                            "dimension of any size",
                                            shape.shape->to_string()),
                                loc);
    }
  }
  auto layer = std::make_shared<layers::InputLayer>(*shape.shape, dtype, std::move(name));
  auto node = std::make_shared<detail::KerasNode>();
  node->layer = layer;
  std::vector<int64_t> dims{kiln::None};
  dims.insert(dims.end(), shape.shape->begin(), shape.shape->end());
  node->outputs = {TensorType{dtype, Shape(dims)}};
  detail::LayerAccess::record_input(*layer, node);
  return KerasTensor(node, 0);
}

namespace layers {

KerasTensor Layer::operator()(const KerasTensor& x, std::source_location loc) {
  return (*this)(std::vector<KerasTensor>{x}, loc);
}

KerasTensor Layer::operator()(const std::vector<KerasTensor>& xs, std::source_location loc) {
  std::vector<KerasTensor> all = apply(xs, loc);
  if (all.size() != 1) {
    detail::raise<ValueError>(
        name(), {}, fmt::format("the layer has {} outputs: get them all with apply()", all.size()),
        loc);
  }
  return all[0];
}

std::vector<KerasTensor> Layer::apply(const std::vector<KerasTensor>& xs,
                                      std::source_location loc) {
  detail::UserSite site(loc);
  if (xs.empty()) detail::raise<ValueError>(name(), {}, "the list of inputs is empty", loc);
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!xs[i].defined()) {
      detail::raise<ValueError>(
          name(), {}, fmt::format("input {} is an empty KerasTensor; make inputs with k::Input", i),
          loc);
    }
  }
  if (!clone()) {
    detail::raise<ValueError>(
        name(), {},
        fmt::format("layer class {} cannot be called on a KerasTensor: declare it with "
                    "KILN_LAYER_CLASS({}) in its public section, so a functional model can "
                    "keep it",
                    class_name(), class_name()),
        loc);
  }
  std::vector<TensorType> in_types;
  for (const KerasTensor& t : xs)
    in_types.push_back({t.dtype(), t.shape()});
  // Built through this handle, then cloned: members a layer's build() sets (not only its
  // shared weights) are in the clone too.
  std::vector<TensorType> outputs = detail::symbolic_types(
      in_types,
      [&](const std::vector<Tensor>& args) -> std::vector<TensorType> {
        std::vector<TensorType> types;
        for (const Tensor& y : this->outputs(args, false, loc))
          types.push_back(y.type());
        return types;
      },
      name());
  auto node = std::make_shared<detail::KerasNode>();
  node->layer = clone();
  node->inputs = xs;
  node->outputs = outputs;
  node->call_index = static_cast<int64_t>(state_->nodes.size());
  state_->nodes.push_back(node);
  std::vector<KerasTensor> out;
  for (size_t i = 0; i < node->outputs.size(); ++i)
    out.push_back(KerasTensor(node, i));
  return out;
}

int64_t Layer::symbolic_calls() const {
  return static_cast<int64_t>(state_->nodes.size());
}

namespace {
std::shared_ptr<detail::KerasNode> only_node(
    const Layer& layer, size_t calls, const std::vector<std::weak_ptr<detail::KerasNode>>& nodes,
    const char* what, const std::source_location& loc) {
  if (calls != 1) {
    detail::raise<ValueError>(
        layer.name(), {},
        calls == 0 ? fmt::format("the layer has never been called on a KerasTensor, so it has "
                                 "no {}",
                                 what)
                   : fmt::format("the layer was called on KerasTensors {} times, so its {} is "
                                 "ambiguous: use the KerasTensors its calls returned",
                                 calls, what),
        loc);
  }
  std::shared_ptr<detail::KerasNode> node = nodes[0].lock();
  if (!node) {
    detail::raise<ValueError>(layer.name(), {},
                              fmt::format("the graph the layer's {} belonged to is gone (no "
                                          "model or KerasTensor holds it any more)",
                                          what),
                              loc);
  }
  return node;
}
}  // namespace

KerasTensor Layer::input(std::source_location loc) const {
  std::shared_ptr<detail::KerasNode> node =
      only_node(*this, state_->nodes.size(), state_->nodes, "input", loc);
  if (node->inputs.empty()) return KerasTensor(node, 0);  // an InputLayer is its own input
  if (node->inputs.size() != 1) {
    detail::raise<ValueError>(name(), {},
                              fmt::format("the layer has {} inputs; read them from the "
                                          "KerasTensors it was called on",
                                          node->inputs.size()),
                              loc);
  }
  return node->inputs[0];
}

KerasTensor Layer::output(std::source_location loc) const {
  return KerasTensor(only_node(*this, state_->nodes.size(), state_->nodes, "output", loc), 0);
}

InputLayer::InputLayer(Shape sample_shape, DType dtype, std::string name)
    : Layer("input_layer", std::move(name), std::nullopt),
      sample_shape_(std::move(sample_shape)),
      dtype_(dtype) {}

Tensor InputLayer::call(const Tensor& x, bool) {
  return x;
}

Merge::Merge(const std::string& kind, std::string name)
    : Layer(kind, std::move(name), std::nullopt) {}

Tensor Merge::call(const Tensor& x, bool) {
  detail::raise<ValueError>(class_name(), {x},
                            "the layer merges a list of inputs: call it on {a, b, ...}",
                            std::source_location::current());
}

Tensor Merge::call_list(const std::vector<Tensor>& xs, bool) {
  const std::source_location here = std::source_location::current();
  if (xs.size() < min_inputs() || xs.size() > max_inputs()) {
    detail::raise<ValueError>(
        class_name(), xs,
        max_inputs() == min_inputs()
            ? fmt::format("the layer takes exactly {} inputs, got {}", min_inputs(), xs.size())
            : fmt::format("the layer takes at least {} inputs, got {}", min_inputs(), xs.size()),
        here);
  }
  for (size_t i = 1; i < xs.size(); ++i) {
    if (xs[i].dtype() != xs[0].dtype()) {
      detail::raise<TypeError>(class_name(), xs,
                               fmt::format("input {} is {} but input 0 is {}", i,
                                           xs[i].type().to_string(), xs[0].type().to_string()),
                               here);
    }
  }
  return merge(xs);
}

namespace {
Tensor fold(const std::vector<Tensor>& xs, Tensor (*combine)(const Tensor&, const Tensor&)) {
  Tensor acc = xs[0];
  for (size_t i = 1; i < xs.size(); ++i)
    acc = combine(acc, xs[i]);
  return acc;
}
}  // namespace

Concatenate::Concatenate(int64_t axis, std::string name)
    : Merge("concatenate", std::move(name)), axis_(axis) {}

Tensor Concatenate::merge(const std::vector<Tensor>& xs) {
  for (size_t i = 1; i < xs.size(); ++i) {
    if (xs[i].rank() != xs[0].rank()) {
      detail::raise<ShapeError>(class_name(), xs,
                                fmt::format("input {} has rank {} but input 0 has rank {}", i,
                                            xs[i].rank(), xs[0].rank()),
                                std::source_location::current());
    }
  }
  return concat(xs, axis_);
}

Add::Add(std::string name) : Merge("add", std::move(name)) {}
Tensor Add::merge(const std::vector<Tensor>& xs) {
  return fold(xs, [](const Tensor& a, const Tensor& b) { return a + b; });
}

Subtract::Subtract(std::string name) : Merge("subtract", std::move(name)) {}
Tensor Subtract::merge(const std::vector<Tensor>& xs) {
  return xs[0] - xs[1];
}

Multiply::Multiply(std::string name) : Merge("multiply", std::move(name)) {}
Tensor Multiply::merge(const std::vector<Tensor>& xs) {
  return fold(xs, [](const Tensor& a, const Tensor& b) { return a * b; });
}

Average::Average(std::string name) : Merge("average", std::move(name)) {}
Tensor Average::merge(const std::vector<Tensor>& xs) {
  return fold(xs, [](const Tensor& a, const Tensor& b) { return a + b; }) *
         (1.0 / static_cast<double>(xs.size()));
}

Maximum::Maximum(std::string name) : Merge("maximum", std::move(name)) {}
Tensor Maximum::merge(const std::vector<Tensor>& xs) {
  return fold(xs, [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
}

Minimum::Minimum(std::string name) : Merge("minimum", std::move(name)) {}
Tensor Minimum::merge(const std::vector<Tensor>& xs) {
  return fold(xs, [](const Tensor& a, const Tensor& b) { return minimum(a, b); });
}

}  // namespace layers

namespace detail {

FunctionalGraph::FunctionalGraph(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs,
                                 const std::string& model, const std::source_location& loc)
    : inputs_(std::move(inputs)), outputs_(std::move(outputs)) {
  if (inputs_.empty() || outputs_.empty()) {
    detail::raise<ValueError>(model, {}, "a functional model needs inputs and outputs", loc);
  }
  std::set<const KerasNode*> input_nodes;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const KerasTensor& t = inputs_[i];
    if (!t.defined() || !t.node()->inputs.empty() ||
        !std::dynamic_pointer_cast<layers::InputLayer>(t.layer())) {
      detail::raise<ValueError>(
          model, {},
          fmt::format("input {} {}: a model's inputs must be made by k::Input", i,
                      t.defined() ? "is the output of layer '" + t.layer()->name() + "'"
                                  : "is an empty KerasTensor"),
          loc);
    }
    if (!input_nodes.insert(t.node().get()).second) {
      detail::raise<ValueError>(model, {},
                                fmt::format("input '{}' is given twice", t.layer()->name()), loc);
    }
  }
  // Depth-first from the outputs: post-order is a running order.
  std::set<const KerasNode*> done, in_progress;
  std::function<void(const std::shared_ptr<KerasNode>&)> visit =
      [&](const std::shared_ptr<KerasNode>& node) {
        if (done.count(node.get())) return;
        if (node->inputs.empty() && !input_nodes.count(node.get())) {
          detail::raise<ValueError>(
              model, {},
              fmt::format("the outputs depend on the input '{}', which is not among the model's "
                          "inputs ({})",
                          node->layer->name(),
                          [&] {
                            std::vector<std::string> names;
                            for (const KerasTensor& t : inputs_)
                              names.push_back(t.layer()->name());
                            return fmt::format("{}", fmt::join(names, ", "));
                          }()),
              loc);
        }
        in_progress.insert(node.get());
        for (const KerasTensor& t : node->inputs)
          visit(t.node());
        in_progress.erase(node.get());
        done.insert(node.get());
        nodes_.push_back(node);
      };
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (!outputs_[i].defined()) {
      detail::raise<ValueError>(model, {}, fmt::format("output {} is an empty KerasTensor", i),
                                loc);
    }
    visit(outputs_[i].node());
  }
  // Inputs no output depends on still run (Keras keeps them, at depth 0).
  for (const KerasTensor& t : inputs_) {
    if (!done.count(t.node().get())) {
      done.insert(t.node().get());
      nodes_.insert(nodes_.begin(), t.node());
    }
  }
  // Layer names must be unique in a model: weights are saved under them.
  std::map<std::string, const layers::Layer*> names;
  for (const auto& node : nodes_) {
    auto [it, fresh] = names.emplace(node->layer->name(), node->layer.get());
    (void)fresh;
    // Handles of one layer share their name's storage.
    if (&it->second->name() != &node->layer->name()) {
      detail::raise<ValueError>(
          model, {},
          fmt::format("two different layers are named '{}'; layer names must be unique within "
                      "a model (their weights are saved under them): give one another name",
                      node->layer->name()),
          loc);
    }
  }
}

std::vector<std::shared_ptr<layers::Layer>> FunctionalGraph::layers() const {
  // Keras's order (keras/src/ops/function.py, map_graph): number the layers in depth-first
  // pre-order from the outputs; a node's depth is the longest path from it to an output, a
  // layer's the largest of its nodes'; layers by depth, deepest first, ties by number.
  std::map<const void*, int64_t> number;  // by the shared state: one per layer
  std::vector<std::shared_ptr<layers::Layer>> by_number;
  std::set<const KerasNode*> seen;
  std::vector<const KerasNode*> post_order;
  std::function<void(const KerasNode*)> visit = [&](const KerasNode* node) {
    if (seen.count(node)) return;
    const void* state = detail::LayerAccess::identity(*node->layer);
    if (!number.count(state)) {
      number[state] = static_cast<int64_t>(by_number.size());
      by_number.push_back(node->layer);
    }
    seen.insert(node);
    for (const KerasTensor& t : node->inputs)
      visit(t.node().get());
    post_order.push_back(node);
  };
  for (const KerasTensor& t : outputs_)
    visit(t.node().get());
  std::map<const KerasNode*, int64_t> node_depth;
  std::map<const void*, int64_t> layer_depth;
  for (auto it = post_order.rbegin(); it != post_order.rend(); ++it) {
    const KerasNode* node = *it;
    const void* state = detail::LayerAccess::identity(*node->layer);
    int64_t depth = std::max(node_depth[node], layer_depth[state]);
    layer_depth[state] = depth;
    node_depth[node] = depth;
    for (const KerasTensor& t : node->inputs) {
      int64_t& parent = node_depth[t.node().get()];
      parent = std::max(parent, depth + 1);
    }
  }
  // Inputs no output depends on: depth 0, before every other layer of that depth.
  std::vector<std::shared_ptr<layers::Layer>> unconnected;
  for (const KerasTensor& t : inputs_) {
    const void* state = detail::LayerAccess::identity(*t.layer());
    if (number.count(state)) continue;
    number[state] = -1 - static_cast<int64_t>(unconnected.size());
    layer_depth[state] = 0;
    unconnected.push_back(t.layer());
  }
  std::vector<std::shared_ptr<layers::Layer>> out = unconnected;
  out.insert(out.end(), by_number.begin(), by_number.end());
  std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) {
    int64_t da = layer_depth[detail::LayerAccess::identity(*a)],
            db = layer_depth[detail::LayerAccess::identity(*b)];
    if (da != db) return da > db;
    return number[detail::LayerAccess::identity(*a)] < number[detail::LayerAccess::identity(*b)];
  });
  return out;
}

std::vector<Tensor> FunctionalGraph::run(const std::vector<Tensor>& xs, bool training,
                                         const std::string& model,
                                         const std::source_location& loc) const {
  if (xs.size() != inputs_.size()) {
    detail::raise<ValueError>(model, xs,
                              fmt::format("the model takes {} input{}, got {}", inputs_.size(),
                                          inputs_.size() == 1 ? "" : "s", xs.size()),
                              loc);
  }
  std::map<const KerasNode*, std::vector<Tensor>> values;
  for (size_t i = 0; i < xs.size(); ++i)
    values[inputs_[i].node().get()] = {xs[i]};
  for (const auto& node : nodes_) {
    if (values.count(node.get())) continue;
    std::vector<Tensor> args;
    for (const KerasTensor& t : node->inputs)
      args.push_back(values.at(t.node().get()).at(t.output_index()));
    values[node.get()] = node->layer->outputs(args, training, loc);
  }
  std::vector<Tensor> out;
  for (const KerasTensor& t : outputs_)
    out.push_back(values.at(t.node().get()).at(t.output_index()));
  return out;
}

}  // namespace detail
}  // namespace kiln
