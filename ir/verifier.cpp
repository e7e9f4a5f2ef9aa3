#include "kiln/ir/verifier.h"

#include <fmt/format.h>

#include <unordered_set>

#include "kiln/ir/infer.h"
#include "kiln/ir/printer.h"

namespace kiln::ir {

namespace {

class Verifier {
 public:
  explicit Verifier(const Function& function) : function_(function) {
    for (const auto& param : function.params())
      params_.insert(param.get());
    defined_ = params_;
  }

  void run() {
    const auto& nodes = function_.nodes();
    for (size_t i = 0; i < nodes.size(); ++i)
      check_node(i, *nodes[i]);
    check_outputs();
    check_updates();
  }

 private:
  [[noreturn]] void fail_node(size_t index, const Node& node, std::string_view what) const {
    VerifyError error(fmt::format("invalid IR in @{}: node {} `{}`: {}", function_.name(), index,
                                  print_node(function_, node), what));
    add_location(error, node.scope(), node.loc());
    throw error;
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw VerifyError(fmt::format("invalid IR in @{}: {}", function_.name(), what));
  }

  void check_node(size_t index, const Node& node) {
    for (size_t k = 0; k < node.inputs().size(); ++k) {
      const Value* v = node.inputs()[k];
      if (v == nullptr) fail_node(index, node, fmt::format("operand {} is null", k));
      if (defined_.count(v) == 0) {
        fail_node(index, node,
                  fmt::format("operand {} is not defined before use (neither a parameter of this "
                              "function nor the result of an earlier node)",
                              k));
      }
    }
    std::vector<TensorType> inferred;
    try {
      inferred = infer_types(node.op(), node.input_types(), node.attrs());
    } catch (InternalError&) {
      throw;
    } catch (Error& e) {
      fail_node(index, node, fmt::format("the op's rule rejects it: {}", e.message()));
    }
    // Function attributes (scan bodies) are functions of their own: verify them too.
    for (const auto& [name, value] : node.attrs().items()) {
      const auto* body = std::get_if<FunctionAttr>(&value);
      if (body == nullptr) continue;
      try {
        verify(body->function());
      } catch (VerifyError& e) {
        fail_node(index, node, fmt::format("in the {} of node {}: {}", name, index, e.message()));
      }
    }
    std::vector<TensorType> types = node.output_types();
    if (inferred != types) {
      fail_node(index, node,
                fmt::format("result types are ({}) but the op's rule infers ({})",
                            types_to_string(types), types_to_string(inferred)));
    }
    for (size_t k = 0; k < node.num_outputs(); ++k) {
      const Value* out = node.output(k);
      if (out->producer() != &node || out->index() != static_cast<int>(k)) {
        fail_node(index, node, fmt::format("result {} does not point back at its node", k));
      }
      defined_.insert(out);
    }
  }

  void check_outputs() const {
    const auto& outputs = function_.outputs();
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i] == nullptr) fail(fmt::format("output {} is null", i));
      if (defined_.count(outputs[i]) == 0) {
        fail(fmt::format("output {} ({}) is not a value of this function", i,
                         print_value(function_, outputs[i])));
      }
    }
  }

  void check_updates() const {
    std::unordered_set<const Value*> updated;
    const auto& updates = function_.updates();
    for (size_t i = 0; i < updates.size(); ++i) {
      const Function::Update& u = updates[i];
      if (u.param == nullptr || u.value == nullptr) fail(fmt::format("update {} is null", i));
      std::string line = update_text(u);
      if (params_.count(u.param) == 0) {
        fail(fmt::format("`{}`: the update target is not a parameter of this function", line));
      }
      if (defined_.count(u.value) == 0) {
        fail(fmt::format("`{}`: the new value is not a value of this function", line));
      }
      if (u.param->type() != u.value->type()) {
        fail(fmt::format("`{}`: parameter of type {} updated with a value of type {}", line,
                         u.param->type().to_string(), u.value->type().to_string()));
      }
      if (!updated.insert(u.param).second) {
        fail(fmt::format("`{}`: the parameter is updated more than once", line));
      }
    }
  }

  std::string update_text(const Function::Update& u) const {
    return fmt::format("update {} = {}", print_value(function_, u.param),
                       print_value(function_, u.value));
  }

  const Function& function_;
  std::unordered_set<const Value*> params_;
  std::unordered_set<const Value*> defined_;
};

}  // namespace

void verify(const Function& function) {
  Verifier(function).run();
}

}  // namespace kiln::ir
