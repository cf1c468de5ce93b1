//===- InitAll.h - register every usmoe dialect and pass --------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_INITALL_H
#define USMOE_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::usmoe {

/// Adds the usmoe dialects to `registry`.
void registerAllDialects(DialectRegistry &registry);

/// Registers every usmoe pass and pipeline with the global pass registry, so
/// that tools and the Python module expose the same command-line names.
void registerAllPasses();

} // namespace mlir::usmoe

#endif // USMOE_INITALL_H
