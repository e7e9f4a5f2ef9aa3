#include "kiln/frontend/core/variable.h"

#include <fmt/format.h>

#include <ostream>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"

namespace kiln {

struct Variable::Impl {
  ir::HostTensor value;
  std::string name;
  bool trainable;
};

Variable::Variable(const Tensor& initial_value, std::string name, bool trainable,
                   std::source_location loc) {
  if (!initial_value.defined()) {
    detail::raise<ValueError>(fmt::format("Variable '{}'", name), {},
                              "the initial value is an undefined Tensor", loc);
  }
  if (initial_value.is_symbolic() || detail::current_trace() != nullptr) {
    // A variable made during a trace would be made again on every retrace, and its initial
    // value only exists when the compiled function runs.
    detail::raise<ValueError>(fmt::format("Variable '{}'", name), {},
                              "cannot create a Variable while tracing a kiln::function; create "
                              "it outside the function and use it there (captured or passed as "
                              "an argument)",
                              loc);
  }
  if (!initial_value.device().is_cpu()) {
    detail::raise<DeviceError>(
        fmt::format("Variable '{}'", name), {initial_value},
        fmt::format("a Variable cannot hold a tensor on {} yet (issue 14 in progress); copy it "
                    "with .to(k::Device::cpu())",
                    initial_value.device().to_string()),
        loc);
  }
  impl_ = std::make_shared<Impl>(Impl{initial_value.host(), std::move(name), trainable});
}

const Variable::Impl& Variable::impl() const {
  if (!impl_) throw ValueError("use of an undefined Variable");
  return *impl_;
}

Variable::Impl& Variable::impl() {
  if (!impl_) throw ValueError("use of an undefined Variable");
  return *impl_;
}

Tensor Variable::value() const {
  const Impl& self = impl();
  Tensor read = detail::current_trace() != nullptr ? detail::current_trace()->read_variable(*this)
                                                   : Tensor(self.value);
  if (detail::tapes_recording()) detail::record_variable_read(*this, read);
  return read;
}

const TensorType& Variable::type() const {
  return impl().value.type();
}

const std::string& Variable::name() const {
  return impl().name;
}

bool Variable::trainable() const {
  return impl().trainable;
}

void Variable::check_update(const char* what, const Tensor& t,
                            const std::source_location& loc) const {
  const Impl& self = impl();
  if (!t.defined()) {
    detail::raise<ValueError>(
        what, {value()}, fmt::format("the value for Variable '{}' is undefined", self.name), loc);
  }
  const TensorType& want = self.value.type();
  if (t.dtype() != want.dtype) {
    detail::raise<TypeError>(
        what, {value(), t},
        fmt::format("Variable '{}' has dtype {}, but the value has dtype {} (use cast)", self.name,
                    ir::dtype_long_name(want.dtype), ir::dtype_long_name(t.dtype())),
        loc);
  }
  if (t.shape() != want.shape) {
    detail::raise<ShapeError>(what, {value(), t},
                              fmt::format("Variable '{}' has shape {}, but the value has shape {}",
                                          self.name, want.shape.to_string(), t.shape().to_string()),
                              loc);
  }
}

void Variable::store(const Tensor& t, const std::source_location& loc) {
  if (detail::Trace* trace = detail::current_trace()) {
    trace->assign_variable(*this, t, loc);
    return;
  }
  if (t.is_symbolic()) {
    detail::raise<ValueError>("assign", {t},
                              fmt::format("Variable '{}' cannot take a symbolic tensor outside "
                                          "the trace that made it",
                                          impl().name),
                              loc);
  }
  if (!t.device().is_cpu()) {
    detail::raise<DeviceError>(
        "assign", {t},
        fmt::format("Variable '{}' cannot hold a tensor on {} yet (issue 14 in progress); copy it "
                    "with .to(k::Device::cpu())",
                    impl().name, t.device().to_string()),
        loc);
  }
  // Tensors are immutable, so sharing the caller's buffer cannot surprise anyone.
  impl().value = t.host();
}

Variable& Variable::assign(const Tensor& t, std::source_location loc) {
  check_update("assign", t, loc);
  store(t, loc);
  return *this;
}

Variable& Variable::assign_add(const Tensor& delta, std::source_location loc) {
  check_update("assign_add", delta, loc);
  // A new buffer (or, traced, a new value): tensors read earlier keep their values.
  store(detail::apply1(ir::Op::add, {value(), delta}, {}, loc), loc);
  return *this;
}

Variable& Variable::assign_sub(const Tensor& delta, std::source_location loc) {
  check_update("assign_sub", delta, loc);
  store(detail::apply1(ir::Op::sub, {value(), delta}, {}, loc), loc);
  return *this;
}

std::string Variable::to_string() const {
  if (!impl_) return "<kiln.Variable (undefined)>";
  const ir::HostTensor& v = impl_->value;
  // As TensorFlow: arrays start on their own line, scalars follow "numpy=" directly.
  return fmt::format("<kiln.Variable '{}' shape={} dtype={}, numpy={}{}>", impl_->name,
                     v.shape().to_string(), ir::dtype_long_name(v.dtype()),
                     v.shape().rank() > 0 ? "\n" : "", format_values(v));
}

std::ostream& operator<<(std::ostream& os, const Variable& v) {
  return os << v.to_string();
}

namespace detail {

const ir::HostTensor& VariableAccess::host(const Variable& v) {
  return v.impl().value;
}

void VariableAccess::set_host(Variable& v, ir::HostTensor value) {
  v.impl().value = std::move(value);
}

Variable VariableAccess::create(ir::HostTensor initial_value, std::string name, bool trainable) {
  Variable v;
  v.impl_ = std::make_shared<Variable::Impl>(
      Variable::Impl{std::move(initial_value), std::move(name), trainable});
  return v;
}

}  // namespace detail

}  // namespace kiln
