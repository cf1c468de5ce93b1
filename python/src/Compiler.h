//===- Compiler.h - compile and run moe IR from Python ----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The C++ half of the Python package, free of pybind11 so that it reads as
// plain MLIR code: parse with diagnostics captured, run the registered
// pipelines, JIT-compile tensor functions and call them on host buffers.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_PYTHON_COMPILER_H
#define USMOE_PYTHON_COMPILER_H

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace usmoe_py {

/// Bad IR, a failing pass or a bad argument: the message holds the MLIR
/// diagnostics. Bound to Python's ValueError.
struct CompileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// No GPU, no driver, or a failed launch: bound to Python's RuntimeError.
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs `pipeline` (textual pass pipeline, e.g. "usmoe-to-cpu" or
/// "moe-fuse-routing,canonicalize") on `source` and prints the result.
std::string runPipeline(const std::string &source, const std::string &pipeline);

/// Kernels compiled by usmoe-to-nvvm: every serialized object (file name and
/// bytes) and the JSON metadata of the kernels.
struct GpuArtifacts {
  std::vector<std::pair<std::string, std::string>> files;
  std::string metadata;
};

/// Lowers `source` with usmoe-to-nvvm (chip, features, format = isa | bin
/// | fatbin, optimization level) and collects the artifacts.
GpuArtifacts compileForGpu(const std::string &source, const std::string &chip,
                           const std::string &features,
                           const std::string &format, unsigned optLevel);

/// One tensor argument or result of a compiled function, as the host sees
/// it: an element kind ("f32", "f16", "bf16", "i32", "i64", "i1") and the
/// shape, -1 for a dynamic dimension.
struct TensorSignature {
  std::string element;
  std::vector<int64_t> shape;
  /// Bytes per element in memory (i1 is stored as one byte).
  int64_t elementBytes() const;
};

/// A dense, row-major host array.
struct HostArray {
  void *data = nullptr;
  std::vector<int64_t> shape;
};

/// A result owned by the caller, read in place (no copy).
struct OwnedResult {
  /// Keeps `data` alive (shared when results share an allocation; null for
  /// an empty result). The caller may hold it as long as it reads `data`.
  std::shared_ptr<void> owner;
  void *data = nullptr;
  std::vector<int64_t> shape;
};

/// A result of a call on device memory: `data` (aligned pointer plus
/// offset) in device memory; `allocation` is the base to free with
/// usmoe_rt_free_async, 0 when another result (or an argument) owns it.
struct DeviceResult {
  uint64_t allocation = 0;
  uint64_t data = 0;
  std::vector<int64_t> shape;
};

/// Where a JitFunction runs: the CPU (usmoe-to-cpu), or the GPU through
/// usmoe-to-nvvm: host code JIT-compiled for the CPU, kernels as a cubin for
/// `chip`, launched through the mgpu* functions of the runtime library at
/// `runtimePath`.
struct GpuTarget {
  std::string chip, features, runtimePath;
};

/// The host code of a GPU function compiled to a relocatable, position-
/// independent object for this host's architecture (its baseline CPU, so
/// that a cache of them travels), kernels embedded: linked into a
/// shared library it runs without MLIR (usmoe_rt_host_call on its
/// `packedSymbol`), against libusmoe_cuda_runtime.so loaded RTLD_GLOBAL.
struct HostObject {
  std::string object;
  std::string packedSymbol;
  /// The kernels' JSON metadata (as compileForGpu's; "" without kernels).
  std::string kernelMetadata;
  std::vector<TensorSignature> args, res;
  /// The host code reads device memory (no stream calls).
  bool hostReadsDevice = false;
};

/// Where a JitFunction runs on the GPU emulator: host code and kernels from
/// usmoe-to-gpu-emu, JIT-compiled for the CPU and linked to the emulator
/// runtime at `runtimePath`. Arguments and results stay in host memory.
struct EmulatorTarget {
  std::string runtimePath;
};

/// How a JitFunction runs on the CPU: moe.expert_ffn's GEMMs on oneDNN
/// through libusmoe_cpu_runtime.so at `runtimePath` (`oneDnn`), or in
/// generated loops; the parallel loops on OpenMP threads through LLVM's
/// libomp at `openmpRuntimePath` (empty: sequentially).
struct CpuTarget {
  bool oneDnn = false;
  std::string runtimePath;
  std::string openmpRuntimePath;
};

/// Compiles the public function `name` of `source` with usmoe-to-nvvm for
/// `target` (its runtimePath unused) into a HostObject.
HostObject compileGpuHostObject(const std::string &source,
                                const std::string &name,
                                const GpuTarget &target, int optLevel);

/// A function of tensors, JIT-compiled.
class JitFunction {
public:
  /// Compiles the public function `name` of `source`, which takes and
  /// returns ranked tensors only, for the CPU or, with `gpu`, the GPU, or
  /// with `emulator`, the GPU path on the GPU emulator.
  JitFunction(const std::string &source, const std::string &name, int optLevel,
              const GpuTarget *gpu = nullptr,
              const EmulatorTarget *emulator = nullptr,
              const CpuTarget *cpu = nullptr);
  ~JitFunction();
  JitFunction(const JitFunction &) = delete;
  JitFunction &operator=(const JitFunction &) = delete;

  const std::vector<TensorSignature> &arguments() const { return args; }
  const std::vector<TensorSignature> &results() const { return res; }

  /// Calls the function; arguments must match `arguments()` (checked by
  /// the Python layer, re-checked here for rank and static sizes). On the
  /// GPU, arguments are staged in managed memory and results copied back. A
  /// failed check of the emulator throws DeviceError with its report.
  std::vector<OwnedResult> call(const std::vector<HostArray> &inputs) const;

  /// Calls a GPU function on device memory (`inputs` hold device pointers)
  /// as a stream call of the runtime (usmoe_rt_mgpu_begin_stream_call): the
  /// compiler's host code launches its kernels asynchronously on `stream`
  /// and allocates its results there; nothing synchronizes. The caller owns
  /// the results' allocations.
  std::vector<DeviceResult> callOnDevice(const std::vector<HostArray> &inputs,
                                         void *stream) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
  std::vector<TensorSignature> args, res;
  /// The host code reads device memory (no stream calls).
  bool hostReadsDevice = false;
};

} // namespace usmoe_py

#endif // USMOE_PYTHON_COMPILER_H
