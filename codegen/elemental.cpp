// The elemental emitter's core: caching, loads, elementwise ops, creation ops and data movement.
// Ops with inner loops (reductions, matmul, conv2d, pools) are in elemental_loops.cpp.
#include "kiln/codegen/elemental.h"

#include <cmath>
#include <limits>
#include <variant>

#include <fmt/format.h>

#include "kiln/codegen/scalar_ops.h"
#include "kiln/ir/error.h"
#include "kiln/ir/interp/elementwise_math.h"
#include "kiln/ir/philox.h"

namespace kiln::codegen {

using llvm::Value;

llvm::Constant* scalar_constant(llvm::LLVMContext& context, const ir::HostTensor& tensor,
                                int64_t i) {
  llvm::Type* type = scalar_type(context, tensor.dtype());
  switch (tensor.dtype()) {
    case ir::DType::f32:
      return llvm::ConstantFP::get(type, tensor.data<float>()[i]);
    case ir::DType::f64:
      return llvm::ConstantFP::get(type, tensor.data<double>()[i]);
    case ir::DType::i32:
      return llvm::ConstantInt::get(type, static_cast<uint64_t>(tensor.data<int32_t>()[i]), true);
    case ir::DType::i64:
      return llvm::ConstantInt::get(type, static_cast<uint64_t>(tensor.data<int64_t>()[i]), true);
    case ir::DType::boolean:
      return llvm::ConstantInt::get(type, tensor.data<bool>()[i] ? 1 : 0);
    case ir::DType::u8:
      return llvm::ConstantInt::get(type, tensor.data<uint8_t>()[i], false);
  }
  KILN_CHECK(false, "unknown dtype");
}

namespace {

// A double converted to `dtype` as `cast` converts an f64, as an LLVM constant.
llvm::Constant* cast_constant(llvm::LLVMContext& context, double v, ir::DType dtype) {
  return ir::visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    return scalar_constant(context, ir::HostTensor::scalar<T>(ir::scalar::cast<T, double>(v)));
  });
}

// pad's `value` attribute (float or int, default 0) converted to `dtype` as the interpreter does.
llvm::Constant* pad_constant(llvm::LLVMContext& context, const ir::Attrs& attrs, ir::DType dtype) {
  const ir::AttrValue* v = attrs.find("value");
  if (v == nullptr) return cast_constant(context, 0.0, dtype);
  if (const auto* i = std::get_if<int64_t>(v)) {
    return ir::visit_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      T value = std::is_same_v<T, bool> ? T(*i != 0) : static_cast<T>(*i);
      return scalar_constant(context, ir::HostTensor::scalar<T>(value));
    });
  }
  double f = std::get<double>(*v);
  if (dtype == ir::DType::f32 && std::isfinite(f) &&
      std::abs(f) > std::numeric_limits<float>::max()) {
    f = f > 0 ? INFINITY : -INFINITY;
  }
  return cast_constant(context, f, dtype);
}

// fill's `value` attribute as the interpreter reads it.
llvm::Constant* fill_constant(llvm::LLVMContext& context, const ir::Attrs& attrs, ir::DType dtype) {
  if (ir::is_floating(dtype)) return cast_constant(context, attrs.get_float("value"), dtype);
  if (dtype == ir::DType::boolean) {
    const ir::AttrValue* v = attrs.find("value");
    bool value = v != nullptr && std::holds_alternative<bool>(*v) ? std::get<bool>(*v)
                                                                  : attrs.get_int("value") != 0;
    return llvm::ConstantInt::get(llvm::Type::getInt1Ty(context), value ? 1 : 0);
  }
  return llvm::ConstantInt::get(scalar_type(context, dtype),
                                static_cast<uint64_t>(attrs.get_int("value")),
                                !ir::is_unsigned(dtype));
}

// The largest T below `hi` (std::nextafter toward −inf), computed at compile time.
double next_below(double hi, ir::DType dtype) {
  if (dtype == ir::DType::f32) {
    return std::nextafter(static_cast<float>(hi), -std::numeric_limits<float>::infinity());
  }
  return std::nextafter(hi, -std::numeric_limits<double>::infinity());
}

}  // namespace

