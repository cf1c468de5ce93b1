//===- InputLimits.h - input the parser cannot take safely ------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// MLIR's parser recurses once per nested bracket, so deeply nested text
// overflows the stack (a crash, not a diagnostic). usmoe-opt, the Python
// extension and the fuzz target reject such text before parsing, with the
// same words.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_SUPPORT_INPUTLIMITS_H
#define USMOE_SUPPORT_INPUTLIMITS_H

#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir::usmoe {

/// The deepest nesting of (, [ and { outside string literals that is parsed.
inline constexpr int kMaxNesting = 1000;

/// "" when `source` nests brackets at most kMaxNesting deep, else the
/// message that says why it is not parsed.
std::string checkNesting(llvm::StringRef source);

} // namespace mlir::usmoe

#endif // USMOE_SUPPORT_INPUTLIMITS_H
