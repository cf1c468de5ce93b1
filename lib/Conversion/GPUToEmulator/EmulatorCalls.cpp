//===- EmulatorCalls.cpp - calls into the GPU emulator runtime ------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "EmulatorCalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::usmoe::emulator;

Value EmulatorCalls::call(OpBuilder &b, Location loc, StringRef name,
                          ValueRange args, Type result) {
  SmallVector<Type> results;
  if (result)
    results.push_back(result);
  auto callee = module.lookupSymbol<func::FuncOp>(name);
  if (!callee) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    callee = func::FuncOp::create(
        b, module.getLoc(), name,
        b.getFunctionType(TypeRange(args.getTypes()), results));
    callee.setPrivate();
  }
  auto op = func::CallOp::create(b, loc, callee, args);
  return result ? op.getResult(0) : Value();
}

Value EmulatorCalls::string(OpBuilder &b, Location loc, StringRef text) {
  LLVM::GlobalOp &global = strings[text];
  if (!global) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    std::string value = text.str();
    value.push_back('\0');
    auto type = LLVM::LLVMArrayType::get(b.getIntegerType(8), value.size());
    std::string name = "__usmoe_emu_str_" + std::to_string(strings.size());
    global =
        LLVM::GlobalOp::create(b, module.getLoc(), type,
                               /*isConstant=*/true, LLVM::Linkage::Internal,
                               name, b.getStringAttr(value));
  }
  return LLVM::AddressOfOp::create(b, loc, global);
}

std::string EmulatorCalls::siteText(Operation *op) {
  std::string text;
  llvm::raw_string_ostream os(text);
  // The first file location inside (fused and call-site locations wrap it).
  FileLineColLoc file;
  op->getLoc()->walk([&](Location loc) {
    if (auto f = dyn_cast<FileLineColLoc>(loc)) {
      file = f;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (file)
    os << file.getFilename().getValue() << ":" << file.getLine() << ":"
       << file.getColumn();
  else
    op->getLoc().print(os);
  os << ": " << op->getName().getStringRef();
  return text;
}

void EmulatorCalls::numberSharedSites(Operation *root, StringRef kernel) {
  llvm::StringMap<SmallVector<Operation *>> byText;
  root->walk([&](Operation *op) { byText[siteText(op)].push_back(op); });
  for (auto &entry : byText) {
    if (entry.second.size() < 2)
      continue;
    for (auto [i, op] : llvm::enumerate(entry.second))
      siteSuffix[op] = (" #" + Twine(i + 1) + " in " + kernel).str();
  }
}

Value EmulatorCalls::site(OpBuilder &b, Operation *op) {
  std::string text = siteText(op);
  auto suffix = siteSuffix.find(op);
  if (suffix != siteSuffix.end())
    text += suffix->second;
  return string(b, op->getLoc(), text);
}

Value EmulatorCalls::i64(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIntOp::create(b, loc, value, 64);
}

Value EmulatorCalls::i32(OpBuilder &b, Location loc, int32_t value) {
  return arith::ConstantIntOp::create(b, loc, value, 32);
}

Value EmulatorCalls::toI64(OpBuilder &b, Location loc, Value index) {
  return arith::IndexCastOp::create(b, loc, i64Type(), index);
}

FunctionType EmulatorCalls::kernelType() {
  return FunctionType::get(module.getContext(), {ptrType(), ptrType()}, {});
}

Type mlir::usmoe::emulator::packedType(Type type) {
  MLIRContext *ctx = type.getContext();
  if (auto memref = dyn_cast<MemRefType>(type)) {
    Type ptr = LLVM::LLVMPointerType::get(ctx);
    Type i64 = IntegerType::get(ctx, 64);
    SmallVector<Type> fields{ptr, ptr, i64};
    if (memref.getRank() > 0) {
      Type dims = LLVM::LLVMArrayType::get(i64, memref.getRank());
      fields.append({dims, dims});
    }
    return LLVM::LLVMStructType::getLiteral(ctx, fields);
  }
  if (type.isIndex())
    return IntegerType::get(ctx, 64);
  return type;
}

int64_t mlir::usmoe::emulator::storageBytes(Type type) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.getNumElements() * storageBytes(vector.getElementType());
  if (type.isIndex())
    return 8;
  return (type.getIntOrFloatBitWidth() + 7) / 8;
}

Type mlir::usmoe::emulator::withoutMemorySpace(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  if (!memref || !memref.getMemorySpace())
    return type;
  return MemRefType::get(memref.getShape(), memref.getElementType(),
                         memref.getLayout());
}

std::string mlir::usmoe::emulator::emulatedKernelName(StringRef moduleName,
                                                      StringRef kernel) {
  return ("__usmoe_emu_" + moduleName + "_" + kernel).str();
}