ElementEmitter::ElementEmitter(Builder& b,
                               std::unordered_map<const ir::Value*, llvm::Value*> buffers)
    : b_(b), buffers_(std::move(buffers)), scopes_(1) {}

Value* ElementEmitter::element(const ir::Value* value, std::span<Value* const> index) {
  Key key{value, Index(index.begin(), index.end())};
  for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope) {
    if (auto it = scope->find(key); it != scope->end()) return it->second;
  }
  Value* result = compute(value, key.second);
  scopes_.back().emplace(std::move(key), result);
  return result;
}

void ElementEmitter::scoped(const std::function<void()>& body) {
  scopes_.emplace_back();
  body();
  scopes_.pop_back();
}

void ElementEmitter::loop_nest(std::span<const int64_t> sizes,
                               const std::function<void(const Index&)>& body) {
  Index counters;
  std::function<void(size_t)> level = [&](size_t d) {
    if (d == sizes.size()) return body(counters);
    emit_for(b_, sizes[d], [&](Value* i) {
      counters.push_back(i);
      scoped([&] { level(d + 1); });
      counters.pop_back();
    });
  };
  level(0);
}

Index ElementEmitter::broadcast_index(const ir::Shape& shape, const Index& index) {
  if (flat_elements_ >= 0) {
    return shape.num_elements() == flat_elements_ ? index : Index{b_.getInt64(0)};
  }
  Index result(static_cast<size_t>(shape.rank()));
  const int64_t lead = static_cast<int64_t>(index.size()) - shape.rank();
  for (int64_t d = 0; d < shape.rank(); ++d) {
    result[static_cast<size_t>(d)] =
        shape[d] == 1 ? b_.getInt64(0) : index[static_cast<size_t>(d + lead)];
  }
  return result;
}

Value* ElementEmitter::load(const ir::Value* value, const Index& index) {
  const ir::Node* producer = value->producer();
  if (producer != nullptr && producer->op() == ir::Op::constant &&
      value->type().shape.num_elements() == 1) {
    return scalar_constant(b_.getContext(), producer->attrs().get_tensor("value"));
  }
  auto it = buffers_.find(value);
  KILN_CHECK(it != buffers_.end(), "a kernel reads a value that has no buffer");
  if (flat_elements_ >= 0) {
    KILN_CHECK(index.size() == 1, "a flat kernel indexes with one linear offset");
    return load_element(b_, value->type().dtype, it->second, index[0]);
  }
  std::vector<int64_t> strides = value->type().shape.strides();
  return load_element(b_, value->type().dtype, it->second, linear_offset(b_, index, strides));
}

Value* ElementEmitter::compute(const ir::Value* value, const Index& index) {
  const ir::Node* node = value->producer();
  if (node == nullptr || buffers_.count(value) != 0 || node->op() == ir::Op::constant) {
    return load(value, index);
  }
  const ir::Op op = node->op();
  if (ir::has_trait(op, ir::kElementwise)) return elementwise(*node, index);
  switch (op) {
    case ir::Op::fill:
    case ir::Op::range:
    case ir::Op::linspace:
      return creation(*node, index);
    case ir::Op::random_uniform:
    case ir::Op::random_normal:
    case ir::Op::random_uniform_at:
      return random(*node, index);
    case ir::Op::one_hot:
      return one_hot(*node, index);
    case ir::Op::argmax:
    case ir::Op::argmin:
      return arg_reduce(*node, index);
    case ir::Op::matmul:
      return matmul(*node, index);
    case ir::Op::conv2d:
      return conv2d(*node, index);
    case ir::Op::conv2d_filter_grad:
      return conv2d_filter_grad(*node, index);
    case ir::Op::max_pool2d:
    case ir::Op::avg_pool2d:
      return pool(*node, index);
    case ir::Op::max_pool2d_grad:
      return max_pool_grad(*node, index);
    case ir::Op::image_resize:
      return image_resize(*node, index);
    case ir::Op::image_transform:
      return image_transform(*node, index);
    case ir::Op::softmax:
    case ir::Op::log_softmax:  // fusion makes each its own kernel: KernelLoops::emit_softmax
      KILN_CHECK(false, "softmax inside a fused kernel (fusion keeps it a kernel of its own)");
    case ir::Op::gather:
      return gather(*node, index);
    case ir::Op::check_index:  // the entry checked the operand before this kernel runs
      return element(node->input(0), index);
    default:
      break;
  }
  if (ir::has_trait(op, ir::kReduction)) return reduce(*node, index);
  return data_movement(*node, value->index(), index);
}

