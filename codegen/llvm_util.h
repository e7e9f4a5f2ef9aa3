// Internal: small LLVM IR building helpers shared by the codegen emitters.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include <llvm/IR/IRBuilder.h>

#include "kiln/ir/types.h"

namespace kiln::codegen {

using Builder = llvm::IRBuilder<>;

// The target's vector registers: their width in bytes and how many there are (AVX-512: 64 and
// 32; AVX2: 32 and 16). The GEMM's blocking is chosen for them.
struct VectorUnit {
  int64_t bytes = 16;
  int64_t registers = 16;
};

// The type a value of `dtype` has in registers (bool is i1).
llvm::Type* scalar_type(llvm::LLVMContext& context, ir::DType dtype);
// The type an element of `dtype` has in memory (bool is i8 holding 0 or 1).
llvm::Type* storage_type(llvm::LLVMContext& context, ir::DType dtype);

// base[offset] as a register value (bool loads become i1).
llvm::Value* load_element(Builder& b, ir::DType dtype, llvm::Value* base, llvm::Value* offset);
// base[offset] = value (an i1 bool is stored as 0 or 1).
void store_element(Builder& b, ir::DType dtype, llvm::Value* base, llvm::Value* offset,
                   llvm::Value* value);

// Σ index[d] · strides[d] as an i64 (constant strides fold away).
llvm::Value* linear_offset(Builder& b, std::span<llvm::Value* const> index,
                           std::span<const int64_t> strides);

// Emits `for (i = 0; i < n; ++i) body(i)` with an i64 counter; nothing when n is 0 and the
// body alone (i = 0) when n is 1. Leaves the builder after the loop.
void emit_for(Builder& b, int64_t n, const std::function<void(llvm::Value*)>& body);

// An alloca in the function's entry block (promoted to registers by the optimizer).
llvm::AllocaInst* entry_alloca(Builder& b, llvm::Type* type, const char* name);

// Turns `fn` (a definition or not) into an external declaration: its code comes from another
// object linked beside this module's.
void make_external_declaration(llvm::Function& fn);

// A call to an overloaded LLVM intrinsic on the type of `args[0]`.
llvm::Value* call_intrinsic(Builder& b, llvm::Intrinsic::ID id, std::span<llvm::Value* const> args);
// A call to an external C function (e.g. libm's tanhf) taking and returning `type`.
llvm::Value* call_libm(Builder& b, const char* name, llvm::Type* type,
                       std::span<llvm::Value* const> args);

}  // namespace kiln::codegen
