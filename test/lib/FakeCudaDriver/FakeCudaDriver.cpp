//===- FakeCudaDriver.cpp - a libcuda.so.1 test double --------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Lets CI (which has no GPU) drive every host-side step of usmoe's GPU path:
// "device" memory is host memory, modules load, and launches run nothing but
// are recorded (kernel name, grid, block, stream) with counters for copies
// and synchronizations. Tests put this library first on LD_LIBRARY_PATH as
// libcuda.so.1 and read the record through the fake_cuda_* functions, to
// check what usmoe launches and that device-resident results never make a
// host round trip. It says nothing about what the kernels compute: that is
// scripts/gpu-check.sh's job on a real GPU.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using CUresult = int;
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kNotFound = 500,
                   kLaunchFailed = 719;

struct Launch {
  std::string kernel;
  unsigned grid[3], block[3];
  uintptr_t stream;
};

struct Record {
  std::vector<Launch> launches;
  long hostToDevice = 0, deviceToHost = 0, contextSyncs = 0, streamSyncs = 0,
       allocations = 0, frees = 0, memsets = 0, asyncAllocations = 0,
       asyncFrees = 0;
  /// The stream of every cuMemAllocAsync / cuMemFreeAsync.
  std::vector<uintptr_t> asyncStreams;
};

Record &record() {
  static Record r;
  return r;
}

/// A "function" handle is the kernel's name.
struct Function {
  std::string name;
};

} // namespace

extern "C" {

// --- the driver API subset that libusmoe_cuda_runtime.so resolves ---------

CUresult cuInit(unsigned) { return kSuccess; }
CUresult cuGetErrorString(CUresult r, const char **text) {
  *text = r == kNotFound       ? "CUDA_ERROR_NOT_FOUND (fake driver)"
          : r == kLaunchFailed ? "CUDA_ERROR_LAUNCH_FAILED (fake driver)"
                               : "fake driver error";
  return kSuccess;
}
CUresult cuDeviceGetCount(int *count) {
  *count = 1;
  return kSuccess;
}
CUresult cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return ordinal == 0 ? kSuccess : kInvalidValue;
}
CUresult cuDeviceGetName(char *name, int size, int) {
  std::strncpy(name, "usmoe fake CUDA driver", size_t(size));
  name[size - 1] = 0;
  return kSuccess;
}
/// Compute capability 9.0, or $FAKE_CUDA_CC ("8.6", "12.0", ...).
CUresult cuDeviceGetAttribute(int *value, int attribute, int) {
  int major = 9, minor = 0;
  if (const char *cc = std::getenv("FAKE_CUDA_CC"))
    std::sscanf(cc, "%d.%d", &major, &minor);
  *value = attribute == 75 ? major : attribute == 76 ? minor : 0;
  return kSuccess;
}
CUresult cuDevicePrimaryCtxRetain(void **context, int) {
  static int primary;
  *context = &primary;
  return kSuccess;
}
CUresult cuCtxSetCurrent(void *) { return kSuccess; }
CUresult cuCtxSynchronize() {
  ++record().contextSyncs;
  return kSuccess;
}
CUresult cuModuleLoadData(void **module, const void *image) {
  static int loaded;
  *module = image ? &loaded : nullptr;
  return image ? kSuccess : kInvalidValue;
}
CUresult cuModuleUnload(void *) { return kSuccess; }
CUresult cuModuleGetFunction(void **function, void *, const char *name) {
  *function = new Function{name};
  return kSuccess;
}
CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                        unsigned bx, unsigned by, unsigned bz, unsigned,
                        void *stream, void **params, void **) {
  if (!function || !params)
    return kInvalidValue;
  // $FAKE_CUDA_FAIL_KERNEL: launches of kernels whose name contains it fail.
  const std::string &name = static_cast<Function *>(function)->name;
  if (const char *fail = std::getenv("FAKE_CUDA_FAIL_KERNEL");
      fail && *fail && name.find(fail) != std::string::npos)
    return kLaunchFailed;
  record().launches.push_back({static_cast<Function *>(function)->name,
                               {gx, gy, gz},
                               {bx, by, bz},
                               reinterpret_cast<uintptr_t>(stream)});
  return kSuccess;
}
/// Allocation base -> what calloc returned (the base is aligned up from it).
std::map<uint64_t, void *> &allocationsByBase() {
  static std::map<uint64_t, void *> bases;
  return bases;
}

