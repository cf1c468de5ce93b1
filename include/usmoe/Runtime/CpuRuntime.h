/*===- CpuRuntime.h - CPU kernels lowered code calls --------------*- C -*-===*\
|*                                                                            *|
|* Part of the usmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * libusmoe_cpu_runtime.so: the CPU work that code lowered with
 * convert-moe-to-loops{expert-gemm=onednn} hands to a tuned library instead
 * of generating loops. No MLIR; it links Debian's oneDNN (libdnnl), which
 * runs its GEMMs on every core with the instruction set it detects
 * (AVX-512, AVX-512 BF16, AMX).
 *
 * The functions take MLIR's C-interface memref descriptors (what
 * `llvm.emit_c_interface` passes: a pointer to {allocated, aligned, offset,
 * sizes[rank], strides[rank]}) and return 0 on success; a failure is
 * printed to stderr and reported as a non-zero status, which the lowered
 * code turns into its run-time check failure.
 */
#ifndef USMOE_RUNTIME_CPURUNTIME_H
#define USMOE_RUNTIME_CPURUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A memref descriptor of rank 1, 2 or 3 (element type erased). */
typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} UsmoeMemref1D;
typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
} UsmoeMemref2D;
typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];
} UsmoeMemref3D;

/* moe.expert_ffn on the CPU: for each expert e, rows offsets[e] ..
 * offsets[e+1] of x [M, D] (contiguous, of the weights' type) go through
 * out = (silu(x W1[e]) * (x W3[e])) W2[e] into out [M, D] (f32,
 * contiguous). Weights: [E, D, F] / [E, F, D] (W2) for layout 0 (in_out),
 * [E, F, D] / [E, D, F] for layout 1 (out_in), any outer strides, unit
 * innermost stride. The GEMMs accumulate in f32; for bf16 the SwiGLU
 * intermediate is rounded to bf16 before the second GEMM (the spec allows
 * it). offsets: E + 1 int32, checked by the caller. */
int32_t _mlir_ciface_usmoe_cpu_expert_ffn_f32(
    UsmoeMemref2D *x, UsmoeMemref1D *offsets, UsmoeMemref3D *w1,
    UsmoeMemref3D *w3, UsmoeMemref3D *w2, UsmoeMemref2D *out, int32_t layout);
int32_t _mlir_ciface_usmoe_cpu_expert_ffn_bf16(
    UsmoeMemref2D *x, UsmoeMemref1D *offsets, UsmoeMemref3D *w1,
    UsmoeMemref3D *w3, UsmoeMemref3D *w2, UsmoeMemref2D *out, int32_t layout);

/* The number of threads the runtime's GEMMs use (0: the OpenMP default,
 * OMP_NUM_THREADS or every core). Results do not depend on it. */
void usmoe_cpu_set_num_threads(int32_t threads);
int32_t usmoe_cpu_get_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* USMOE_RUNTIME_CPURUNTIME_H */
