/* The model instance behind every ahead-of-time library (`kiln aot`, kiln::aot::compile).
   A library's generated glue describes its compiled function with a kiln_aot_desc and forwards
   NAME_create / NAME_run / ... to the functions below, which live in the static runtime linked
   into the library. Plain C, no LLVM, no IR, no allocation in kiln_aot_run once created.

   The compiled function's parameters are the caller's inputs followed by the model's state
   (weights, and for a training step also optimizer slots and counters): the state lives in the
   instance, initialised from the weights embedded in the library or from a safetensors file,
   and each run applies the function's updates to it. */
#ifndef KILN_RUNTIME_AOT_MODEL_H
#define KILN_RUNTIME_AOT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/runtime/kiln_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of kiln_aot_desc's layout; kiln_aot_create refuses a descriptor of another. */
#define KILN_AOT_ABI_VERSION 2

/* Element types. Numbered as kiln::ir::DType, which frontend/formats/runtime_dtype.cpp checks code
   by code with static_asserts; the numbers are part of the ABI and never change. */
enum {
  KILN_AOT_F32 = 0,
  KILN_AOT_F64 = 1,
  KILN_AOT_I32 = 2,
  KILN_AOT_I64 = 3,
  KILN_AOT_BOOL = 4, /* one byte per element, 0 or 1 */
  KILN_AOT_U8 = 5
};

/* One input, output or state tensor: dense, row-major. */
typedef struct kiln_aot_tensor {
  const char* name; /* state: the name in safetensors files; inputs/outputs: for messages */
  int32_t dtype;    /* KILN_AOT_* */
  int32_t rank;
  const int64_t* shape; /* `rank` sizes */
  int64_t bytes;        /* elements × element size */
  int64_t offset;       /* state only: byte offset in the embedded weights (a multiple of 64) */
} kiln_aot_tensor;

/* What the glue knows of its compiled function. */
typedef struct kiln_aot_desc {
  int32_t abi_version; /* KILN_AOT_ABI_VERSION */
  const char* name;    /* the library's name, for messages */
  kiln_entry_fn entry;
  int64_t workspace_bytes;
  int32_t num_inputs;
  const kiln_aot_tensor* inputs;
  int32_t num_outputs;
  const kiln_aot_tensor* outputs;
  int32_t num_state;
  const kiln_aot_tensor* state;
  int32_t num_updates;
  const int32_t* update_state; /* for each update (in kiln_frame order), the state it writes */
  const void* weights;         /* the embedded state, 64-byte aligned; NULL when not embedded */
  int64_t weights_bytes;
  /* check_numerics values: the entry writes them after the outputs (before the updates); a run
     in which one holds NaN or Inf fails, naming the check, and applies no update. Each name is
     the check's message. */
  int32_t num_checks;
  const kiln_aot_tensor* checks;
} kiln_aot_desc;

typedef struct kiln_aot_model kiln_aot_model;

/* What the glue of a library for NVIDIA GPUs (kiln aot --device cuda) adds to its kiln_aot_desc,
   whose entry is then NULL: the kernels and the order to run them in. */
typedef struct kiln_aot_cuda_desc {
  const void* fatbin; /* cubins per architecture plus PTX (fatbinary's output) */
  int64_t fatbin_bytes;
  const void* plan; /* the launch plan, as runtime/cuda/launch_plan_blob.h writes it */
  int64_t plan_bytes;
  const char* gpu_arch; /* the architectures it was built for, "sm_80,sm_90", for messages */
} kiln_aot_cuda_desc;

/* A new instance. `weights_path` NULL: the state comes from desc->weights (an error when the
   library embeds none and has state). Otherwise from that safetensors file, which must hold
   exactly the state tensors by name, with their dtypes and shapes. Returns NULL on failure;
   kiln_aot_last_error(NULL) then says why (per thread). */
kiln_aot_model* kiln_aot_create(const kiln_aot_desc* desc, const char* weights_path);

/* A new instance on GPU `device` (an ordinal, 0 for the first) of a library for NVIDIA GPUs:
   the CUDA driver is loaded (dlopen, never linked), the device's primary context retained, the
   kernels loaded and the state (from the embedded weights or `weights_path`, as
   kiln_aot_create) copied into device memory, where it stays. Returns NULL when there is no
   usable driver or device, memory runs out, or cuBLASLt is needed and missing; then
   kiln_aot_last_error(NULL) says why. */
kiln_aot_model* kiln_aot_create_cuda(const kiln_aot_desc* desc, const kiln_aot_cuda_desc* cuda,
                                     const char* weights_path, int32_t device);

/* Runs the function once: `inputs` holds desc->num_inputs pointers, `outputs` desc->num_outputs
   pointers, each to a dense buffer of the tensor's size (any alignment; aligned to 64 bytes
   avoids a copy). Then applies the updates to the state. Returns 0 on success, non-zero on
   failure (NULL pointers, an out-of-range gather index, a check_numerics value that is not
   finite) with kiln_aot_last_error(model) set; a failed run applies no update.
   One instance runs one call at a time; separate instances may run concurrently. */
int kiln_aot_run(kiln_aot_model* model, const void* const* inputs, void* const* outputs);

/* kiln_aot_run for a GPU instance (kiln_aot_create_cuda) with device memory: `inputs` and
   `outputs` hold device addresses (CUdeviceptr) of the instance's device, one per input and one
   per output; 0 only for a tensor of no elements. Returns when the outputs are written; 0 on
   success. kiln_aot_run on a GPU instance takes host memory and copies it in and out. */
int kiln_aot_run_device(kiln_aot_model* model, const uint64_t* inputs, const uint64_t* outputs);

/* The last error on `model`, or for NULL the last error on this thread of a call that had no
   model (a failed kiln_aot_create, a NULL model, kiln_aot_set_num_threads); "" when there was
   none. Errors are not cleared by later successful calls (like errno). Valid until the next
   call on the same model (or thread). */
const char* kiln_aot_last_error(const kiln_aot_model* model);

/* Writes the current state to a safetensors file (written to a temporary file, then renamed):
   the weights after training, loadable with kiln_aot_create and kiln::safetensors::load.
   Returns 0 on success. */
int kiln_aot_save_weights(kiln_aot_model* model, const char* path);

/* Read-only view of state tensor `index` (0 <= index < desc->num_state), or NULL. On a GPU
   instance, a host copy made by this call (valid until the next call on the model), or NULL when
   the copy fails. */
const void* kiln_aot_state(const kiln_aot_model* model, int32_t index);

/* Frees the instance; NULL is ignored. */
void kiln_aot_destroy(kiln_aot_model* model);

/* Sets the number of threads the library's generated code uses, before its first run (later,
   only the current count succeeds). Returns 0 on success. Without a call: KILN_NUM_THREADS,
   else all cores. */
int kiln_aot_set_num_threads(int32_t num_threads);

#ifdef __cplusplus
}
#endif

#endif
