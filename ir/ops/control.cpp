// Shape inference for the control-flow ops (`scan`); the verifier also recurses into bodies.
#include "kiln/ir/ops/control.h"

#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

int64_t count_attr(const Attrs& attrs, std::string_view name) {
  int64_t v = attrs.get_int(name);
  if (v < 0) throw ValueError(fmt::format("'{}' must be non-negative, got {}", name, v));
  return v;
}

// TypeError when the dtypes differ, ShapeError when only the shapes do.
[[noreturn]] void mismatch(const TensorType& got, const TensorType& want, std::string message) {
  if (got.dtype != want.dtype) throw TypeError(std::move(message));
  throw ShapeError(std::move(message));
}

std::vector<TensorType> infer_scan(std::span<const TensorType> inputs, const Attrs& attrs) {
  ScanAttrs s = scan_attrs(attrs, inputs.size());
  const Function& body = *s.body;
  for (int64_t j = 0; j < s.xs; ++j) {
    const TensorType& x = inputs[static_cast<size_t>(s.carries + j)];
    if (x.shape.rank() == 0) {
      throw ShapeError(fmt::format(
          "xs {} is a scalar ({}); a scanned input needs a leading time axis of size {}", j,
          x.to_string(), s.length));
    }
    if (x.shape[0] != s.length) {
      throw ShapeError(fmt::format("xs {} ({}) has leading dimension {} but length = {}", j,
                                   x.to_string(), x.shape[0], s.length));
    }
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value* param = body.param(i);
    TensorType want = inputs[i];
    std::string what;
    int64_t k = static_cast<int64_t>(i);
    if (k < s.carries) {
      what = fmt::format("carry {}", k);
    } else if (k < s.carries + s.xs) {
      what = fmt::format("xs {}", k - s.carries);
      want.shape = Shape(std::span(want.shape.dims()).subspan(1));
    } else {
      what = fmt::format("const {}", k - s.carries - s.xs);
    }
    if (param->type() != want) {
      mismatch(param->type(), want,
               fmt::format("{}: the body's parameter %{} has type {} but the scan passes {}{}",
                           what, param->name(), param->type().to_string(), want.to_string(),
                           k >= s.carries && k < s.carries + s.xs ? " (one step)" : ""));
    }
  }
  std::vector<TensorType> results;
  for (int64_t c = 0; c < s.carries; ++c) {
    const Value* out = body.outputs()[static_cast<size_t>(c)];
    const TensorType& want = inputs[static_cast<size_t>(c)];
    if (out->type() != want) {
      mismatch(out->type(), want,
               fmt::format("carry {}: the body returns {} for a carry of type {}", c,
                           out->type().to_string(), want.to_string()));
    }
    results.push_back(want);
  }
  for (int64_t y = 0; y < s.ys; ++y)
    results.push_back(
        stacked_type(body.outputs()[static_cast<size_t>(s.carries + y)]->type(), s.length));
  if (s.save_carries) {
    for (int64_t c = 0; c < s.carries; ++c)
      results.push_back(stacked_type(inputs[static_cast<size_t>(c)], s.length));
  }
  return results;
}

}  // namespace

ScanAttrs scan_attrs(const Attrs& attrs, size_t num_operands) {
  ScanAttrs s;
  s.carries = count_attr(attrs, "carries");
  s.xs = count_attr(attrs, "xs");
  s.length = count_attr(attrs, "length");
  s.reverse = attrs.get_bool("reverse");
  s.save_carries = attrs.get_bool("save_carries");
  s.body = &attrs.get_function("body").function();
  auto operands = static_cast<int64_t>(num_operands);
  if (s.carries > operands || s.xs > operands - s.carries) {
    int64_t need = 0;  // carries + xs, which can pass INT64_MAX
    const bool huge = __builtin_add_overflow(s.carries, s.xs, &need);
    throw ValueError(fmt::format("carries = {} and xs = {} need at least {} operands, got {}",
                                 s.carries, s.xs, huge ? "2^63 or more" : std::to_string(need),
                                 operands));
  }
  s.consts = operands - s.carries - s.xs;
  const Function& body = *s.body;
  if (static_cast<int64_t>(body.params().size()) != operands) {
    throw ValueError(fmt::format(
        "the body @{} takes {} parameters but the scan passes {} ({} carries, {} xs, {} consts)",
        body.name(), body.params().size(), operands, s.carries, s.xs, s.consts));
  }
  auto outputs = static_cast<int64_t>(body.outputs().size());
  if (outputs < s.carries) {
    throw ValueError(fmt::format("the body @{} returns {} values but the scan has {} carries",
                                 body.name(), outputs, s.carries));
  }
  for (const Value* v : body.outputs()) {
    if (v == nullptr) throw ValueError(fmt::format("the body @{} has a null result", body.name()));
  }
  if (!body.updates().empty()) {
    throw ValueError(fmt::format(
        "the body @{} updates a parameter; a scan body has no state (return a carry instead)",
        body.name()));
  }
  s.ys = outputs - s.carries;
  return s;
}

TensorType stacked_type(const TensorType& type, int64_t length) {
  std::vector<int64_t> dims{length};
  dims.insert(dims.end(), type.shape.begin(), type.shape.end());
  TensorType out{type.dtype, Shape(std::move(dims))};
  if (!out.checked_nbytes()) {
    throw ShapeError(
        fmt::format("stacking {} steps of {} overflows a 64-bit size", length, type.to_string()));
  }
  return out;
}

std::vector<TensorType> infer_control(Op op, std::span<const TensorType> inputs,
                                      const Attrs& attrs) {
  KILN_CHECK(op == Op::scan, "infer_control: not a control op");
  return infer_scan(inputs, attrs);
}

}  // namespace kiln::ir
