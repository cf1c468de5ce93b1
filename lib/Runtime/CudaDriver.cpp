//===- CudaDriver.cpp - open libcuda.so.1 and the primary context ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "usmoe/Runtime/UsmoeRuntime.h"

#include <dlfcn.h>
#include <mutex>

using namespace usmoe_rt;

namespace {

thread_local std::string threadError;

struct State {
  Driver table;
  CUcontext context = nullptr;
  int status = USMOE_RT_OK;
  std::string error;
};

/// Opens the driver and device 0 once per process; the outcome (success or
/// the reason for failure) is kept, so a machine without a GPU answers every
/// later call at once with the same message.
State &state() {
  static State s;
  static std::once_flag once;
  std::call_once(once, [] {
    void *handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *why = dlerror();
      s.status = USMOE_RT_NO_DRIVER;
      s.error = std::string("CUDA driver not available: ") +
                (why ? why : "libcuda.so.1 not found");
      return;
    }
#define CUDA_SYMBOL(symbol, name, ret, params)                                 \
  s.table.name = reinterpret_cast<ret(*) params>(dlsym(handle, symbol));       \
  if (!s.table.name) {                                                         \
    s.status = USMOE_RT_NO_DRIVER;                                             \
    s.error = std::string("CUDA driver too old: no symbol ") + symbol;         \
    return;                                                                    \
  }
#include "CudaSymbols.def"
    auto describe = [&](CUresult r) {
      const char *text = nullptr;
      if (s.table.GetErrorString && s.table.GetErrorString(r, &text) == 0 &&
          text)
        return std::string(text);
      return "error " + std::to_string(r);
    };
    if (CUresult r = s.table.Init(0)) {
      s.status = USMOE_RT_NO_DEVICE;
      s.error = "cuInit failed (no usable GPU?): " + describe(r);
      return;
    }
    int count = 0;
    if (s.table.DeviceGetCount(&count) || count == 0) {
      s.status = USMOE_RT_NO_DEVICE;
      s.error = "no CUDA device found";
      return;
    }
    CUdevice device = 0;
    if (CUresult r = s.table.DeviceGet(&device, 0)) {
      s.status = USMOE_RT_NO_DEVICE;
      s.error = "cuDeviceGet failed: " + describe(r);
      return;
    }
    if (CUresult r = s.table.DevicePrimaryCtxRetain(&s.context, device)) {
      s.status = USMOE_RT_CUDA_ERROR;
      s.error = "cuDevicePrimaryCtxRetain failed: " + describe(r);
      return;
    }
    // Stream calls allocate their results and temporaries from the device's
    // default pool (cuMemAllocAsync). Its default release threshold, 0,
    // hands freed memory back to the OS at every synchronization, so the
    // next call maps fresh pages; keep it pooled instead, as PyTorch's
    // cudaMallocAsync backend does. Best effort: a failure only costs speed.
    CUmemoryPool pool = nullptr;
    if (s.table.DeviceGetDefaultMemPool(&pool, device) == 0 && pool) {
      unsigned long long keepAll = ~0ull;
      constexpr int kReleaseThreshold = 4; // CU_MEMPOOL_ATTR_RELEASE_THRESHOLD
      s.table.MemPoolSetAttribute(pool, kReleaseThreshold, &keepAll);
    }
  });
  return s;
}

} // namespace

const Driver *usmoe_rt::driver() {
  State &s = state();
  if (s.status != USMOE_RT_OK) {
    threadError = s.error;
    return nullptr;
  }
  // The primary context must be current on every calling thread.
  if (CUresult r = s.table.CtxSetCurrent(s.context)) {
    fail(USMOE_RT_CUDA_ERROR, "cuCtxSetCurrent failed", r);
    return nullptr;
  }
  return &s.table;
}

int usmoe_rt::fail(int status, const std::string &message, CUresult result) {
  threadError = message;
  if (result) {
    const char *text = nullptr;
    State &s = state();
    if (s.table.GetErrorString && s.table.GetErrorString(result, &text) == 0 &&
        text)
      threadError += std::string(": ") + text;
    else
      threadError += ": error " + std::to_string(result);
  }
  return status;
}

int usmoe_rt::check(CUresult result, const char *call) {
  if (result == 0)
    return USMOE_RT_OK;
  return fail(USMOE_RT_CUDA_ERROR, std::string(call) + " failed", result);
}

const char *usmoe_rt::lastError() { return threadError.c_str(); }
void usmoe_rt::clearError() { threadError.clear(); }
