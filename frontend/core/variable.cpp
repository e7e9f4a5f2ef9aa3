#include "kiln/frontend/core/variable.h"

#include <fmt/format.h>

#include <ostream>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/runtime/cuda/device.h"

namespace kiln {

namespace {

namespace cu = runtime::cuda;

// A copy of `t`, a tensor on a GPU, in new memory of the same device.
Tensor copy_on_device(const Tensor& t, std::string_view op, const std::source_location& loc) {
  const std::shared_ptr<cu::DeviceBuffer>& source = detail::TensorAccess::device_buffer(t);
  KILN_CHECK(source != nullptr, "copy_on_device of a tensor that is not on a GPU");
  const size_t bytes = t.type().nbytes();
  try {
    auto buffer = std::make_shared<cu::DeviceBuffer>(source->context(), bytes);
    if (bytes != 0) buffer->copy_from(*source, bytes);
    return detail::TensorAccess::on_device(t.type(), t.device(), std::move(buffer));
  } catch (const std::runtime_error&) {
    detail::rethrow_device_failure(t.device(), op, {&t, 1}, loc);
  }
}

// `t` (concrete) as a variable's own value on `device`: a host tensor shares its storage (tensors
// are immutable, so nobody can be surprised); device memory is copied unless `fresh` says nothing
// else holds it, so that a variable's memory is never a user's tensor's.
Tensor own_value(const Tensor& t, const Device& device, bool fresh, std::string_view op,
                 const std::source_location& loc) {
  if (device.is_cpu()) return Tensor(t.host());
  if (!t.device().is_cuda()) return detail::copy_to_device(t.host(), device, op, {t}, loc);
  if (fresh) {
    return detail::TensorAccess::on_device(t.type(), t.device(),
                                           detail::TensorAccess::device_buffer(t));
  }
  return copy_on_device(t, op, loc);
}

}  // namespace

struct Variable::Impl {
  // Concrete, on the variable's device; a handle no one outside the variable holds.
  Tensor value;
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
  Tensor value = own_value(initial_value, initial_value.device(), false,
                           fmt::format("Variable '{}'", name), loc);
  impl_ = std::make_shared<Impl>(Impl{std::move(value), std::move(name), trainable});
}

const Variable::Impl& Variable::impl() const {
  if (!impl_) throw ValueError("use of an undefined Variable");
  return *impl_;
}

Variable::Impl& Variable::impl() {
  if (!impl_) throw ValueError("use of an undefined Variable");
  return *impl_;
}

namespace {

// A new handle to a variable's value (so that each read is its own tensor to the tapes), sharing
// its memory.
Tensor read_handle(const Tensor& value) {
  if (const ir::HostTensor* host = detail::TensorAccess::host_value(value)) return Tensor(*host);
  return detail::TensorAccess::on_device(value.type(), value.device(),
                                         detail::TensorAccess::device_buffer(value));
}

}  // namespace

Tensor Variable::value() const {
  const Impl& self = impl();
  Tensor read = detail::current_trace() != nullptr ? detail::current_trace()->read_variable(*this)
                                                   : read_handle(self.value);
  if (detail::tapes_recording()) detail::record_variable_read(*this, read);
  return read;
}

const TensorType& Variable::type() const {
  return impl().value.type();
}

Device Variable::device() const {
  return impl().value.device();
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
  // Symbolic values belong to a trace, which has no devices yet (and store() rejects them
  // outside one). A 0-d cpu value goes along to any device, as an op's scalar operand does.
  const Device here = self.value.device();
  const Device there = t.device();
  if (!t.is_symbolic() && there != here && !(there.is_cpu() && t.rank() == 0)) {
    detail::raise<DeviceError>(
        what, {value(), t},
        fmt::format("Variable '{}' lives on {}, but the value is on {}; a variable keeps its "
                    "device for life: move the value with .to(k::Device::{})",
                    self.name, here.to_string(), there.to_string(),
                    here.is_cpu() ? std::string("cpu()") : fmt::format("cuda({})", here.index())),
        loc);
  }
}

void Variable::store(const char* what, const Tensor& t, bool fresh,
                     const std::source_location& loc) {
  if (detail::Trace* trace = detail::current_trace()) {
    trace->assign_variable(*this, t, loc);
    return;
  }
  if (t.is_symbolic()) {
    detail::raise<ValueError>(what, {t},
                              fmt::format("Variable '{}' cannot take a symbolic tensor outside "
                                          "the trace that made it",
                                          impl().name),
                              loc);
  }
  Impl& self = impl();
  self.value = own_value(t, self.value.device(), fresh, what, loc);
}

Variable& Variable::assign(const Tensor& t, std::source_location loc) {
  check_update("assign", t, loc);
  store("assign", t, false, loc);
  return *this;
}

Variable& Variable::assign_add(const Tensor& delta, std::source_location loc) {
  check_update("assign_add", delta, loc);
  // A new buffer (or, traced, a new value): tensors read earlier keep their values.
  store("assign_add", detail::apply1(ir::Op::add, {value(), delta}, {}, loc), true, loc);
  return *this;
}

Variable& Variable::assign_sub(const Tensor& delta, std::source_location loc) {
  check_update("assign_sub", delta, loc);
  store("assign_sub", detail::apply1(ir::Op::sub, {value(), delta}, {}, loc), true, loc);
  return *this;
}

std::string Variable::to_string() const {
  if (!impl_) return "<kiln.Variable (undefined)>";
  const Device where = impl_->value.device();
  const ir::HostTensor v = detail::VariableAccess::host_copy(*this, "print");
  // As TensorFlow: arrays start on their own line, scalars follow "numpy=" directly.
  return fmt::format("<kiln.Variable '{}' shape={} dtype={}{}, numpy={}{}>", impl_->name,
                     v.shape().to_string(), ir::dtype_long_name(v.dtype()),
                     where.is_cpu() ? std::string() : ", device=" + where.to_string(),
                     v.shape().rank() > 0 ? "\n" : "", format_values(v));
}

std::ostream& operator<<(std::ostream& os, const Variable& v) {
  return os << v.to_string();
}

namespace detail {

const Tensor& VariableAccess::tensor(const Variable& v) {
  return v.impl().value;
}

void VariableAccess::set_tensor(Variable& v, Tensor value) {
  Variable::Impl& self = v.impl();
  KILN_CHECK(value.defined() && !value.is_symbolic(),
             "set_tensor with a value that is not concrete");
  KILN_CHECK(value.type() == self.value.type(), "set_tensor with a value of another type");
  KILN_CHECK(value.device() == self.value.device(), "set_tensor with a value on another device");
  // A handle of the variable's own, so that nothing outside shares it (weak-scalar marks too).
  self.value =
      own_value(value, self.value.device(), true, "set_tensor", std::source_location::current());
}

const ir::HostTensor& VariableAccess::host(const Variable& v) {
  const Variable::Impl& self = v.impl();
  if (const ir::HostTensor* host = TensorAccess::host_value(self.value)) return *host;
  // The only caller that reaches here is a compiled kiln::function, which runs on the CPU.
  throw DeviceError(fmt::format(
      "Variable '{}' lives on {}, but this needs its value on the cpu: a compiled kiln::function "
      "cannot use a variable on a GPU yet",
      self.name, self.value.device().to_string()));
}

ir::HostTensor VariableAccess::host_copy(const Variable& v, std::string_view op,
                                         std::source_location loc) {
  const Variable::Impl& self = v.impl();
  if (const ir::HostTensor* host = TensorAccess::host_value(self.value)) return *host;
  return copy_to_host(self.value, op, loc);
}

void VariableAccess::set_host(Variable& v, ir::HostTensor value, std::source_location loc) {
  Variable::Impl& self = v.impl();
  const Device device = self.value.device();
  self.value =
      device.is_cpu() ? Tensor(std::move(value)) : copy_to_device(value, device, "assign", {}, loc);
}

Variable VariableAccess::create(ir::HostTensor initial_value, std::string name, bool trainable,
                                Device device, std::source_location loc) {
  Tensor value = device.is_cpu() ? Tensor(std::move(initial_value))
                                 : copy_to_device(initial_value, device,
                                                  fmt::format("Variable '{}'", name), {}, loc);
  Variable v;
  v.impl_ = std::make_shared<Variable::Impl>(
      Variable::Impl{std::move(value), std::move(name), trainable});
  return v;
}

Variable VariableAccess::create(const Tensor& initial_value, std::string name, bool trainable,
                                std::source_location loc) {
  KILN_CHECK(initial_value.defined() && !initial_value.is_symbolic(),
             "VariableAccess::create with a value that is not concrete");
  Tensor value = own_value(initial_value, initial_value.device(), false,
                           fmt::format("Variable '{}'", name), loc);
  Variable v;
  v.impl_ = std::make_shared<Variable::Impl>(
      Variable::Impl{std::move(value), std::move(name), trainable});
  return v;
}

}  // namespace detail

}  // namespace kiln
