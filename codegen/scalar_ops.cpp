#include "kiln/codegen/scalar_ops.h"

#include <llvm/IR/Intrinsics.h>

#include <fmt/format.h>

#include "kiln/ir/error.h"

namespace kiln::codegen {

namespace {

using llvm::Value;
namespace intr = llvm::Intrinsic;

Value* call1(Builder& b, intr::ID id, Value* x) {
  Value* args[] = {x};
  return call_intrinsic(b, id, args);
}
Value* call2(Builder& b, intr::ID id, Value* x, Value* y) {
  Value* args[] = {x, y};
  return call_intrinsic(b, id, args);
}
// libm's float or double variant ("tanhf" / "tanh").
Value* libm1(Builder& b, const char* name, Value* x) {
  Value* args[] = {x};
  std::string full = x->getType()->isFloatTy() ? std::string(name) + "f" : std::string(name);
  return call_libm(b, full.c_str(), x->getType(), args);
}
Value* fconst(Value* like, double v) {
  return llvm::ConstantFP::get(like->getType(), v);
}
Value* iconst(Value* like, int64_t v) {
  return llvm::ConstantInt::get(like->getType(), static_cast<uint64_t>(v), true);
}

// -1, 0 or 1 (NaN stays NaN).
Value* emit_sign(Builder& b, Value* x, bool floating) {
  if (floating) {
    Value* r = b.CreateSelect(
        b.CreateFCmpOGT(x, fconst(x, 0)), fconst(x, 1),
        b.CreateSelect(b.CreateFCmpOLT(x, fconst(x, 0)), fconst(x, -1), fconst(x, 0)));
    return b.CreateSelect(b.CreateFCmpUNO(x, x), x, r);
  }
  return b.CreateSelect(
      b.CreateICmpSGT(x, iconst(x, 0)), iconst(x, 1),
      b.CreateSelect(b.CreateICmpSLT(x, iconst(x, 0)), iconst(x, -1), iconst(x, 0)));
}

// 1/(1+e^−x) without overflow: with e = e^−|x|, 1/(1+e) for x ≥ 0, e/(1+e) otherwise.
Value* emit_sigmoid(Builder& b, Value* x) {
  Value* e = call1(b, intr::exp, b.CreateFNeg(call1(b, intr::fabs, x)));
  Value* denom = b.CreateFAdd(fconst(x, 1), e);
  return b.CreateSelect(b.CreateFCmpOGE(x, fconst(x, 0)), b.CreateFDiv(fconst(x, 1), denom),
                        b.CreateFDiv(e, denom));
}

// max(x, 0) + log1p(e^−|x|); NaN stays NaN.
Value* emit_softplus(Builder& b, Value* x) {
  Value* tail = libm1(b, "log1p", call1(b, intr::exp, b.CreateFNeg(call1(b, intr::fabs, x))));
  Value* pos = b.CreateSelect(b.CreateFCmpOGT(x, fconst(x, 0)), x, fconst(x, 0));
  return b.CreateSelect(b.CreateFCmpUNO(x, x), x, b.CreateFAdd(pos, tail));
}

Value* emit_elu(Builder& b, Value* x, double alpha) {
  Value* neg = b.CreateFMul(fconst(x, alpha), libm1(b, "expm1", x));
  return b.CreateSelect(b.CreateFCmpOGT(x, fconst(x, 0)), x, neg);
}

// 0.5·x·erfc(−x/√2), or x·sigmoid(2u) with u = √(2/π)(x + 0.044715x³) (as the interpreter's
// scalar::gelu and gelu_tanh).
Value* emit_gelu(Builder& b, Value* x, bool approximate) {
  if (approximate) {
    Value* cube = b.CreateFMul(b.CreateFMul(x, x), x);
    Value* u = b.CreateFMul(fconst(x, 0.79788456080286535588),
                            b.CreateFAdd(x, b.CreateFMul(fconst(x, 0.044715), cube)));
    return b.CreateFMul(x, emit_sigmoid(b, b.CreateFMul(fconst(x, 2), u)));
  }
  Value* arg = b.CreateFMul(b.CreateFNeg(x), fconst(x, 0.70710678118654752440));
  return b.CreateFMul(b.CreateFMul(fconst(x, 0.5), x), libm1(b, "erfc", arg));
}

Value* emit_float_unary(Builder& b, ir::Op op, const ir::Attrs& attrs, Value* x) {
  using ir::Op;
  switch (op) {
    case Op::neg:
      return b.CreateFNeg(x);
    case Op::abs:
      return call1(b, intr::fabs, x);
    case Op::sign:
      return emit_sign(b, x, true);
    case Op::square:
      return b.CreateFMul(x, x);
    case Op::relu:  // unordered-or-greater keeps NaN
      return b.CreateSelect(b.CreateFCmpUGT(x, fconst(x, 0)), x, fconst(x, 0));
    case Op::exp:
      return call1(b, intr::exp, x);
    case Op::log:
      return call1(b, intr::log, x);
    case Op::sqrt:
      return call1(b, intr::sqrt, x);
    case Op::rsqrt:
      return b.CreateFDiv(fconst(x, 1), call1(b, intr::sqrt, x));
    case Op::reciprocal:
      return b.CreateFDiv(fconst(x, 1), x);
    case Op::sin:
      return call1(b, intr::sin, x);
    case Op::cos:
      return call1(b, intr::cos, x);
    case Op::tanh:
      return libm1(b, "tanh", x);
    case Op::sigmoid:
      return emit_sigmoid(b, x);
    case Op::elu:
      return emit_elu(b, x, attrs.get_float("alpha", 1.0));
    case Op::softplus:
      return emit_softplus(b, x);
    case Op::gelu:
      return emit_gelu(b, x, attrs.get_bool("approximate", false));
    case Op::erf:
      return libm1(b, "erf", x);
    case Op::log1p:
      return libm1(b, "log1p", x);
    case Op::expm1:
      return libm1(b, "expm1", x);
    case Op::floor:
      return call1(b, intr::floor, x);
    case Op::ceil:
      return call1(b, intr::ceil, x);
    case Op::round:
      return call1(b, intr::roundeven, x);
    default:
      return nullptr;
  }
}

// Unsigned integers: neg wraps (0 − x), abs and relu are the identity, sign is x != 0.
Value* emit_int_unary(Builder& b, ir::Op op, bool is_unsigned, Value* x) {
  using ir::Op;
  switch (op) {
    case Op::neg:
      return b.CreateSub(iconst(x, 0), x);
    case Op::abs:  // abs(MIN) wraps to MIN
      if (is_unsigned) return x;
      return b.CreateSelect(b.CreateICmpSLT(x, iconst(x, 0)), b.CreateSub(iconst(x, 0), x), x);
    case Op::sign:
      if (is_unsigned) return b.CreateZExt(b.CreateICmpNE(x, iconst(x, 0)), x->getType());
      return emit_sign(b, x, false);
    case Op::square:
      return b.CreateMul(x, x);
    case Op::relu:
      if (is_unsigned) return x;
      return b.CreateSelect(b.CreateICmpSGT(x, iconst(x, 0)), x, iconst(x, 0));
    default:
      return nullptr;
  }
}

// Unsigned division that never traps: x/0 = 0.
Value* emit_uint_div(Builder& b, Value* x, Value* y) {
  Value* zero = b.CreateICmpEQ(y, iconst(y, 0));
  Value* q = b.CreateUDiv(x, b.CreateSelect(zero, iconst(y, 1), y));
  return b.CreateSelect(zero, iconst(x, 0), q);
}

// Integer division that never traps: x/0 = 0, x/−1 = −x (wrapping).
Value* emit_int_div(Builder& b, Value* x, Value* y) {
  Value* zero = b.CreateICmpEQ(y, iconst(y, 0));
  Value* minus_one = b.CreateICmpEQ(y, iconst(y, -1));
  Value* safe = b.CreateSelect(b.CreateOr(zero, minus_one), iconst(y, 1), y);
  Value* q = b.CreateSDiv(x, safe);
  q = b.CreateSelect(minus_one, b.CreateSub(iconst(x, 0), x), q);
  return b.CreateSelect(zero, iconst(x, 0), q);
}

// Exact integer power by squaring, unrolled over every exponent bit (straight-line code, so
// loops around it still vectorize). A negative exponent gives 1, ±1 or 0 as docs/ops.md says;
// an unsigned exponent is never negative, so all its bits count.
Value* emit_int_pow(Builder& b, bool is_unsigned, Value* base, Value* exponent) {
  unsigned bits = base->getType()->getIntegerBitWidth();
  Value* result = iconst(base, 1);
  Value* x = base;
  const unsigned value_bits = is_unsigned ? bits : bits - 1;
  for (unsigned bit = 0; bit < value_bits; ++bit) {
    Value* set = b.CreateICmpNE(b.CreateAnd(b.CreateLShr(exponent, bit), iconst(exponent, 1)),
                                iconst(exponent, 0));
    result = b.CreateSelect(set, b.CreateMul(result, x), result);
    x = b.CreateMul(x, x);
  }
  if (is_unsigned) return result;
  Value* odd = b.CreateICmpNE(b.CreateAnd(exponent, iconst(exponent, 1)), iconst(exponent, 0));
  Value* negative = b.CreateSelect(
      b.CreateICmpEQ(base, iconst(base, 1)), iconst(base, 1),
      b.CreateSelect(b.CreateICmpEQ(base, iconst(base, -1)),
                     b.CreateSelect(odd, iconst(base, -1), iconst(base, 1)), iconst(base, 0)));
  return b.CreateSelect(b.CreateICmpSLT(exponent, iconst(exponent, 0)), negative, result);
}

Value* emit_arithmetic(Builder& b, ir::Op op, ir::DType dtype, Value* x, Value* y) {
  using ir::Op;
  const bool floating = ir::is_floating(dtype);
  const bool is_unsigned = ir::is_unsigned(dtype);
  switch (op) {
    case Op::add:
      return floating ? b.CreateFAdd(x, y) : b.CreateAdd(x, y);
    case Op::sub:
      return floating ? b.CreateFSub(x, y) : b.CreateSub(x, y);
    case Op::mul:
      return floating ? b.CreateFMul(x, y) : b.CreateMul(x, y);
    case Op::div:
      if (floating) return b.CreateFDiv(x, y);
      return is_unsigned ? emit_uint_div(b, x, y) : emit_int_div(b, x, y);
    case Op::pow:
      return floating ? call2(b, intr::pow, x, y) : emit_int_pow(b, is_unsigned, x, y);
    case Op::maximum:
      return call2(b, floating ? intr::maximum : is_unsigned ? intr::umax : intr::smax, x, y);
    case Op::minimum:
      return call2(b, floating ? intr::minimum : is_unsigned ? intr::umin : intr::smin, x, y);
    default:
      return nullptr;
  }
}

Value* emit_compare(Builder& b, ir::Op op, ir::DType dtype, Value* x, Value* y) {
  using ir::Op;
  using P = llvm::CmpInst::Predicate;
  const bool floating = ir::is_floating(dtype);
  const bool is_unsigned = ir::is_unsigned(dtype);
  // fp: the float predicate; sp/up: the signed and unsigned integer predicates.
  auto cmp = [&](P fp, P sp, P up) {
    return floating ? b.CreateFCmp(fp, x, y) : b.CreateICmp(is_unsigned ? up : sp, x, y);
  };
  switch (op) {
    case Op::equal:
      return cmp(P::FCMP_OEQ, P::ICMP_EQ, P::ICMP_EQ);
    case Op::not_equal:
      return cmp(P::FCMP_UNE, P::ICMP_NE, P::ICMP_NE);
    case Op::less:
      return cmp(P::FCMP_OLT, P::ICMP_SLT, P::ICMP_ULT);
    case Op::less_equal:
      return cmp(P::FCMP_OLE, P::ICMP_SLE, P::ICMP_ULE);
    case Op::greater:
      return cmp(P::FCMP_OGT, P::ICMP_SGT, P::ICMP_UGT);
    case Op::greater_equal:
      return cmp(P::FCMP_OGE, P::ICMP_SGE, P::ICMP_UGE);
    case Op::logical_and:
      return b.CreateAnd(x, y);
    case Op::logical_or:
      return b.CreateOr(x, y);
    default:
      return nullptr;
  }
}

}  // namespace

Value* emit_cast(Builder& b, Value* value, ir::DType from, ir::DType to) {
  using ir::DType;
  if (from == to) return value;
  llvm::Type* type = scalar_type(b.getContext(), to);
  if (to == DType::boolean) {
    if (ir::is_floating(from)) return b.CreateFCmpUNE(value, fconst(value, 0));
    return b.CreateICmpNE(value, iconst(value, 0));
  }
  // bool and u8 hold no sign: they widen with zero bits and convert as unsigned.
  const bool from_unsigned = from == DType::boolean || ir::is_unsigned(from);
  if (ir::is_floating(from) && ir::is_floating(to)) return b.CreateFPCast(value, type);
  if (ir::is_floating(to)) {
    return from_unsigned ? b.CreateUIToFP(value, type) : b.CreateSIToFP(value, type);
  }
  if (ir::is_floating(from)) {  // truncating toward zero, saturating, NaN → 0
    auto id = ir::is_unsigned(to) ? llvm::Intrinsic::fptoui_sat : llvm::Intrinsic::fptosi_sat;
    return b.CreateIntrinsic(id, {type, value->getType()}, {value});
  }
  return from_unsigned ? b.CreateZExtOrTrunc(value, type) : b.CreateSExtOrTrunc(value, type);
}

Value* emit_scalar_op(Builder& b, ir::Op op, ir::DType in, ir::DType out, const ir::Attrs& attrs,
                      std::span<Value* const> args) {
  const bool floating = ir::is_floating(in);
  Value* result = nullptr;
  if (op == ir::Op::cast) {
    result = emit_cast(b, args[0], in, out);
  } else if (op == ir::Op::select) {
    result = b.CreateSelect(args[0], args[1], args[2]);
  } else if (op == ir::Op::logical_not) {
    result = b.CreateNot(args[0]);
  } else if (args.size() == 1) {
    result = floating ? emit_float_unary(b, op, attrs, args[0])
                      : emit_int_unary(b, op, ir::is_unsigned(in), args[0]);
  } else if (out == ir::DType::boolean) {
    result = emit_compare(b, op, in, args[0], args[1]);
  } else {
    result = emit_arithmetic(b, op, in, args[0], args[1]);
  }
  if (result == nullptr) {
    throw CompileError(
        fmt::format("no scalar emitter for {} on {}", ir::op_name(op), ir::dtype_name(in)));
  }
  return result;
}

}  // namespace kiln::codegen
