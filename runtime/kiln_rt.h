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
#define KILN_RT_ABI_VERSION 1
int32_t kiln_rt_abi_version(void);

/* 64-byte aligned allocation (never NULL for size 0); release with kiln_rt_free. */
void* kiln_rt_alloc(size_t bytes);
void kiln_rt_free(void* ptr);

#ifdef __cplusplus
}
#endif

#endif
