// Helpers for the codegen differential tests: plans for a function, sample inputs, running the
// JIT-compiled entry and comparing against the interpreter (the oracle).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <unordered_set>
#include <vector>

#include "kiln/codegen/compiler.h"
#include "kiln/ir/interpreter.h"
#include "kiln/passes/kernel_plan.h"
#include "kiln/runtime/generated_code.h"

namespace kiln::testing {

struct Plans {
  passes::KernelPlan kernels;
  passes::MemoryPlan memory;
};

inline passes::KernelKind kind_of(ir::Op op) {
  if (ir::has_trait(op, ir::kElementwise)) return passes::KernelKind::loop;
  if (ir::has_trait(op, ir::kReduction)) return passes::KernelKind::reduction;
  if (op == ir::Op::matmul) return passes::KernelKind::matmul;
  if (op == ir::Op::conv2d) return passes::KernelKind::conv2d;
  return passes::KernelKind::op;
}

// Every value in its own workspace slot; params, constants, then results and updates as the
// memory-plan contract says.
inline passes::MemoryPlan simple_memory(const ir::Function& f) {
  passes::MemoryPlan m;
  for (size_t i = 0; i < f.params().size(); ++i)
    m.slots[f.param(i)] = {passes::Slot::Kind::param, static_cast<int64_t>(i), 0, 0};
  for (const auto& node : f.nodes()) {
    for (size_t r = 0; r < node->num_outputs(); ++r) {
      const ir::Value* v = node->output(r);
      int64_t bytes =
          v->type().shape.num_elements() * static_cast<int64_t>(ir::dtype_size(v->type().dtype));
      if (node->op() == ir::Op::constant) {
        m.slots[v] = {passes::Slot::Kind::constant, 0, 0, bytes};
        continue;
      }
      m.slots[v] = {passes::Slot::Kind::workspace, 0, m.workspace_bytes, bytes};
      m.workspace_bytes += (bytes + 63) / 64 * 64;
    }
  }
  std::vector<const ir::Value*> results(f.outputs().begin(), f.outputs().end());
  for (const auto& u : f.updates())
    results.push_back(u.value);
  std::unordered_set<const ir::Value*> placed;
  for (size_t j = 0; j < results.size(); ++j) {
    passes::Slot& s = m.slots[results[j]];
    if (s.kind != passes::Slot::Kind::workspace || !placed.insert(results[j]).second) continue;
    s = {passes::Slot::Kind::output, static_cast<int64_t>(j), 0, s.bytes};
  }
  return m;
}

// One kernel per non-constant node.
inline Plans simple_plans(const ir::Function& f) {
  Plans p;
  for (const auto& node : f.nodes()) {
    if (node->op() == ir::Op::constant) continue;
    passes::Kernel k;
    k.kind = kind_of(node->op());
    k.nodes = {node.get()};
    for (const ir::Value* in : node->inputs()) {
      if (std::find(k.inputs.begin(), k.inputs.end(), in) == k.inputs.end()) k.inputs.push_back(in);
    }
    for (size_t r = 0; r < node->num_outputs(); ++r)
      k.outputs.push_back(node->output(r));
    p.kernels.kernels.push_back(std::move(k));
  }
  p.memory = simple_memory(f);
  return p;
}

// Every non-constant node in one fused kernel of `kind` whose outputs are the function's
// results and updates.
inline Plans fused_plans(const ir::Function& f, passes::KernelKind kind) {
  Plans p;
  passes::Kernel k;
  k.kind = kind;
  std::unordered_set<const ir::Value*> inside;
  for (const auto& node : f.nodes()) {
    if (node->op() == ir::Op::constant) continue;
    k.nodes.push_back(node.get());
    for (const ir::Value* in : node->inputs()) {
      if (!inside.count(in) && std::find(k.inputs.begin(), k.inputs.end(), in) == k.inputs.end())
        k.inputs.push_back(in);
    }
    for (size_t r = 0; r < node->num_outputs(); ++r)
      inside.insert(node->output(r));
  }
  auto add_output = [&](const ir::Value* v) {
    if (inside.count(v) && std::find(k.outputs.begin(), k.outputs.end(), v) == k.outputs.end())
      k.outputs.push_back(v);
  };
  for (const ir::Value* v : f.outputs())
    add_output(v);
  for (const auto& u : f.updates())
    add_output(u.value);
  p.kernels.kernels.push_back(std::move(k));
  p.memory = simple_memory(f);
  return p;
}

// Calls the compiled entry on `frame`. Tests call generated code through this (or through
// runtime::Executable), which turns off UBSan's -fsanitize=function check for that call
// (runtime/generated_code.h says why).
KILN_CALLS_GENERATED_CODE inline void call_entry(const codegen::CompiledModule& module,
                                                 const kiln_frame& frame) {
  module.entry()(&frame);
}

// Runs `call` on a frame over `args`, result buffers for `f`'s results and updates, a
// workspace of `workspace_bytes` and zeroed status words; returns the results, then the updated
// values. The status words come back in `status` when given; otherwise they must say that all
// went well.
template <class Call>
std::vector<ir::HostTensor> run_frame(const ir::Function& f,
                                      const std::vector<ir::HostTensor>& args,
                                      int64_t workspace_bytes, const Call& call,
                                      std::array<int64_t, 4>* status = nullptr) {
  std::vector<void*> inputs;
  for (const auto& a : args)
    inputs.push_back(const_cast<std::byte*>(a.raw()));
  std::vector<ir::HostTensor> outs;
  for (const ir::Value* v : f.outputs())
    outs.emplace_back(v->type());
  for (const auto& u : f.updates())
    outs.emplace_back(u.value->type());
  std::vector<void*> outputs;
  for (auto& o : outs)
    outputs.push_back(o.raw());
  ir::HostTensor workspace(ir::DType::f64, ir::Shape{(workspace_bytes + 7) / 8 + 8});
  std::array<int64_t, 4> words{};
  kiln_frame frame{inputs.data(), outputs.data(), workspace.raw(), words.data()};
  call(frame);
  if (status != nullptr)
    *status = words;
  else
    CHECK(words[0] == 0);
  return outs;
}

// Runs compiled code on `args` (see run_frame).
inline std::vector<ir::HostTensor> run_compiled(const codegen::CompiledModule& module,
                                                const ir::Function& f,
                                                const std::vector<ir::HostTensor>& args,
                                                std::array<int64_t, 4>* status = nullptr) {
  return run_frame(
      f, args, module.workspace_bytes(),
      [&](const kiln_frame& frame) { call_entry(module, frame); }, status);
}

// The op lists of the table-driven tests come from the op table (ir/ops.def): every elementwise
// op with `arity` operands whose dtype class admits `dtype`. Cast and select (class `any`) have
// tests of their own.
inline std::vector<ir::Op> table_ops(int arity, ir::DType dtype) {
  std::vector<ir::Op> ops;
  for (int i = 0; i < ir::kNumOps; ++i) {
    const ir::Op op = static_cast<ir::Op>(i);
    if (!ir::has_trait(op, ir::kElementwise) || ir::op_num_inputs(op) != arity) continue;
    if (ir::op_dtypes(op) != ir::DTypes::any && ir::dtypes_admit(ir::op_dtypes(op), dtype))
      ops.push_back(op);
  }
  return ops;
}

// Whether two floats agree within a few ulp (relative `tol`); NaN equals NaN.
inline bool close(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= tol * std::max(1.0, std::abs(want)) ||
         std::abs(got - want) <= tol * std::abs(want);
}

inline void check_same(const ir::HostTensor& got, const ir::HostTensor& want, double tol) {
  REQUIRE(got.type() == want.type());
  const bool floating = ir::is_floating(want.dtype());
  if (!floating) {
    CHECK(got.bitwise_equal(want));
    if (got.bitwise_equal(want)) return;
  }
  const double t = want.dtype() == ir::DType::f32 ? tol : tol * 1e-8;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.num_elements() && bad < 5; ++i) {
    double g = got.element_as_double(i), w = want.element_as_double(i);
    if (!close(g, w, t)) {
      ++bad;
      FAIL_CHECK("element " << i << ": compiled " << g << ", interpreter " << w);
    }
  }
}

