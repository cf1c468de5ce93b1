//===- CudaDriver.h - the CUDA driver, opened with dlopen -------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The few driver types the runtime needs, declared here (ABI-compatible with
// cuda.h) so the library builds on machines without the CUDA headers, and a
// table of entry points resolved once with dlsym.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_RUNTIME_CUDADRIVER_H
#define USMOE_LIB_RUNTIME_CUDADRIVER_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace usmoe_rt {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUmemoryPool = struct CUmemPoolHandle_st *;

constexpr int kComputeCapabilityMajor = 75; // CU_DEVICE_ATTRIBUTE_...MAJOR
constexpr int kComputeCapabilityMinor = 76;
constexpr unsigned kMemAttachGlobal = 1;

struct Driver {
#define CUDA_SYMBOL(symbol, name, ret, params) ret(*name) params = nullptr;
#include "CudaSymbols.def"
};

/// The driver with device 0's primary context current on this thread, or
/// nullptr (and the reason in lastError()).
const Driver *driver();

/// Records `message` (and the driver's text for `result`, if any) as the
/// thread's last error and returns `status`.
int fail(int status, const std::string &message, CUresult result = 0);

/// Checks a driver call: 0, or fail(...) naming the call.
int check(CUresult result, const char *call);

const char *lastError();
void clearError();

} // namespace usmoe_rt

#endif // USMOE_LIB_RUNTIME_CUDADRIVER_H
