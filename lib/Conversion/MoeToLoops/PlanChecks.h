//===- PlanChecks.h - run-time checks of the plan contract ------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// dispatch, expert_ffn and combine take what moe.plan writes; the CPU
// lowering checks that contract at run time, so that other ids or offsets
// are a failed check for the caller, not an out-of-bounds access.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOLOOPS_PLANCHECKS_H
#define USMOE_LIB_CONVERSION_MOETOLOOPS_PLANCHECKS_H

#include "Conversion/Common/LoopBuilder.h"

namespace mlir::usmoe::loops {

/// What a failed offsets check of moe.expert_ffn says (either lowering).
inline constexpr const char *kExpertFfnOffsetsCheck =
    "moe: expert_ffn: expert_offsets must go from 0 to the number of rows "
    "without decreasing";

/// Every id in [0, limit).
void checkIdsBelow(LoopBuilder &b, Value ids, Value limit, StringRef message);

/// offsets[0] = 0, never decreasing, offsets[E] = rows.
void checkOffsets(LoopBuilder &b, Value offsets, Value rows, StringRef message);

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_MOETOLOOPS_PLANCHECKS_H
