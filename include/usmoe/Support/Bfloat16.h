//===- Bfloat16.h - f32 -> bf16 rounding ------------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_SUPPORT_BFLOAT16_H
#define USMOE_SUPPORT_BFLOAT16_H

#include <cstdint>
#include <cstring>

namespace mlir::usmoe {

/// The bits of `value` rounded to bf16, to nearest even, NaN kept NaN (as
/// arith.truncf and the hardware round): one definition for the JIT's
/// compiler-rt stand-in and the CPU runtime.
inline uint16_t roundToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((bits >> 16) | 0x40u); // quiet NaN
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

} // namespace mlir::usmoe

#endif // USMOE_SUPPORT_BFLOAT16_H
