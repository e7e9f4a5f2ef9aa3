#include "kiln/frontend/tensor.h"

#include <fmt/format.h>

#include <ostream>

namespace kiln {

struct Tensor::Impl {
  ir::HostTensor value;
};

Tensor::Tensor(ir::HostTensor value) : impl_(std::make_shared<Impl>(Impl{std::move(value)})) {}

const ir::HostTensor& Tensor::host() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  return impl_->value;
}

const TensorType& Tensor::type() const { return host().type(); }

}  // namespace kiln
