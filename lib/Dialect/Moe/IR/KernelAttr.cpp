//===- KernelAttr.cpp - #moe.kernel, an entry of the kernel table ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "usmoe/Support/ShapeExpr.h"

using namespace mlir;
using namespace mlir::moe;

SmallVector<std::pair<StringRef, StringRef>>
KernelAttr::getExpressions() const {
  auto text = [](StringAttr s) { return s ? s.getValue() : StringRef(); };
  return {{"grid", text(getGrid())},
          {"launches", text(getLaunches())},
          {"bytes_read", text(getBytesRead())},
          {"bytes_written", text(getBytesWritten())},
          {"floor_bytes", text(getFloorBytes())},
          {"flops", text(getFlops())},
          {"tail_bytes", text(getTailBytes())},
          {"instructions", text(getInstructions())}};
}

/// A kernel's description must be usable without its module: a kind, types
/// for its arguments, a 3-D block, and expressions a runtime can evaluate.
LogicalResult KernelAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 StringAttr kind, ArrayAttr args,
                                 DenseI32ArrayAttr block, StringAttr grid,
                                 StringAttr launches, StringAttr bytesRead,
                                 StringAttr bytesWritten, StringAttr floorBytes,
                                 StringAttr flops, StringAttr tailBytes,
                                 StringAttr instructions, DictionaryAttr info) {
  if (!kind || kind.getValue().empty())
    return emitError() << "'kind' must not be empty";
  if (!args || !info)
    return emitError() << "'args' and 'info' are required";
  if (!llvm::all_of(args, [](Attribute a) { return isa<TypeAttr>(a); }))
    return emitError() << "'args' must be a list of types";
  if (!block || block.size() != 3 ||
      llvm::any_of(block.asArrayRef(), [](int32_t n) { return n < 1; }))
    return emitError() << "'block' must be three positive sizes";
  const std::pair<StringRef, StringAttr> expressions[] = {
      {"grid", grid},
      {"launches", launches},
      {"bytes_read", bytesRead},
      {"bytes_written", bytesWritten},
      {"floor_bytes", floorBytes},
      {"flops", flops},
      {"tail_bytes", tailBytes},
      {"instructions", instructions}};
  for (auto [key, text] : expressions) {
    if ((key == "floor_bytes" || key == "flops" || key == "tail_bytes" ||
         key == "instructions") &&
        !text)
      continue;
    std::string error;
    if (!text)
      return emitError() << "'" << key << "' is required";
    if (!usmoe::isShapeExpr(text.getValue(), error))
      return emitError() << "'" << key << "' = \"" << text.getValue()
                         << "\": " << error;
  }
  return success();
}
