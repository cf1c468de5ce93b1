//===- RuntimeApi.cpp - the usmoe_rt_* C API ------------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "usmoe/Runtime/UsmoeRuntime.h"

#include <cstring>

using namespace usmoe_rt;

#define REQUIRE_DRIVER(d)                                                      \
  const Driver *d = driver();                                                  \
  if (!d)                                                                      \
  return USMOE_RT_NO_DRIVER

extern "C" {

const char *usmoe_rt_last_error(void) { return lastError(); }

int usmoe_rt_init(void) {
  if (!driver())
    return USMOE_RT_NO_DRIVER;
  clearError();
  return USMOE_RT_OK;
}

int usmoe_rt_device_count(int *count) {
  if (!count)
    return fail(USMOE_RT_INVALID_ARGUMENT, "count is null");
  REQUIRE_DRIVER(d);
  return check(d->DeviceGetCount(count), "cuDeviceGetCount");
}

int usmoe_rt_device_info(char *name, size_t nameSize, int *major, int *minor) {
  if (!name || !major || !minor || nameSize == 0)
    return fail(USMOE_RT_INVALID_ARGUMENT, "null output argument");
  REQUIRE_DRIVER(d);
  CUdevice device = 0;
  if (int s = check(d->DeviceGet(&device, 0), "cuDeviceGet"))
    return s;
  if (int s = check(d->DeviceGetName(name, int(nameSize), device),
                    "cuDeviceGetName"))
    return s;
  if (int s =
          check(d->DeviceGetAttribute(major, kComputeCapabilityMajor, device),
                "cuDeviceGetAttribute"))
    return s;
  return check(d->DeviceGetAttribute(minor, kComputeCapabilityMinor, device),
               "cuDeviceGetAttribute");
}

int usmoe_rt_module_load(const void *image, size_t size, void **module) {
  if (!image || size == 0 || !module)
    return fail(USMOE_RT_INVALID_ARGUMENT, "empty module image");
  REQUIRE_DRIVER(d);
  CUmodule m = nullptr;
  if (int s = check(d->ModuleLoadData(&m, image), "cuModuleLoadData"))
    return s;
  *module = m;
  return USMOE_RT_OK;
}

int usmoe_rt_module_unload(void *module) {
  REQUIRE_DRIVER(d);
  return check(d->ModuleUnload(static_cast<CUmodule>(module)),
               "cuModuleUnload");
}

int usmoe_rt_module_function(void *module, const char *name, void **function) {
  if (!module || !name || !function)
    return fail(USMOE_RT_INVALID_ARGUMENT, "null module, name or output");
  REQUIRE_DRIVER(d);
  CUfunction f = nullptr;
  if (CUresult r =
          d->ModuleGetFunction(&f, static_cast<CUmodule>(module), name))
    return fail(USMOE_RT_CUDA_ERROR,
                std::string("no kernel named '") + name + "' in the module", r);
  *function = f;
  return USMOE_RT_OK;
}

int usmoe_rt_launch(void *function, unsigned gx, unsigned gy, unsigned gz,
                    unsigned bx, unsigned by, unsigned bz, unsigned shared,
                    void **params) {
  return usmoe_rt_launch_on_stream(function, gx, gy, gz, bx, by, bz, shared,
                                   nullptr, params);
}

int usmoe_rt_launch_on_stream(void *function, unsigned gx, unsigned gy,
                              unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, unsigned shared, void *stream,
                              void **params) {
  if (!function)
    return fail(USMOE_RT_INVALID_ARGUMENT, "null kernel");
  if (gx == 0 || gy == 0 || gz == 0)
    return USMOE_RT_OK; // an empty grid has nothing to do
  REQUIRE_DRIVER(d);
  return check(d->LaunchKernel(static_cast<CUfunction>(function), gx, gy, gz,
                               bx, by, bz, shared,
                               static_cast<CUstream>(stream), params, nullptr),
               "cuLaunchKernel");
}

int usmoe_rt_synchronize(void) {
  REQUIRE_DRIVER(d);
  return check(d->CtxSynchronize(), "cuCtxSynchronize");
}

int usmoe_rt_stream_synchronize(void *stream) {
  REQUIRE_DRIVER(d);
  return check(d->StreamSynchronize(static_cast<CUstream>(stream)),
               "cuStreamSynchronize");
}

int usmoe_rt_malloc(uint64_t *ptr, size_t bytes) {
  if (!ptr)
    return fail(USMOE_RT_INVALID_ARGUMENT, "null output pointer");
  REQUIRE_DRIVER(d);
  CUdeviceptr p = 0;
  if (int s = check(d->MemAlloc(&p, bytes ? bytes : 1), "cuMemAlloc"))
    return s;
  *ptr = p;
  return USMOE_RT_OK;
}

int usmoe_rt_free(uint64_t ptr) {
  if (!ptr)
    return USMOE_RT_OK;
  REQUIRE_DRIVER(d);
  return check(d->MemFree(ptr), "cuMemFree");
}

int usmoe_rt_free_async(uint64_t ptr, void *stream) {
  if (!ptr)
    return USMOE_RT_OK;
  REQUIRE_DRIVER(d);
  return check(d->MemFreeAsync(ptr, static_cast<CUstream>(stream)),
               "cuMemFreeAsync");
}

int usmoe_rt_copy_to_device(uint64_t ptr, const void *host, size_t bytes) {
  if (bytes == 0)
    return USMOE_RT_OK;
  REQUIRE_DRIVER(d);
  return check(d->MemcpyHtoD(ptr, host, bytes), "cuMemcpyHtoD");
}

int usmoe_rt_copy_to_host(void *host, uint64_t ptr, size_t bytes) {
  if (bytes == 0)
    return USMOE_RT_OK;
  REQUIRE_DRIVER(d);
  return check(d->MemcpyDtoH(host, ptr, bytes), "cuMemcpyDtoH");
}

int usmoe_rt_zero_async(uint64_t ptr, size_t bytes, void *stream) {
  if (bytes % 4)
    return fail(USMOE_RT_INVALID_ARGUMENT,
                "usmoe_rt_zero_async needs a multiple of 4 bytes");
  if (bytes == 0)
    return USMOE_RT_OK;
  REQUIRE_DRIVER(d);
  return check(
      d->MemsetD32Async(ptr, 0, bytes / 4, static_cast<CUstream>(stream)),
      "cuMemsetD32Async");
}

} // extern "C"
