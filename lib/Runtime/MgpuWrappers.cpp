//===- MgpuWrappers.cpp - the mgpu* ABI of MLIR's lowered host code -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// gpu-to-llvm lowers gpu.launch_func, gpu.alloc, gpu.memcpy, ... to calls of
// these functions (upstream: CudaRuntimeWrappers.cpp, which Debian does not
// ship). They return no status, so a failure is reported on stderr once per
// call site kind and the call returns a null handle.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "usmoe/Runtime/UsmoeRuntime.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

using namespace usmoe_rt;

namespace {
/// The mgpu* ABI has no error returns: failures are printed, counted and
/// remembered, so that a caller (the Python JIT) can tell a call failed.
std::atomic<uint64_t> failureCount{0};
std::mutex failureMutex;
std::string lastFailure;

void report(const char *message) {
  std::fprintf(stderr, "usmoe runtime: %s\n", message);
  std::lock_guard<std::mutex> lock(failureMutex);
  lastFailure = message;
  ++failureCount;
}

/// Reports a failed driver call; returns true if `r` succeeded.
bool ok(CUresult r, const char *call) {
  if (check(r, call) == 0)
    return true;
  report(lastError());
  return false;
}

/// The stream call of this thread (usmoe_rt_mgpu_begin_stream_call).
struct StreamCall {
  bool active = false;
  CUstream stream = nullptr;
};
thread_local StreamCall streamCall;

bool isCallStream(CUstream stream) {
  return streamCall.active && stream == streamCall.stream;
}

const Driver *driverOrReport() {
  const Driver *d = driver();
  if (!d)
    report(lastError());
  return d;
}
} // namespace

extern "C" {

uint64_t usmoe_rt_mgpu_failure_count(void) { return failureCount.load(); }

void usmoe_rt_mgpu_begin_stream_call(void *stream) {
  streamCall = {true, static_cast<CUstream>(stream)};
}
void usmoe_rt_mgpu_end_stream_call(void) { streamCall = {}; }

int usmoe_rt_mgpu_last_failure(char *message, size_t size) {
  if (!message || size == 0)
    return USMOE_RT_INVALID_ARGUMENT;
  std::lock_guard<std::mutex> lock(failureMutex);
  std::snprintf(message, size, "%s", lastFailure.c_str());
  return USMOE_RT_OK;
}

CUmodule mgpuModuleLoad(void *data, size_t /*gpuBlobSize*/) {
  const Driver *d = driverOrReport();
  CUmodule module = nullptr;
  if (d)
    ok(d->ModuleLoadData(&module, data), "cuModuleLoadData");
  return module;
}

void mgpuModuleUnload(CUmodule module) {
  if (const Driver *d = driverOrReport())
    ok(d->ModuleUnload(module), "cuModuleUnload");
}

CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  const Driver *d = driverOrReport();
  CUfunction function = nullptr;
  if (d)
    ok(d->ModuleGetFunction(&function, module, name), "cuModuleGetFunction");
  return function;
}

void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, CUstream stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  if (const Driver *d = driverOrReport())
    ok(d->LaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ,
                       smem, stream, params, extra),
       "cuLaunchKernel");
}

CUstream mgpuStreamCreate() {
  if (streamCall.active)
    return streamCall.stream;
  const Driver *d = driverOrReport();
  CUstream stream = nullptr;
  if (d)
    ok(d->StreamCreate(&stream, /*CU_STREAM_NON_BLOCKING=*/1),
       "cuStreamCreate");
  return stream;
}

void mgpuStreamDestroy(CUstream stream) {
  if (isCallStream(stream))
    return;
  if (const Driver *d = driverOrReport())
    ok(d->StreamDestroy(stream), "cuStreamDestroy");
}

void mgpuStreamSynchronize(CUstream stream) {
  if (isCallStream(stream))
    return;
  if (const Driver *d = driverOrReport())
    ok(d->StreamSynchronize(stream), "cuStreamSynchronize");
}

void *mgpuMemAlloc(uint64_t sizeBytes, CUstream /*stream*/, bool isHostShared) {
  const Driver *d = driverOrReport();
  CUdeviceptr ptr = 0;
  if (d && sizeBytes) {
    if (streamCall.active)
      ok(d->MemAllocAsync(&ptr, sizeBytes, streamCall.stream),
         "cuMemAllocAsync");
    else if (isHostShared)
      ok(d->MemAllocManaged(&ptr, sizeBytes, kMemAttachGlobal),
         "cuMemAllocManaged");
    else
      ok(d->MemAlloc(&ptr, sizeBytes), "cuMemAlloc");
  }
  return reinterpret_cast<void *>(ptr);
}

void mgpuMemFree(void *ptr, CUstream /*stream*/) {
  if (!ptr)
    return;
  const Driver *d = driverOrReport();
  if (d && streamCall.active)
    ok(d->MemFreeAsync(reinterpret_cast<CUdeviceptr>(ptr), streamCall.stream),
       "cuMemFreeAsync");
  else if (d)
    ok(d->MemFree(reinterpret_cast<CUdeviceptr>(ptr)), "cuMemFree");
}

void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, CUstream stream) {
  if (const Driver *d = driverOrReport())
    ok(d->MemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                      reinterpret_cast<CUdeviceptr>(src), sizeBytes, stream),
       "cuMemcpyAsync");
}

void mgpuMemset32(void *dst, unsigned value, size_t count, CUstream stream) {
  if (const Driver *d = driverOrReport())
    ok(d->MemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                         stream),
       "cuMemsetD32Async");
}

void mgpuSetDefaultDevice(int32_t /*device*/) {
  // Device 0's primary context is the only one the runtime uses.
}

} // extern "C"
