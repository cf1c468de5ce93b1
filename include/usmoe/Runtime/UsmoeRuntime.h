/*===- UsmoeRuntime.h - CUDA driver runtime for usmoe kernels -----*- C -*-===*\
|*                                                                            *|
|* Part of the usmoe project, under the Apache License v2.0 with LLVM         *|
|* Exceptions.                                                                *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * A small C API to load the PTX / cubin / fatbin that usmoe emits and launch
 * its kernels, with no MLIR and no link-time CUDA dependency: the driver
 * (libcuda.so.1) is opened with dlopen on first use. Every call returns 0 on
 * success or a non-zero status; usmoe_rt_last_error() then says what went
 * wrong ("CUDA driver not available: ...", "cuLaunchKernel failed: ...").
 * With no driver or no GPU nothing crashes: calls fail with a message.
 *
 * The library also exports the mgpu* functions that MLIR's gpu-to-llvm host
 * code calls (mgpuModuleLoad, mgpuLaunchKernel, ...), so lowered host code
 * can run against it (Debian's MLIR ships no libmlir_cuda_runtime.so).
 */
#ifndef USMOE_RUNTIME_USMOERUNTIME_H
#define USMOE_RUNTIME_USMOERUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum {
  USMOE_RT_OK = 0,
  USMOE_RT_NO_DRIVER = 1,  /* libcuda.so.1 missing or a symbol absent */
  USMOE_RT_NO_DEVICE = 2,  /* cuInit failed or no device */
  USMOE_RT_CUDA_ERROR = 3, /* a driver call failed */
  USMOE_RT_INVALID_ARGUMENT = 4,
  USMOE_RT_CHECK_FAILED = 5 /* a run-time check of compiled code failed */
};

/* The message of the last failure on this thread ("" if none). */
const char *usmoe_rt_last_error(void);

/* Opens the driver, initializes it and makes device 0's primary context
 * current. Idempotent; every other call does it implicitly. */
int usmoe_rt_init(void);
int usmoe_rt_device_count(int *count);
/* The device name and compute capability of device 0. */
int usmoe_rt_device_info(char *name, size_t name_size, int *major, int *minor);

/* image: PTX text (NUL-terminated), cubin or fatbin bytes. */
int usmoe_rt_module_load(const void *image, size_t size, void **module);
int usmoe_rt_module_unload(void *module);
int usmoe_rt_module_function(void *module, const char *name, void **function);

/* params: one pointer per kernel parameter, pointing at its value. */
int usmoe_rt_launch(void *function, unsigned grid_x, unsigned grid_y,
                    unsigned grid_z, unsigned block_x, unsigned block_y,
                    unsigned block_z, unsigned shared_bytes, void **params);
/* The same on `stream` (a CUstream; NULL is the legacy default stream), so
 * that callers can order usmoe's kernels with their own work (a PyTorch or
 * CuPy stream) without synchronizing the device. */
int usmoe_rt_launch_on_stream(void *function, unsigned grid_x, unsigned grid_y,
                              unsigned grid_z, unsigned block_x,
                              unsigned block_y, unsigned block_z,
                              unsigned shared_bytes, void *stream,
                              void **params);
int usmoe_rt_synchronize(void);
int usmoe_rt_stream_synchronize(void *stream);

int usmoe_rt_malloc(uint64_t *device_ptr, size_t bytes);
int usmoe_rt_free(uint64_t device_ptr);
/* Frees device_ptr (from cuMemAllocAsync, e.g. a result of host code run
 * in a stream call) ordered on `stream`. */
int usmoe_rt_free_async(uint64_t device_ptr, void *stream);
int usmoe_rt_copy_to_device(uint64_t device_ptr, const void *host,
                            size_t bytes);
int usmoe_rt_copy_to_host(void *host, uint64_t device_ptr, size_t bytes);
/* Zeroes `bytes` (a multiple of 4) at device_ptr, ordered on `stream`. */
int usmoe_rt_zero_async(uint64_t device_ptr, size_t bytes, void *stream);

/* The mgpu* functions (for lowered host code) cannot return errors: they
 * print them and count them. The number of failures so far, and the last
 * one's message. */
uint64_t usmoe_rt_mgpu_failure_count(void);
int usmoe_rt_mgpu_last_failure(char *message, size_t size);

