#include "kiln/codegen/generic_gemm.h"

#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <tuple>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gemm.h"
#include "kiln/runtime/kiln_rt.h"

namespace kiln::codegen {

namespace {

// A compiled part function, by (dtype, config, transposes, unpacked A).
using VariantKey = std::tuple<ir::DType, std::string, bool, bool, bool>;

struct Variants {
  std::mutex mutex;
  std::map<VariantKey, KernelJit::Symbol> compiled;
};

Variants& variants() {
  static Variants* v = new Variants();  // never destroyed: code may run during exit
  return *v;
}

}  // namespace

bool generic_gemm_handles(ir::DType dtype, int64_t m, int64_t n, int64_t k) {
  if (dtype != ir::DType::f32 && dtype != ir::DType::f64) return false;
  return m * n * std::max<int64_t>(k, 1) >= kGemmMinWork;
}

void run_generic_gemm(KernelJit& jit, ir::DType dtype, bool transpose_a, bool transpose_b,
                      int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c) {
  if (m == 0 || n == 0) return;
  Variants& v = variants();
  ir::MatmulDims dims;
  dims.m = m;
  dims.n = n;
  dims.k = k;
  dims.transpose_a = transpose_a;
  dims.transpose_b = transpose_b;
  GemmSchedule schedule;
  void* part = nullptr;
  {
    std::unique_lock lock(v.mutex);
    schedule = schedule_gemm(dtype, dims, jit.vector_unit());
    const VariantKey key{dtype, schedule.config.tag(), transpose_a, transpose_b,
                         schedule.unpacked_a};
    auto it = v.compiled.find(key);
    if (it == v.compiled.end()) {
      lock.unlock();
      const std::string symbol =
          fmt::format("gemm_generic_{}{}{}{}", schedule.config.tag(), transpose_a ? "_ta" : "",
                      transpose_b ? "_tb" : "", schedule.unpacked_a ? "_ua" : "");
      KernelJit::Symbol compiled = jit.compile_module(
          symbol,
          [&](llvm::Module& module, const VectorUnit&) {
            llvm::Function* fn = gemm_part_function(module, schedule.config, transpose_a,
                                                    transpose_b, schedule.unpacked_a);
            fn->setLinkage(llvm::GlobalValue::ExternalLinkage);
            fn->setName(symbol);
          },
          // The part function is vectorized by its builder: the light pipeline compiles it in a
          // third of the time, and its code is as fast (faster for K = 10).
          symbol, LlvmPipeline::light);
      lock.lock();
      it = v.compiled.try_emplace(key, std::move(compiled)).first;
    }
    part = it->second.address;
  }
  // What emit_driver computes at compile time, for these sizes: one part per thread, or the
  // calling thread alone for a small problem.
  const int64_t parts = schedule.split_n ? schedule.col_panels : schedule.row_panels;
  int64_t grain = parts;
  if (m * n * std::max<int64_t>(k, 1) >= kGemmParallelWork) {
    const int64_t threads = std::max<int32_t>(kiln_rt_num_threads(), 1);
    grain = (parts + threads - 1) / threads;
  }
  GemmContext context{a,
                      b,
                      c,
                      c,
                      c,
                      nullptr,
                      nullptr,
                      m,
                      n,
                      k,
                      schedule.split_n ? 1 : 0,
                      schedule.k_blocks,
                      schedule.kc,
                      0};
  kiln_rt_parallel_for(parts, grain, reinterpret_cast<kiln_rt_loop_body>(part), &context);
}

int64_t generic_gemm_variants() {
  Variants& v = variants();
  std::lock_guard lock(v.mutex);
  return static_cast<int64_t>(v.compiled.size());
}

}  // namespace kiln::codegen
