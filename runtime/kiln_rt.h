/* The C ABI between generated code and the Kiln runtime. Plain C so that ahead-of-time
   libraries and their users need nothing else. No LLVM and no IR types here, ever. */
#ifndef KILN_RUNTIME_KILN_RT_H
#define KILN_RUNTIME_KILN_RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version of this header; generated code checks it. */
#define KILN_RT_ABI_VERSION 2
int32_t kiln_rt_abi_version(void);

/* 64-byte aligned allocation (never NULL for size 0); release with kiln_rt_free. NULL when the
   memory cannot be had, and for more bytes than the machine's memory and swap hold together. */
void* kiln_rt_alloc(size_t bytes);
void kiln_rt_free(void* ptr);

/* What a compiled function's entry receives. Buffers are dense, row-major, 64-byte aligned. */
typedef struct kiln_frame {
  void* const* inputs;  /* one per function parameter */
  void* const* outputs; /* one per function result, then one per update */
  void* workspace;      /* the compiled function's workspace (its size is known at compile time) */
  /* Run-time errors: KILN_RT_STATUS_WORDS words the caller zeroes before the call, or NULL to
     ignore them. Generated code never reads out of bounds: a gather index outside [0, dim) is
     replaced by 0 and reported here, as is a check_index element outside [0, limit) (its
     "axis size" below), and the call runs to the end. The first failure wins
     (kernels run one after another; each checks its indices in order before computing):
       status[0]  0 when all went well, else 1 + the index of the kernel that failed
       status[1]  the bad index value
       status[2]  its position (flat, row-major) in the indices operand
       status[3]  the size of the axis it indexes */
  int64_t* status;
} kiln_frame;

#define KILN_RT_STATUS_WORDS 4

/* The entry point every compiled function exports as `kiln_entry`. */
typedef void (*kiln_entry_fn)(const kiln_frame* frame);

/* Body of a parallel loop: processes iterations [begin, end). */
typedef void (*kiln_rt_loop_body)(void* context, int64_t begin, int64_t end);

/* Runs body over [0, n) on the runtime's thread pool, in chunks of at least `grain` iterations,
   and returns when all are done. Runs inline when n is small or on a pool thread. */
void kiln_rt_parallel_for(int64_t n, int64_t grain, kiln_rt_loop_body body, void* context);

/* Threads in the pool (KILN_NUM_THREADS, default: all cores). */
int32_t kiln_rt_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