/* A stream call: until usmoe_rt_mgpu_end_stream_call, lowered host code on
 * this thread runs asynchronously on `stream` (a CUstream; NULL is the
 * legacy default stream). The streams it would create are `stream`, its
 * synchronizations of them return at once, its allocations are
 * cuMemAllocAsync and its frees cuMemFreeAsync on `stream` (device memory:
 * the code must not read it on the host). So the compiler's launch
 * sequence runs in the caller's stream order with no synchronization, and
 * the results it returns are device memory the caller frees with
 * usmoe_rt_free_async. */
void usmoe_rt_mgpu_begin_stream_call(void *stream);
void usmoe_rt_mgpu_end_stream_call(void);

/* Calls compiled host code as a stream call on `stream`: `packed` is the
 * function's packed interface (args[i] points at its i-th C-interface
 * argument, the results' descriptor first), as usmoe compiles it into a
 * host library. Returns USMOE_RT_OK; USMOE_RT_CHECK_FAILED when a run-time
 * check of the compiled code failed (the call ended there: no result was
 * written); USMOE_RT_CUDA_ERROR when a driver call of the host code failed.
 * `message` says which. */
int usmoe_rt_host_call(void (*packed)(void **), void **args, void *stream,
                       char *message, size_t size);
/* The same, not as a stream call: the host code runs as compiled (its own
 * streams, waiting for them; buffers it reads on the host, such as a plan's
 * row count, in managed memory). For host code marked
 * usmoe.host_reads_device; its results are freed with usmoe_rt_free. */
int usmoe_rt_host_call_sync(void (*packed)(void **), void **args, char *message,
                            size_t size);
/* Reads the results a packed call wrote into its results' descriptor
 * (`words`: per result 3 + 2 * ranks[i] int64 words: allocated pointer,
 * aligned pointer, offset, sizes, strides): data[i] = aligned + offset *
 * element_bytes[i], its ranks[i] sizes at shapes (concatenated), and
 * allocation[i], the pointer to free for result i: 0 when an earlier result
 * or one of the `num_args` argument pointers owns that memory (a result
 * returned twice, or an argument returned as it is). The one reading of
 * descriptors for every caller (usmoe_rt_host_call's, the JIT's). */
void usmoe_rt_read_results(const int64_t *words, int32_t count,
                           const int32_t *ranks, const int32_t *element_bytes,
                           const uint64_t *args, int32_t num_args,
                           uint64_t *allocation, uint64_t *data,
                           int64_t *shapes);
/* What a failed run-time check of host code compiled into a library calls
 * (its cf.assert's puts and abort, renamed): the message, then the end of
 * the call (back to usmoe_rt_host_call; outside one, the process aborts). */
int usmoe_rt_check_message(const char *message);
void usmoe_rt_check_abort(void);

/* Router rules (usmoe/Routing/RouterRules.h), for callers without MLIR
 * (the Python API, GPU launchers); no driver needed. Options not given
 * have their has_* flag at 0. mode: 0 token, 1 expert, 2 unified. */
typedef struct {
  int32_t mode;
  int32_t has_k, has_n, has_capacity, has_capacity_factor, has_alpha;
  int32_t expert_score;      /* 0 not given, 1 sigmoid, 2 softmax_tokens */
  int32_t renormalize, bias; /* set */
  double k;
  int64_t n, capacity;
  double capacity_factor, alpha;
  int32_t has_routed_scaling_factor, has_softcap;
  double routed_scaling_factor, softcap;
  int32_t has_n_group, has_topk_group;
  int64_t n_group, topk_group;
} UsmoeRouterOptions;

/* 0 when `options` are valid for `experts` and `tokens` (-1: unknown), else
 * 1 with the verifier's message in `message`. */
int usmoe_rt_router_check(const UsmoeRouterOptions *options, int64_t experts,
                          int64_t tokens, char *message, size_t size);
/* The router attribute of valid `options` as the compiler prints it
 * ("#moe.token<k = 2, renormalize>"), NUL-terminated into `text`; returns
 * its length (call again with a larger buffer if it did not fit). */
size_t usmoe_rt_router_format(const UsmoeRouterOptions *options, char *text,
                              size_t size);
/* M, the pairs a valid router selects in a [batch, tokens, experts] batch. */
int64_t usmoe_rt_router_pairs(const UsmoeRouterOptions *options, int64_t batch,
                              int64_t tokens, int64_t experts);
/* The per-set budget a select kernel takes: N (unified) or C (expert). */
int64_t usmoe_rt_router_budget(const UsmoeRouterOptions *options,
                               int64_t tokens, int64_t experts);

#ifdef __cplusplus
}
#endif

#endif /* USMOE_RUNTIME_USMOERUNTIME_H */
