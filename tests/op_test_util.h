// Helpers for table-driven op tests: build host tensors, run an op through shape inference and
// the interpreter, and compare against hand-computed values.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ir/infer.h"
#include "kiln/ir/interpreter.h"

namespace kiln::testing {

// The IR vocabulary every op test uses; a test file says `using namespace kiln::testing;`.
using ir::Attrs;
using ir::DType;
using ir::HostTensor;
using ir::Op;
using ir::Shape;
using ir::TensorType;

// Hand-written values converted to the element type under test.
template <class T>
std::vector<T> as(const std::vector<double>& values) {
  std::vector<T> out;
  out.reserve(values.size());
  for (double v : values)
    out.push_back(static_cast<T>(v));
  return out;
}

// A host tensor of C++ element type T with the given shape and row-major values.
template <class T>
ir::HostTensor make(ir::Shape shape, std::vector<T> values) {
  if constexpr (std::is_same_v<T, bool>) {
    ir::HostTensor t(ir::DType::boolean, std::move(shape));
    REQUIRE(static_cast<int64_t>(values.size()) == t.num_elements());
    for (size_t i = 0; i < values.size(); ++i)
      t.data<bool>()[i] = values[i];
    return t;
  } else {
    return ir::HostTensor::from_values<T>(std::move(shape), std::span<const T>(values));
  }
}

// Infers result types and runs `op` in the interpreter.
inline std::vector<ir::HostTensor> run(ir::Op op, std::vector<ir::HostTensor> inputs,
                                       const ir::Attrs& attrs = {}) {
  std::vector<ir::TensorType> types;
  for (const auto& t : inputs)
    types.push_back(t.type());
  std::vector<ir::TensorType> out_types = ir::infer_types(op, types, attrs);
  return ir::run_op(op, inputs, attrs, out_types);
}

inline ir::HostTensor run1(ir::Op op, std::vector<ir::HostTensor> inputs,
                           const ir::Attrs& attrs = {}) {
  auto out = run(op, std::move(inputs), attrs);
  REQUIRE(out.size() == 1);
  return out[0];
}

// Checks dtype, shape and values (within `tol` relative+absolute for floats; NaN equals NaN).
template <class T>
void check_values(const ir::HostTensor& got, const ir::Shape& shape, const std::vector<T>& want,
                  double tol = 1e-6) {
  INFO("got type " << got.type().to_string());
  REQUIRE(got.dtype() == ir::dtype_of<T>());
  REQUIRE(got.shape() == shape);
  REQUIRE(static_cast<int64_t>(want.size()) == got.num_elements());
  const T* data = got.data<T>();
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(want[i])) {
        CHECK(std::isnan(data[i]));
      } else if (std::isinf(want[i])) {
        CHECK(data[i] == want[i]);
      } else {
        CHECK(std::abs(static_cast<double>(data[i]) - static_cast<double>(want[i])) <=
              tol * (1.0 + std::abs(static_cast<double>(want[i]))));
      }
    } else {
      CHECK(data[i] == want[i]);
    }
  }
}

// Attribute sets the shape-op tests build again and again.
inline ir::Attrs ints(std::string_view name, std::vector<int64_t> v) {
  ir::Attrs a;
  a.set_ints(name, std::move(v));
  return a;
}
inline ir::Attrs axis_attr(int64_t axis) {
  ir::Attrs a;
  a.set_int("axis", axis);
  return a;
}
inline ir::Attrs slice_attrs(std::vector<int64_t> begin, std::vector<int64_t> end,
                             std::vector<int64_t> strides) {
  ir::Attrs a;
  a.set_ints("begin", std::move(begin)).set_ints("end", std::move(end));
  a.set_ints("strides", std::move(strides));
  return a;
}

}  // namespace kiln::testing