Value* ElementEmitter::elementwise(const ir::Node& node, const Index& index) {
  std::vector<Value*> args;
  for (const ir::Value* in : node.inputs()) {
    args.push_back(element(in, broadcast_index(in->type().shape, index)));
  }
  const ir::Value* typed = node.op() == ir::Op::select ? node.input(1) : node.input(0);
  return emit_scalar_op(b_, node.op(), typed->type().dtype, node.output()->type().dtype,
                        node.attrs(), args);
}

Value* ElementEmitter::creation(const ir::Node& node, const Index& index) {
  const ir::TensorType& type = node.output()->type();
  const ir::Attrs& attrs = node.attrs();
  llvm::LLVMContext& context = b_.getContext();
  if (node.op() == ir::Op::fill) return fill_constant(context, attrs, type.dtype);
  Value* i = index.empty() ? b_.getInt64(0) : index[0];
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::Type* out = scalar_type(context, type.dtype);
  if (node.op() == ir::Op::range && !ir::is_floating(type.dtype)) {
    Value* v =
        b_.CreateAdd(b_.getInt64(static_cast<uint64_t>(attrs.get_int("start"))),
                     b_.CreateMul(i, b_.getInt64(static_cast<uint64_t>(attrs.get_int("delta")))));
    return b_.CreateTrunc(v, out);
  }
  double start = attrs.get_float("start"), step = 0.0;
  if (node.op() == ir::Op::range) {
    step = attrs.get_float("delta");
  } else {
    const int64_t n = type.shape.num_elements();
    if (n > 1) step = (attrs.get_float("stop") - start) / static_cast<double>(n - 1);
  }
  Value* v =
      b_.CreateFAdd(llvm::ConstantFP::get(f64, start),
                    b_.CreateFMul(b_.CreateSIToFP(i, f64), llvm::ConstantFP::get(f64, step)));
  v = b_.CreateFPCast(v, out);
  if (node.op() == ir::Op::linspace && type.shape.num_elements() > 1) {
    Value* last = b_.CreateICmpEQ(i, b_.getInt64(type.shape.num_elements() - 1));
    v = b_.CreateSelect(last, llvm::ConstantFP::get(out, attrs.get_float("stop")), v);
  }
  return v;
}

namespace {

// Philox-4x32-10 of counter (lo(i), hi(i), lo(step), hi(step)) under `seed`, unrolled with the key
// schedule folded into constants (ir/philox.h is the reference).
std::array<Value*, 4> emit_philox(Builder& b, uint64_t seed, Value* i, Value* step) {
  llvm::Type* i32 = b.getInt32Ty();
  llvm::Type* i64 = b.getInt64Ty();
  std::array<Value*, 4> c{b.CreateTrunc(i, i32), b.CreateTrunc(b.CreateLShr(i, 32), i32),
                          b.CreateTrunc(step, i32), b.CreateTrunc(b.CreateLShr(step, 32), i32)};
  ir::PhiloxKey key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += ir::kPhiloxW0;
      key[1] += ir::kPhiloxW1;
    }
    Value* p0 = b.CreateMul(b.CreateZExt(c[0], i64), b.getInt64(ir::kPhiloxM0));
    Value* p1 = b.CreateMul(b.CreateZExt(c[2], i64), b.getInt64(ir::kPhiloxM1));
    auto hi = [&](Value* p) { return b.CreateTrunc(b.CreateLShr(p, 32), i32); };
    auto lo = [&](Value* p) { return b.CreateTrunc(p, i32); };
    c = {b.CreateXor(b.CreateXor(hi(p1), c[1]), b.getInt32(key[0])), lo(p1),
         b.CreateXor(b.CreateXor(hi(p0), c[3]), b.getInt32(key[1])), lo(p0)};
  }
  return c;
}

