#include <catch2/catch.hpp>

#include "kiln/ir/op.h"
#include "kiln/runtime/kiln_rt.h"

TEST_CASE("runtime allocates 64-byte aligned buffers", "[runtime]") {
  CHECK(kiln_rt_abi_version() == KILN_RT_ABI_VERSION);
  for (size_t n : {0, 1, 63, 64, 1000}) {
    void* p = kiln_rt_alloc(n);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    kiln_rt_free(p);
  }
}

TEST_CASE("op table is generated from ops.def", "[ir]") {
  using kiln::ir::Op;
  CHECK(kiln::ir::op_name(Op::add) == "add");
  CHECK(kiln::ir::op_from_name("reduce_sum") == Op::reduce_sum);
  CHECK_FALSE(kiln::ir::op_from_name("nope").has_value());
  CHECK(kiln::ir::op_num_inputs(Op::select) == 3);
  CHECK(kiln::ir::op_num_inputs(Op::concat) == -1);
  CHECK(kiln::ir::has_trait(Op::add, kiln::ir::kCommutative));
  CHECK_FALSE(kiln::ir::has_trait(Op::sub, kiln::ir::kCommutative));
  // The dtype class and the comparison trait, which the elementwise rule and tests read.
  using kiln::ir::DType;
  using kiln::ir::DTypes;
  CHECK(kiln::ir::op_dtypes(Op::exp) == DTypes::floating);
  CHECK(kiln::ir::op_dtypes(Op::equal) == DTypes::numeric_or_bool);
  CHECK(kiln::ir::op_dtypes(Op::matmul) == DTypes::by_rule);
  CHECK(kiln::ir::has_trait(Op::less, kiln::ir::kComparison));
  CHECK_FALSE(kiln::ir::has_trait(Op::logical_and, kiln::ir::kComparison));
  CHECK(kiln::ir::dtypes_admit(DTypes::numeric, DType::u8));
  CHECK_FALSE(kiln::ir::dtypes_admit(DTypes::numeric, DType::boolean));
  CHECK_FALSE(kiln::ir::dtypes_admit(DTypes::floating, DType::i32));
  CHECK(kiln::ir::dtypes_text(DTypes::floating) == "a floating dtype (f32, f64)");
}
