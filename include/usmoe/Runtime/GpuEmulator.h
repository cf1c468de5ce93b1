/*===- GpuEmulator.h - run usmoe's GPU kernels on the CPU ---------*- C -*-===*\
|*                                                                            *|
|* Part of the usmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * The ABI between code lowered by `convert-gpu-to-emulator` and
 * libusmoe_gpu_emulator.so, the one place where its function names and codes
 * are defined: the pass emits calls to these names, the runtime implements
 * them. No MLIR here, so the library travels on its own.
 *
 * A kernel becomes `void kernel(UsmoeEmuThread *thread, void *args)`; every
 * GPU thread runs it as a cooperative fiber. `args` points at the packed
 * kernel operands (memref descriptors and scalars, as one LLVM struct).
 * Sites (`site` parameters) are NUL-terminated "file:line:col: op" strings
 * that name the offending op in reports.
 */
#ifndef USMOE_RUNTIME_GPUEMULATOR_H
#define USMOE_RUNTIME_GPUEMULATOR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct UsmoeEmuThread UsmoeEmuThread;
typedef void (*UsmoeEmuKernel)(UsmoeEmuThread *thread, void *args);

/* What usmoe_emu_id returns: thread, block, block size, grid size (x, y, z)
 * and the lane in the warp. */
enum UsmoeEmuIdKind {
  USMOE_EMU_THREAD_X = 0,
  USMOE_EMU_BLOCK_X = 3,
  USMOE_EMU_BLOCK_DIM_X = 6,
  USMOE_EMU_GRID_DIM_X = 9,
  USMOE_EMU_LANE = 12
};

/* gpu.shuffle modes, by name (MLIR's own enum numbers them differently). */
enum UsmoeEmuShuffleMode {
  USMOE_EMU_SHFL_XOR = 0,
  USMOE_EMU_SHFL_UP = 1,
  USMOE_EMU_SHFL_DOWN = 2,
  USMOE_EMU_SHFL_IDX = 3
};

/* Memory access kinds (bit flags) for usmoe_emu_access. */
enum UsmoeEmuAccess {
  USMOE_EMU_READ = 1,
  USMOE_EMU_WRITE = 2,
  USMOE_EMU_ATOMIC = 4, /* with READ | WRITE: an atomic read-modify-write */
  USMOE_EMU_SHARED = 8  /* workgroup memory (else global) */
};

/* Host side: runs `kernel` on a grid, block by block, after checking the
 * launch shape. `shared_bytes` is the block's static workgroup memory. After
 * a failure (see usmoe_emu_failed) further launches do nothing. */
void usmoe_emu_launch(UsmoeEmuKernel kernel, void *args, const char *name,
                      const char *site, int64_t grid_x, int64_t grid_y,
                      int64_t grid_z, int64_t block_x, int64_t block_y,
                      int64_t block_z, int64_t shared_bytes);

/* Host side: fills a fresh device allocation of `bytes` at `address` with
 * kUsmoeEmuPoisonByte, as a GPU's allocator leaves whatever was there: a
 * kernel that reads memory nobody wrote (a counter never zeroed) gets
 * garbage, not the zeros of a fresh host page. */
void usmoe_emu_poison(int64_t address, int64_t bytes);
#define kUsmoeEmuPoisonByte 0xA5

/* Kernel side. */
int64_t usmoe_emu_id(UsmoeEmuThread *thread, int32_t kind);
/* The block's workgroup memory (16-byte aligned). */
void *usmoe_emu_shared_memory(UsmoeEmuThread *thread);
void usmoe_emu_barrier(UsmoeEmuThread *thread, const char *site);
/* Returns the value in the low 32 bits and `valid` in bit 32. */
int64_t usmoe_emu_shuffle(UsmoeEmuThread *thread, int32_t value, int32_t offset,
                          int32_t width, int32_t mode, const char *site);
/* nvgpu.mma.sync with mmaShape [16, 8, 16] (f16 or bf16 operands, f32
 * accumulators), the fragment layout of PTX mma.m16n8k16: each lane hands in
 * its fragment elements as f32 (A at 0-7, B at 8-11, C at 12-15, in the
 * row-major order of nvgpu's vector<4x2>, <2x2> and <2x2> operands), waits
 * until all 32 lanes of its warp are at the same mma, then reads D's four
 * elements (0-3). */
void usmoe_emu_mma_operand(UsmoeEmuThread *thread, int32_t index, float value);
void usmoe_emu_mma_sync(UsmoeEmuThread *thread, const char *site);
float usmoe_emu_mma_result(UsmoeEmuThread *thread, int32_t index);
/* Called before every load, store and atomic of `bytes` at `address`. */
void usmoe_emu_access(UsmoeEmuThread *thread, int64_t address, int64_t bytes,
                      int32_t kind, const char *site);
/* Called instead of an access whose index is outside [0, size); never
 * returns to the kernel. */
void usmoe_emu_out_of_bounds(UsmoeEmuThread *thread, int64_t index,
                             int64_t size, int64_t dim, const char *site);

/* Errors. By default each is printed to stderr when it happens (for
 * mlir-runner); embedders switch that off and take them instead. */
void usmoe_emu_set_print_errors(int print);
/* Non-zero when a launch on this OS thread failed since the last clear. */
int usmoe_emu_failed(void);
/* The first failure's report ("" if none). */
const char *usmoe_emu_last_error(void);
void usmoe_emu_clear_error(void);
/* Calls `function(args)` (an MLIR packed-interface function) so that a
 * failed launch inside it ends the call right there: 0 when it returned,
 * non-zero when a launch failed (the report is in usmoe_emu_last_error;
 * what the call allocated before is not freed). Without it, a failed
 * launch returns and later launches of the call do nothing. */
int usmoe_emu_guarded_call(void (*function)(void **), void **args);
/* Launches, blocks and context switches on this OS thread so far. */
void usmoe_emu_counters(int64_t *launches, int64_t *blocks, int64_t *switches);

#ifdef __cplusplus
}
#endif

#endif /* USMOE_RUNTIME_GPUEMULATOR_H */