Value* uniform24(Builder& b, Value* w) {
  Value* bits = b.CreateUIToFP(b.CreateLShr(w, 8), b.getDoubleTy());
  return b.CreateFMul(bits, llvm::ConstantFP::get(b.getDoubleTy(), 0x1p-24));
}

Value* uniform53(Builder& b, Value* hi, Value* lo) {
  llvm::Type* i64 = b.getInt64Ty();
  Value* bits = b.CreateOr(b.CreateShl(b.CreateZExt(hi, i64), 32), b.CreateZExt(lo, i64));
  Value* u = b.CreateUIToFP(b.CreateLShr(bits, 11), b.getDoubleTy());
  return b.CreateFMul(u, llvm::ConstantFP::get(b.getDoubleTy(), 0x1p-53));
}

}  // namespace

Value* ElementEmitter::random(const ir::Node& node, const Index& index) {
  const ir::TensorType& type = node.output()->type();
  const ir::Attrs& attrs = node.attrs();
  const bool f32 = type.dtype == ir::DType::f32;
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::Type* out = scalar_type(b_.getContext(), type.dtype);
  auto dconst = [&](double v) { return llvm::ConstantFP::get(f64, v); };
  Value* i = linear_offset(b_, index, type.shape.strides());
  // random_uniform_at draws at its run-time step (counter words 2 and 3); the others at 0.
  Value* step =
      node.op() == ir::Op::random_uniform_at ? element(node.input(0), Index{}) : b_.getInt64(0);
  std::array<Value*, 4> w = emit_philox(b_, static_cast<uint64_t>(attrs.get_int("seed")), i, step);
  if (node.op() != ir::Op::random_normal) {
    const double lo = attrs.get_float("minval"), hi = attrs.get_float("maxval");
    Value* u = f32 ? uniform24(b_, w[0]) : uniform53(b_, w[0], w[1]);
    Value* v = b_.CreateFPCast(b_.CreateFAdd(dconst(lo), b_.CreateFMul(u, dconst(hi - lo))), out);
    const double hi_t = f32 ? static_cast<float>(hi) : hi;
    const double lo_t = f32 ? static_cast<float>(lo) : lo;
    if (lo_t < hi_t) {
      llvm::Constant* limit = llvm::ConstantFP::get(out, hi_t);
      v = b_.CreateSelect(b_.CreateFCmpOGE(v, limit),
                          llvm::ConstantFP::get(out, next_below(hi, type.dtype)), v);
    }
    return v;
  }
  Value* u1 = b_.CreateFSub(dconst(1.0), f32 ? uniform24(b_, w[0]) : uniform53(b_, w[0], w[1]));
  Value* u2 = f32 ? uniform24(b_, w[1]) : uniform53(b_, w[2], w[3]);
  Value* log_u1[] = {u1};
  Value* radius_sq = b_.CreateFMul(dconst(-2.0), call_intrinsic(b_, llvm::Intrinsic::log, log_u1));
  Value* radius_args[] = {radius_sq};
  Value* radius = call_intrinsic(b_, llvm::Intrinsic::sqrt, radius_args);
  Value* angle[] = {b_.CreateFMul(dconst(2.0 * 3.14159265358979323846), u2)};
  Value* z = b_.CreateFMul(radius, call_intrinsic(b_, llvm::Intrinsic::cos, angle));
  Value* v = b_.CreateFAdd(dconst(attrs.get_float("mean")),
                           b_.CreateFMul(dconst(attrs.get_float("stddev")), z));
  return b_.CreateFPCast(v, out);
}