// Compiles `f` with `plans` once and checks every result and update against ir::evaluate for
// each argument set.
inline void check_against_interpreter(const ir::Function& f, const Plans& plans,
                                      const std::vector<std::vector<ir::HostTensor>>& arg_sets,
                                      double tol = 4e-6) {
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  for (const auto& args : arg_sets) {
    std::vector<ir::HostTensor> got = run_compiled(*module, f, args);
    ir::EvalResult want = ir::evaluate(f, args);
    std::vector<ir::HostTensor> expected = want.outputs;
    expected.insert(expected.end(), want.updates.begin(), want.updates.end());
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("result " << i << " of " << f.name());
      check_same(got[i], expected[i], tol);
    }
  }
}

inline void check_against_interpreter(const ir::Function& f, const Plans& plans,
                                      const std::vector<ir::HostTensor>& args, double tol = 4e-6) {
  check_against_interpreter(f, plans, std::vector<std::vector<ir::HostTensor>>{args}, tol);
}

inline void check_against_interpreter(const ir::Function& f,
                                      const std::vector<ir::HostTensor>& args, double tol = 4e-6) {
  check_against_interpreter(f, simple_plans(f), args, tol);
}

// Deterministic sample values of `type`; floats include specials (NaN, ±inf, −0, halves) when
// `specials`, integers include 0, ±1 and the extremes. u8 values are small (0..9) or anywhere in
// 0..255, with 0, 1, 127, 128 and 255 among the specials.
inline ir::HostTensor sample(const ir::TensorType& type, uint32_t seed, bool specials = true) {
  ir::HostTensor t(type);
  std::mt19937 gen(seed);
  const int64_t n = t.num_elements();
  ir::visit_dtype(type.dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        p[i] = (gen() & 1) != 0;
      } else if constexpr (std::is_floating_point_v<T>) {
        std::uniform_real_distribution<double> d(-4.0, 4.0);
        p[i] = static_cast<T>(d(gen));
        if (i % 7 == 3) p[i] = static_cast<T>(std::round(d(gen) * 2) / 2);  // halves, integers
        if (specials && i % 29 == 5) {
          const T sp[] = {std::numeric_limits<T>::quiet_NaN(),
                          std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity(),
                          T(-0.0),
                          T(0),
                          T(3e9),
                          T(-3e19)};
          p[i] = sp[(i / 29) % 7];
        }
      } else if constexpr (std::is_unsigned_v<T>) {
        std::uniform_int_distribution<int> small(0, 9), any(0, 255);
        p[i] = static_cast<T>(i % 2 == 0 ? small(gen) : any(gen));
        if (specials && i % 23 == 7) {
          const T sp[] = {T(0), T(255), T(1), T(128), T(127)};
          p[i] = sp[(i / 23) % 5];
        }
      } else {
        std::uniform_int_distribution<int64_t> d(-9, 9);
        p[i] = static_cast<T>(d(gen));
        if (specials && i % 23 == 7) {
          const T sp[] = {std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), T(0), T(-1),
                          T(1)};
          p[i] = sp[(i / 23) % 5];
        }
      }
    }
  });
  return t;
}

// Uniform f32/f64 values in [-1, 1], so that a sum of K products is off by at most about K ulps.
inline ir::HostTensor uniform(ir::DType dtype, const ir::Shape& shape, uint32_t seed) {
  ir::HostTensor t(dtype, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (dtype == ir::DType::f32)
      t.data<float>()[i] = static_cast<float>(d(gen));
    else
      t.data<double>()[i] = d(gen);
  }
  return t;
}

// Compiled and interpreted results of a sum over `depth` products agree within a bound that
// grows with the depth.
inline void check_close(const ir::HostTensor& got, const ir::HostTensor& want, int64_t depth) {
  REQUIRE(got.type() == want.type());
  const double eps = want.dtype() == ir::DType::f64 ? 1e-15 : 1e-6;
  const double tol = eps * static_cast<double>(depth + 1);
  int64_t bad = 0;
  for (int64_t i = 0; i < want.num_elements() && bad < 5; ++i) {
    const double g = got.element_as_double(i), w = want.element_as_double(i);
    if (!(std::abs(g - w) <= tol * std::max(1.0, std::abs(w)))) {
      ++bad;
      FAIL_CHECK("element " << i << ": compiled " << g << ", interpreter " << w);
    }
  }
}

}  // namespace kiln::testing
