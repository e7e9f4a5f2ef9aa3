// Internal: loops over [0, n) that run on the runtime's thread pool when they are large. The loop
// body becomes a "range" function over the kernel's buffers; small loops call it once, large
// ones hand it to kiln_rt_parallel_for through an outlined body and a context of buffer pointers.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kiln/codegen/llvm_util.h"

namespace kiln::codegen {

// Work (elements touched) below which a loop runs inline on the calling thread, and the least
// work one parallel chunk gets (so that a chunk outweighs the pool's hand-off).
inline constexpr int64_t kParallelWork = int64_t{1} << 16;
inline constexpr int64_t kChunkWork = int64_t{1} << 14;

// Emits the body of items [begin, end) with `buffers` as the range function's pointers.
using RangeBody = std::function<void(Builder& b, std::span<llvm::Value* const> buffers,
                                     llvm::Value* begin, llvm::Value* end)>;

struct ParallelLoop {
  std::string name;           // of the range function; the pool's body gets ".body" appended
  int64_t items = 0;          // the loop runs over [0, items)
  int64_t work_per_item = 1;  // elements one item touches, for the threshold and the grain
};

// Takes a loop's range function, void range(ptr buffers..., i64 begin, i64 end), instead of
// emit_parallel_loop calling it: the GPU path makes each loop a kernel of its own (gpu_module.cpp).
// `buffers` are the values the range function is meant to be called with.
using LoopSink = std::function<void(const ParallelLoop& loop, llvm::Function* range,
                                    std::span<llvm::Value* const> buffers)>;

// At b's insertion point: runs `body` over [0, loop.items). `buffers` become the range
// function's pointer arguments, marked noalias where `exclusive` says no other buffer of the
// kernel overlaps them. With a `sink`, the range function goes to it and nothing is called.
void emit_parallel_loop(Builder& b, const ParallelLoop& loop, std::span<llvm::Value* const> buffers,
                        const std::vector<bool>& exclusive, const RangeBody& body,
                        const LoopSink* sink = nullptr);

// for (i = begin; i < end; ++i) body(i), with i64 bounds known at run time.
void emit_range_loop(Builder& b, llvm::Value* begin, llvm::Value* end,
                     const std::function<void(llvm::Value*)>& body);

}  // namespace kiln::codegen
