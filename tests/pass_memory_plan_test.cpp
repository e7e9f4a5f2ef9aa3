#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <unordered_map>

#include "kiln/ir/error.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "pass_test_util.h"

namespace {
using kiln::passes::MemoryPlan;
using kiln::passes::Slot;

// Plans kernels and memory for `ir`, checks the plan and returns it as text.
std::string memory_text(const std::string& ir, bool fuse = true) {
  kiln::ir::Function f = kiln::ir::parse(ir);
  auto kernels = kiln::passes::plan_kernels(f, {.fuse = fuse});
  MemoryPlan memory = kiln::passes::plan_memory(f, kernels);
  kiln::passes::check_memory_plan(f, kernels, memory);
  return kiln::passes::print_memory_plan(f, kernels, memory);
}
}  // namespace

TEST_CASE("memory plan writes results straight into output slots", "[passes][memory_plan]") {
  CHECK(memory_text(R"(func @f(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %1 = mul(%0, %x) : f32[4]
  %2 = mul(%1, %x) : f32[4]
  return %2
})") == R"(workspace 0 bytes
kernel 0: %2 output 0 (16 bytes)
)");
}

TEST_CASE("memory plan works in place when an input dies at a loop of its shape",
          "[passes][memory_plan]") {
  CHECK(memory_text(R"(func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  %1 = neg(%0) : f32[4]
  %2 = abs(%1) : f32[4]
  %3 = sqrt(%2) : f32[4]
  return %3
})",
                    false) == R"(workspace 64 bytes
kernel 0: %0 workspace+0 (16 bytes)
kernel 1: %1 workspace+0 (16 bytes, in place of %0)
kernel 2: %2 workspace+0 (16 bytes, in place of %1)
kernel 3: %3 output 0 (16 bytes)
)");
  // i32 and f32 have the same element size: a cast may reuse its input; f64 may not.
  CHECK(memory_text(R"(func @f(%x: f32[4]) -> f64[4] {
  %0 = exp(%x) : f32[4]
  %1 = cast(%0) {dtype = i32} : i32[4]
  %2 = cast(%1) {dtype = f64} : f64[4]
  %3 = sqrt(%2) : f64[4]
  return %3
})",
                    false) == R"(workspace 128 bytes
kernel 0: %0 workspace+0 (16 bytes)
kernel 1: %1 workspace+0 (16 bytes, in place of %0)
kernel 2: %2 workspace+64 (32 bytes)
kernel 3: %3 output 0 (32 bytes)
)");
}

TEST_CASE("memory plan reuses the blocks of dead values and never of live ones",
          "[passes][memory_plan]") {
  // %0 stays live until the add reads it; %2 cannot overlap %1, which its transpose reads (not
  // a loop, so never in place); %3 takes the block %1 left.
  CHECK(memory_text(R"(func @f(%x: f32[8,8]) -> f32[8,8] {
  %0 = exp(%x) : f32[8,8]
  %1 = transpose(%0) {perm = [1, 0]} : f32[8,8]
  %2 = transpose(%1) {perm = [1, 0]} : f32[8,8]
  %3 = transpose(%2) {perm = [1, 0]} : f32[8,8]
  %4 = add(%0, %3) : f32[8,8]
  return %4
})") == R"(workspace 768 bytes
kernel 0: %0 workspace+0 (256 bytes)
kernel 1: %1 workspace+256 (256 bytes)
kernel 2: %2 workspace+512 (256 bytes)
kernel 3: %3 workspace+256 (256 bytes)
kernel 4: %4 output 0 (256 bytes)
)");
}

TEST_CASE("memory plan copies parameters, constants and repeated values into outputs",
          "[passes][memory_plan]") {
  CHECK(memory_text(R"(func @f(%x: f32[2], %w: f32[2]) -> (f32[2], f32[2], f32[2], f32[]) {
  %0 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %1 = add(%x, %w) : f32[2]
  return %x, %1, %1, %0
  update %w = %1
})") == R"(workspace 0 bytes
kernel 0: %1 output 1 (8 bytes)
copy output 0 <- %x (8 bytes)
copy output 2 <- %1 (8 bytes)
copy output 3 <- %0 (4 bytes)
copy output 4 <- %1 (8 bytes)
)");
}

