//===- CheckGpuTarget.cpp - reject unsupported GPU targets up front -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/BuiltinOps.h"
#include "usmoe/Conversion/Passes.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOECHECKGPUTARGETPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {
/// The oldest architecture CUDA 13 compiles for.
constexpr unsigned kMinArchitecture = 75;

/// Whether `text` is `prefix` followed by digits (and at most one of the
/// letters in `suffixes`), and those digits as a number.
bool parseNumbered(StringRef text, StringRef prefix, StringRef suffixes,
                   unsigned &number) {
  if (!text.consume_front(prefix) || text.empty())
    return false;
  if (suffixes.contains(text.back()))
    text = text.drop_back();
  return !text.empty() && llvm::all_of(text, llvm::isDigit) &&
         !text.getAsInteger(10, number);
}

struct UsmoeCheckGpuTargetPass
    : usmoe::impl::UsmoeCheckGpuTargetPassBase<UsmoeCheckGpuTargetPass> {
  using Base::Base;

  void runOnOperation() override {
    auto fail = [&](const Twine &message) {
      emitError(getOperation().getLoc(), message);
      signalPassFailure();
    };
    unsigned number;
    if (!parseNumbered(chip, "sm_", "af", number))
      return fail("chip must be sm_XY (a CUDA architecture such as sm_90), "
                  "got '" +
                  chip + "'");
    if (number < kMinArchitecture)
      return fail("chip " + chip + " is older than sm_" +
                  Twine(kMinArchitecture) +
                  ", the oldest architecture CUDA 13 supports");
    if (!parseNumbered(features, "+ptx", "", number))
      return fail("features must be +ptxNN (a PTX ISA version such as "
                  "+ptx80), got '" +
                  features + "'");
    if (!llvm::is_contained({"isa", "bin", "fatbin", "llvm"}, format))
      return fail("format must be isa, bin, fatbin or llvm, got '" + format +
                  "'");
    if (optLevel > 3)
      return fail("opt-level must be in [0, 3], got " + Twine(optLevel));
  }
};
} // namespace