Value* ElementEmitter::one_hot(const ir::Node& node, const Index& index) {
  const ir::TensorType& type = node.output()->type();
  const int64_t axis = ir::normalize_axis(node.attrs().get_int("axis", -1), type.shape.rank());
  Index at = index;
  at.erase(at.begin() + axis);
  const ir::Value* indices = node.input(0);
  Value* want = b_.CreateSExt(element(indices, at), b_.getInt64Ty());
  llvm::LLVMContext& context = b_.getContext();
  return b_.CreateSelect(b_.CreateICmpEQ(want, index[static_cast<size_t>(axis)]),
                         cast_constant(context, node.attrs().get_float("on_value"), type.dtype),
                         cast_constant(context, node.attrs().get_float("off_value"), type.dtype));
}

Value* ElementEmitter::reshape(const ir::Node& node, const Index& index) {
  const ir::Shape& out = node.output()->type().shape;
  const ir::Shape& in = node.input(0)->type().shape;
  Value* linear = linear_offset(b_, index, out.strides());
  std::vector<int64_t> strides = in.strides();
  Index at(static_cast<size_t>(in.rank()));
  for (int64_t d = 0; d < in.rank(); ++d) {
    Value* q = b_.CreateUDiv(linear, b_.getInt64(strides[static_cast<size_t>(d)]));
    at[static_cast<size_t>(d)] = d == 0 ? q : b_.CreateURem(q, b_.getInt64(in[d]));
  }
  return element(node.input(0), at);
}

Value* ElementEmitter::pad(const ir::Node& node, const Index& index) {
  const ir::Value* in = node.input(0);
  const ir::Shape& shape = in->type().shape;
  llvm::Constant* fill = pad_constant(b_.getContext(), node.attrs(), in->type().dtype);
  if (shape.num_elements() == 0) return fill;
  const std::vector<int64_t>& paddings = node.attrs().get_ints("paddings");
  Value* inside = b_.getTrue();
  Index at(index.size());
  for (size_t d = 0; d < index.size(); ++d) {
    Value* pos = b_.CreateSub(index[d], b_.getInt64(paddings[2 * d]));
    const int64_t dim = shape[static_cast<int64_t>(d)];
    inside = b_.CreateAnd(inside, b_.CreateICmpULT(pos, b_.getInt64(dim)));
    // Clamped so that the (discarded) load outside the operand stays in bounds.
    Value* low = b_.CreateSelect(b_.CreateICmpSLT(pos, b_.getInt64(0)), b_.getInt64(0), pos);
    at[d] = b_.CreateSelect(b_.CreateICmpSGT(low, b_.getInt64(dim - 1)), b_.getInt64(dim - 1), low);
  }
  return b_.CreateSelect(inside, element(in, at), fill);
}

Value* ElementEmitter::concat(const ir::Node& node, const Index& index) {
  const int64_t rank = node.output()->type().shape.rank();
  const size_t axis = static_cast<size_t>(ir::normalize_axis(node.attrs().get_int("axis"), rank));
  Value* result = nullptr;
  int64_t offset = 0;
  for (const ir::Value* in : node.inputs()) {
    const int64_t size = in->type().shape[static_cast<int64_t>(axis)];
    if (size == 0) continue;
    Index at = index;
    Value* pos = b_.CreateSub(index[axis], b_.getInt64(offset));
    if (result == nullptr) {
      at[axis] = pos;  // the first non-empty operand: positions below `offset` never occur
      result = element(in, at);
    } else {
      Value* low = b_.CreateSelect(b_.CreateICmpSLT(pos, b_.getInt64(0)), b_.getInt64(0), pos);
      at[axis] =
          b_.CreateSelect(b_.CreateICmpSGT(low, b_.getInt64(size - 1)), b_.getInt64(size - 1), low);
      result = b_.CreateSelect(b_.CreateICmpSGE(index[axis], b_.getInt64(offset)), element(in, at),
                               result);
    }
    offset += size;
  }
  KILN_CHECK(result != nullptr, "concat of empty operands produced an element");
  return result;
}