TEST_CASE("memory plan gives zero-size values no bytes and unread results a block",
          "[passes][memory_plan]") {
  CHECK(memory_text(R"(func @f(%x: f32[0,3], %y: f32[3]) -> f32[0,3] {
  %0 = exp(%x) : f32[0,3]
  %1 = neg(%0) : f32[0,3]
  %2, %3 = split(%y) {axis = 0, sizes = [1, 2]} : f32[1], f32[2]
  return %1
})",
                    false) == R"(workspace 128 bytes
kernel 0: %0 workspace+0 (0 bytes)
kernel 1: %1 output 0 (0 bytes)
kernel 2: %2 workspace+0 (4 bytes), %3 workspace+64 (8 bytes)
)");
}

TEST_CASE("the memory plan checker rejects overlapping live values", "[passes][memory_plan]") {
  kiln::ir::Function f = kiln::ir::parse(R"(func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  %1 = transpose(%0) {perm = [0]} : f32[4]
  %2 = add(%0, %1) : f32[4]
  return %2
})");
  auto kernels = kiln::passes::plan_kernels(f, {.fuse = false});
  MemoryPlan memory = kiln::passes::plan_memory(f, kernels);
  kiln::passes::check_memory_plan(f, kernels, memory);
  const kiln::ir::Value* v0 = f.nodes()[0]->output();
  const kiln::ir::Value* v1 = f.nodes()[1]->output();
  CHECK(memory.slots.at(v0).offset != memory.slots.at(v1).offset);

  MemoryPlan broken = memory;
  broken.slots.at(v1).offset = broken.slots.at(v0).offset;
  CHECK_THROWS_AS(kiln::passes::check_memory_plan(f, kernels, broken), kiln::InternalError);
  CHECK_THROWS_WITH(kiln::passes::check_memory_plan(f, kernels, broken),
                    Catch::Contains("two live workspace values overlap"));
  broken = memory;
  broken.slots.at(v1).offset = 32;
  CHECK_THROWS_WITH(kiln::passes::check_memory_plan(f, kernels, broken),
                    Catch::Contains("unaligned"));
  broken = memory;
  broken.workspace_bytes = 64;
  CHECK_THROWS_WITH(kiln::passes::check_memory_plan(f, kernels, broken),
                    Catch::Contains("past workspace_bytes"));
}

