//===- ShapeExpr.h - integer expressions over a call's shape ----*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The kernel table (the `#moe.kernel` entries of `usmoe.kernels`) states
// each kernel's grid, launches and bytes moved as text over the symbols of a
// call's shape (B, T, E, M, K, D, F, ...), e.g. "ceildiv(B * T, 4)", so that
// a runtime or a reader can size a launch and the cost report can evaluate
// them for given shapes.
// Grammar: integers, symbols, + - *, parentheses, and the functions
// ceildiv(a, b), min(a, b), max(a, b) and gt(a, b) (1 if a > b, else 0).
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_SUPPORT_SHAPEEXPR_H
#define USMOE_SUPPORT_SHAPEEXPR_H

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::usmoe {

/// The value of `text` with `symbols`; nullopt and `error` set when it does
/// not parse, names an unknown symbol, overflows or divides by zero.
std::optional<int64_t>
evaluateShapeExpr(llvm::StringRef text, const llvm::StringMap<int64_t> &symbols,
                  std::string &error);

/// Whether `text` is a well-formed shape expression (any symbols); `error`
/// says why not.
bool isShapeExpr(llvm::StringRef text, std::string &error);

} // namespace mlir::usmoe

#endif // USMOE_SUPPORT_SHAPEEXPR_H