CUresult cuMemAlloc_v2(uint64_t *ptr, size_t bytes) {
  // 256-byte aligned like cuMemAlloc; zeroed so that reads are defined
  // (calloc maps large blocks lazily: no cost for pages nobody touches).
  void *raw = std::calloc(bytes + 256, 1);
  if (!raw)
    return kInvalidValue;
  uint64_t base = (reinterpret_cast<uint64_t>(raw) + 255) / 256 * 256;
  allocationsByBase()[base] = raw;
  *ptr = base;
  ++record().allocations;
  return kSuccess;
}
CUresult cuMemAllocManaged(uint64_t *ptr, size_t bytes, unsigned) {
  return cuMemAlloc_v2(ptr, bytes);
}
CUresult cuMemFree_v2(uint64_t ptr) {
  auto it = allocationsByBase().find(ptr);
  if (it == allocationsByBase().end())
    return kInvalidValue;
  std::free(it->second);
  allocationsByBase().erase(it);
  ++record().frees;
  return kSuccess;
}
CUresult cuMemAllocAsync(uint64_t *ptr, size_t bytes, void *stream) {
  record().asyncStreams.push_back(reinterpret_cast<uintptr_t>(stream));
  ++record().asyncAllocations;
  return cuMemAlloc_v2(ptr, bytes);
}
CUresult cuMemFreeAsync(uint64_t ptr, void *stream) {
  record().asyncStreams.push_back(reinterpret_cast<uintptr_t>(stream));
  ++record().asyncFrees;
  return cuMemFree_v2(ptr);
}
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes) {
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  ++record().hostToDevice;
  return kSuccess;
}
CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes) {
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  ++record().deviceToHost;
  return kSuccess;
}
CUresult cuMemcpyAsync(uint64_t dst, uint64_t src, size_t bytes, void *) {
  std::memcpy(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
              bytes);
  return kSuccess;
}
CUresult cuMemsetD32Async(uint64_t dst, unsigned value, size_t count, void *) {
  ++record().memsets;
  auto *p = reinterpret_cast<unsigned *>(dst);
  if (value == 0)
    std::memset(p, 0, count * sizeof(unsigned));
  else
    std::fill(p, p + count, value);
  return kSuccess;
}
CUresult cuStreamCreate(void **stream, unsigned) {
  static int created;
  *stream = &created;
  return kSuccess;
}
CUresult cuStreamSynchronize(void *) {
  ++record().streamSyncs;
  return kSuccess;
}
CUresult cuStreamDestroy_v2(void *) { return kSuccess; }

/// The default memory pool's release threshold as last set (attribute 4,
/// CU_MEMPOOL_ATTR_RELEASE_THRESHOLD); kept across fake_cuda_reset.
static unsigned long long poolReleaseThreshold = 0;
static int defaultPool;

CUresult cuDeviceGetDefaultMemPool(void **pool, int) {
  *pool = &defaultPool;
  return kSuccess;
}
CUresult cuMemPoolSetAttribute(void *pool, int attribute, void *value) {
  if (pool != &defaultPool || !value)
    return kInvalidValue;
  if (attribute == 4)
    poolReleaseThreshold = *static_cast<unsigned long long *>(value);
  return kSuccess;
}

// --- what tests read back ---------------------------------------------------

/// Counters: "htod", "dtoh", "ctx_sync", "stream_sync", "alloc", "free"
/// (all allocations and frees), "alloc_async", "free_async" (those ordered
/// on a stream), "memset", "launch"; -1 for an unknown name.
long fake_cuda_counter(const char *name) {
  const Record &r = record();
  std::string n = name;
  if (n == "htod")
    return r.hostToDevice;
  if (n == "dtoh")
    return r.deviceToHost;
  if (n == "ctx_sync")
    return r.contextSyncs;
  if (n == "stream_sync")
    return r.streamSyncs;
  if (n == "alloc")
    return r.allocations;
  if (n == "free")
    return r.frees;
  if (n == "alloc_async")
    return r.asyncAllocations;
  if (n == "free_async")
    return r.asyncFrees;
  if (n == "memset")
    return r.memsets;
  if (n == "launch")
    return long(r.launches.size());
  return -1;
}

/// The default memory pool's release threshold (see cuMemPoolSetAttribute).
unsigned long long fake_cuda_pool_release_threshold() {
  return poolReleaseThreshold;
}

/// Launch `i` in order: its kernel name, and grid.x / block.x / stream.
const char *fake_cuda_launch_kernel(long i) {
  return record().launches.at(size_t(i)).kernel.c_str();
}
long fake_cuda_launch_grid(long i) {
  return long(record().launches.at(size_t(i)).grid[0]);
}
long fake_cuda_launch_block(long i) {
  return long(record().launches.at(size_t(i)).block[0]);
}
uintptr_t fake_cuda_launch_stream(long i) {
  return record().launches.at(size_t(i)).stream;
}

/// The stream of the i-th cuMemAllocAsync / cuMemFreeAsync; -1 past the end.
intptr_t fake_cuda_async_memory_stream(long i) {
  const auto &streams = record().asyncStreams;
  return size_t(i) < streams.size() ? intptr_t(streams[size_t(i)]) : -1;
}

/// Forgets everything recorded so far.
void fake_cuda_reset() { record() = Record(); }

} // extern "C"