namespace {
using kiln::ir::HostTensor;
using kiln::ir::Value;

// A random well-typed function over values of shapes [3,4], [4] and [3,1] (all broadcast to
// [3,4]): elementwise ops, reductions, a transpose pair and matmul.
kiln::ir::Function random_function(unsigned seed) {
  std::mt19937 rng(seed);
  kiln::ir::Function f("random");
  using kiln::ir::Op;
  auto f32 = [](kiln::ir::Shape s) { return kiln::ir::TensorType{kiln::ir::DType::f32, s}; };
  std::vector<Value*> pool{f.add_param(f32({3, 4}), "x"), f.add_param(f32({4}), "b"),
                           f.add_param(f32({3, 1}), "c")};
  Value* w = f.add_param(f32({4, 4}), "w");
  auto pick = [&] { return pool[rng() % pool.size()]; };
  auto full = [&] {
    for (size_t i = pool.size(); i-- > 0;)
      if (pool[i]->type().shape == kiln::ir::Shape{3, 4} && rng() % 2 == 0) return pool[i];
    return pool[0];
  };
  const Op unary[] = {Op::neg, Op::abs, Op::tanh, Op::relu};
  const Op binary[] = {Op::add, Op::mul, Op::sub, Op::maximum};
  for (int step = 0; step < 12; ++step) {
    kiln::ir::Attrs attrs;
    switch (rng() % 6) {
      case 0:
        pool.push_back(f.append(unary[rng() % 4], {pick()})->output());
        break;
      case 1:
      case 2:
        pool.push_back(f.append(binary[rng() % 4], {pick(), pick()})->output());
        break;
      case 3:
        attrs.set_ints("axes", {1}).set_bool("keepdims", true);
        pool.push_back(f.append(Op::reduce_sum, {full()}, attrs)->output());
        break;
      case 4: {
        attrs.set_ints("perm", {1, 0});
        Value* t = f.append(Op::transpose, {full()}, attrs)->output();
        pool.push_back(f.append(Op::transpose, {t}, attrs)->output());
        break;
      }
      default:
        pool.push_back(f.append(Op::matmul, {full(), w})->output());
    }
  }
  f.set_outputs({pool.back(), pick(), pool[pool.size() - 2]});
  f.add_update(pool[0], full());
  return f;
}

// Runs the kernels one by one as codegen would, every value read from and written to the slot
// the memory plan gave it, so a value overwritten while still live gives wrong results.
kiln::ir::EvalResult run_planned(const kiln::ir::Function& f, const kiln::passes::KernelPlan& plan,
                                 const kiln::passes::MemoryPlan& memory,
                                 std::span<const HostTensor> args) {
  std::vector<std::byte> workspace(static_cast<size_t>(memory.workspace_bytes));
  size_t num_outputs = f.outputs().size() + f.updates().size();
  std::vector<HostTensor> outputs;
  for (size_t i = 0; i < num_outputs; ++i)
    outputs.emplace_back(i < f.outputs().size()
                             ? f.outputs()[i]->type()
                             : f.updates()[i - f.outputs().size()].value->type());
  auto storage = [&](const Value* v) -> std::byte* {
    const Slot& s = memory.slots.at(v);
    switch (s.kind) {
      case Slot::Kind::param:
        return const_cast<std::byte*>(args[static_cast<size_t>(s.index)].raw());
      case Slot::Kind::output:
        return outputs[static_cast<size_t>(s.index)].raw();
      case Slot::Kind::workspace:
        return workspace.data() + s.offset;
      case Slot::Kind::constant:
        return const_cast<std::byte*>(v->producer()->attrs().get_tensor("value").raw());
    }
    return nullptr;
  };
  for (const auto& kernel : plan.kernels) {
    std::unordered_map<const Value*, HostTensor> values;
    for (const Value* v : kernel.inputs) {
      HostTensor t(v->type());
      std::memcpy(t.raw(), storage(v), t.nbytes());
      values[v] = t;
    }
    for (const kiln::ir::Node* n : kernel.nodes) {
      std::vector<HostTensor> in;
      for (const Value* v : n->inputs())
        in.push_back(values.at(v));
      auto out = kiln::ir::run_op(n->op(), in, n->attrs(), n->output_types());
      for (size_t o = 0; o < out.size(); ++o)
        values[n->output(o)] = out[o];
    }
    for (const Value* v : kernel.outputs)
      std::memcpy(storage(v), values.at(v).raw(), values.at(v).nbytes());
  }
  for (const auto& copy : memory.copies)
    std::memcpy(outputs[static_cast<size_t>(copy.output_index)].raw(), storage(copy.value),
                static_cast<size_t>(copy.bytes));
  kiln::ir::EvalResult result;
  for (size_t i = 0; i < num_outputs; ++i)
    (i < f.outputs().size() ? result.outputs : result.updates).push_back(outputs[i]);
  return result;
}
}  // namespace

TEST_CASE("random functions run from their kernel and memory plans give the interpreter's values",
          "[passes][memory_plan]") {
  size_t in_place = 0, fused = 0;
  for (unsigned seed = 1; seed <= 60; ++seed) {
    kiln::ir::Function f = random_function(seed);
    INFO("seed " << seed << "\n" << kiln::ir::print(f));
    for (bool fuse : {false, true}) {
      auto kernels = kiln::passes::plan_kernels(f, {.fuse = fuse});
      MemoryPlan memory = kiln::passes::plan_memory(f, kernels);
      INFO(kiln::passes::print_plan(f, kernels)
           << kiln::passes::print_memory_plan(f, kernels, memory));
      REQUIRE_NOTHROW(kiln::passes::check_memory_plan(f, kernels, memory));
      in_place += memory.in_place.size();
      for (const auto& k : kernels.kernels)
        fused += k.nodes.size() > 1;
      auto args = kiln::testing::random_args(f, seed);
      auto want = kiln::ir::evaluate(f, args);
      auto got = run_planned(f, kernels, memory, args);
      for (size_t i = 0; i < want.outputs.size(); ++i)
        kiln::testing::check_same(want.outputs[i], got.outputs[i]);
      for (size_t i = 0; i < want.updates.size(); ++i)
        kiln::testing::check_same(want.updates[i], got.updates[i]);
    }
  }
  // The generator exercises what it is meant to.
  CHECK(in_place > 20);
  CHECK(fused > 20);
}