// out[outer..., j..., inner...] = params[outer..., indices[j...], inner...]. The entry checked
// the indices before this kernel (codegen/index_check.h); a bad one reads element 0 instead, so
// nothing is read out of bounds whatever the indices hold.
Value* ElementEmitter::gather(const ir::Node& node, const Index& index) {
  const ir::Value* params = node.input(0);
  const ir::Value* indices = node.input(1);
  const ir::Shape& shape = params->type().shape;
  const size_t axis =
      static_cast<size_t>(ir::normalize_axis(node.attrs().get_int("axis"), shape.rank()));
  const int64_t dim = shape[static_cast<int64_t>(axis)];
  // No index is valid: params has no element to read (the check reported the first index).
  if (dim == 0) return cast_constant(b_.getContext(), 0.0, params->type().dtype);
  const size_t count = static_cast<size_t>(indices->type().shape.rank());
  Index j(index.begin() + static_cast<ptrdiff_t>(axis),
          index.begin() + static_cast<ptrdiff_t>(axis + count));
  Value* idx = b_.CreateSExt(element(indices, j), b_.getInt64Ty());
  Value* in_range = b_.CreateICmpULT(idx, b_.getInt64(dim));
  Index at(index.begin(), index.begin() + static_cast<ptrdiff_t>(axis));
  at.push_back(b_.CreateSelect(in_range, idx, b_.getInt64(0)));
  at.insert(at.end(), index.begin() + static_cast<ptrdiff_t>(axis + count), index.end());
  return element(params, at);
}

Value* ElementEmitter::data_movement(const ir::Node& node, int result, const Index& index) {
  const ir::Attrs& attrs = node.attrs();
  const ir::Value* in = node.input(0);
  const ir::Shape& shape = in->type().shape;
  Index at(static_cast<size_t>(shape.rank()));
  switch (node.op()) {
    case ir::Op::reshape:
    case ir::Op::squeeze:
    case ir::Op::expand_dims:
      return reshape(node, index);
    case ir::Op::broadcast_to:
      return element(in, broadcast_index(shape, index));
    case ir::Op::transpose: {
      const std::vector<int64_t>& perm = attrs.get_ints("perm");
      for (size_t i = 0; i < perm.size(); ++i)
        at[static_cast<size_t>(perm[i])] = index[i];
      return element(in, at);
    }
    case ir::Op::slice: {
      const std::vector<int64_t>& begin = attrs.get_ints("begin");
      const std::vector<int64_t>& strides = attrs.get_ints("strides");
      for (size_t d = 0; d < at.size(); ++d) {
        at[d] =
            b_.CreateAdd(b_.getInt64(static_cast<uint64_t>(begin[d])),
                         b_.CreateMul(index[d], b_.getInt64(static_cast<uint64_t>(strides[d]))));
      }
      return element(in, at);
    }
    case ir::Op::tile:
      for (size_t d = 0; d < at.size(); ++d)
        at[d] = b_.CreateURem(index[d], b_.getInt64(shape[static_cast<int64_t>(d)]));
      return element(in, at);
    case ir::Op::split: {
      const size_t axis =
          static_cast<size_t>(ir::normalize_axis(attrs.get_int("axis"), shape.rank()));
      const std::vector<int64_t>& sizes = attrs.get_ints("sizes");
      int64_t offset = 0;
      for (int r = 0; r < result; ++r)
        offset += sizes[static_cast<size_t>(r)];
      at = index;
      at[axis] = b_.CreateAdd(index[axis], b_.getInt64(offset));
      return element(in, at);
    }
    case ir::Op::pad:
      return pad(node, index);
    case ir::Op::concat:
      return concat(node, index);
    default:
      throw CompileError(fmt::format("no emitter for {}", ir::op_name(node.op())));
  }
}

}  // namespace kiln::codegen
