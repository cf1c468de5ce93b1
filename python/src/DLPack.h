//===- DLPack.h - DLPack capsules for usmoe's arrays ------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// usmoe hands its GPU outputs to PyTorch, CuPy, JAX, ... through DLPack
// (https://dmlc.github.io/dlpack/latest/c_api.html) without a copy, and
// reads the device pointer of GPU inputs that only speak DLPack. The
// structs below are DLPack's stable C ABI (v0.x "dltensor" capsules), so no
// dlpack header is needed at build time.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_PYTHON_SRC_DLPACK_H
#define USMOE_PYTHON_SRC_DLPACK_H

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

namespace usmoe_py {

/// DLPack device types usmoe deals with.
enum : int32_t { kDLCPU = 1, kDLCUDA = 2 };
/// DLPack type codes.
enum : uint8_t {
  kDLInt = 0,
  kDLUInt = 1,
  kDLFloat = 2,
  kDLBfloat = 4,
  kDLBool = 6
};

/// What a DLPack tensor describes (strides in elements; empty = compact).
struct DLPackView {
  uint64_t data = 0; ///< data pointer + byte_offset
  int32_t deviceType = 0, deviceId = 0;
  uint8_t code = 0, bits = 0;
  uint16_t lanes = 1;
  std::vector<int64_t> shape, strides;
};

/// A "dltensor" capsule over `data` (row-major `shape`) that keeps `owner`
/// alive until the consumer (or the capsule, if never consumed) lets go.
pybind11::capsule makeDLPackCapsule(pybind11::object owner, uint64_t data,
                                    std::vector<int64_t> shape, uint8_t code,
                                    uint8_t bits, int32_t deviceType,
                                    int32_t deviceId);

/// Reads an unconsumed "dltensor" capsule without taking it: the producer
/// keeps ownership, so the caller holds the capsule while it uses the data.
DLPackView readDLPackCapsule(const pybind11::capsule &capsule);

} // namespace usmoe_py

#endif // USMOE_PYTHON_SRC_DLPACK_H