TEST_CASE("a reshape of a value that dies there takes its block and moves no bytes",
          "[passes][memory_plan]") {
  const std::string ir = R"(func @f(%x: f32[2,3], %y: f32[2,3]) -> (f32[3,2], f32[6]) {
  %0 = concat(%x, %y) {axis = 0} : f32[4,3]
  %1 = reshape(%0) {shape = [3, 4]} : f32[3,4]
  %2 = reshape(%1) {shape = [12]} : f32[12]
  %3 = slice(%2) {begin = [0], end = [6], strides = [1]} : f32[6]
  %4 = add(%x, %y) : f32[2,3]
  %5 = reshape(%4) {shape = [3, 2]} : f32[3,2]
  %6 = exp(%4) : f32[2,3]
  %7 = reshape(%6) {shape = [6]} : f32[6]
  %8 = add(%7, %3) : f32[6]
  return %5, %8
})";
  kiln::ir::Function f = kiln::ir::parse(ir);
  auto kernels = kiln::passes::plan_kernels(f, {.fuse = false});
  MemoryPlan memory = kiln::passes::plan_memory(f, kernels);
  kiln::passes::check_memory_plan(f, kernels, memory);
  size_t views = 0;
  for (const auto& kernel : kernels.kernels)
    views += kiln::passes::is_view_in_place(kernel, memory) ? 1 : 0;
  // %1 and %2 reuse the concat's block; %5 is a result (an output slot, copied), and %4 lives
  // on in %6, so neither of those reshapes is a view; %7 is (%6 dies there).
  CHECK(views == 3);
  CHECK(memory.in_place.at(f.nodes()[1]->output()) == f.nodes()[0]->output());
  CHECK(memory.in_place.at(f.nodes()[2]->output()) == f.nodes()[1]->output());
}

TEST_CASE("a reshape of a parameter is a view of the caller's buffer", "[passes][memory_plan]") {
  // %0 views %x; exp reads it as its last use but must not take its (non-workspace) bytes, and
  // the blocks of %1 and %2 (live together) must not overlap anything else.
  const std::string ir = R"(func @f(%x: f32[2,3], %y: f32[6]) -> (f32[6], f32[3,2]) {
  %0 = reshape(%x) {shape = [6]} : f32[6]
  %1 = exp(%0) : f32[6]
  %2 = add(%1, %y) : f32[6]
  %3 = transpose(%x) {perm = [1, 0]} : f32[3,2]
  %4 = mul(%2, %1) : f32[6]
  return %4, %3
})";
  kiln::ir::Function f = kiln::ir::parse(ir);
  auto kernels = kiln::passes::plan_kernels(f, {.fuse = false});
  MemoryPlan memory = kiln::passes::plan_memory(f, kernels);
  kiln::passes::check_memory_plan(f, kernels, memory);
  const Slot& view = memory.slots.at(f.nodes()[0]->output());
  CHECK(view.kind == Slot::Kind::param);
  CHECK(view.index == 0);
  CHECK(kiln::passes::is_view_in_place(kernels.kernels.front(), memory));
  CHECK_FALSE(memory.in_place.contains(f.nodes()[1]->output()));
  auto args = kiln::testing::random_args(f, 7);
  auto want = kiln::ir::evaluate(f, args);
  auto got = run_planned(f, kernels, memory, args);
  for (size_t i = 0; i < want.outputs.size(); ++i)
    kiln::testing::check_same(want.outputs[i], got.outputs[i]);
}
