//===- ShareParallelBodies.cpp - one body per parallel loop ---------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// forParallel2D (LoopBuilder.h) writes each parallel loop twice, a parallel
// and a sequential form chosen at run time by the amount of work. This pass
// moves the body into one function both forms call, so LLVM compiles it
// once.
//
//===----------------------------------------------------------------------===//

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"
#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"
#include "usmoe/Conversion/VectorFriendly/VectorFriendly.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOESHAREPARALLELBODIESPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

/// At most this many chunks of a parallel loop: enough to keep 128 threads
/// busy, few enough that a chunk's call costs nothing next to its work
/// (parallel forms run only past tens of thousands of elements).
static constexpr int64_t kMaxChunks = 128;

/// The then-branch's scf.parallel when `twin` has the shape the pass
/// rewrites: a zero-based, unit-step loop without reductions, alone in the
/// then-branch, and an if without results.
static scf::ParallelOp parallelForm(scf::IfOp twin) {
  if (twin.getNumResults() != 0 || twin.getElseRegion().empty())
    return nullptr;
  Block &then = twin.getThenRegion().front();
  auto parallel = dyn_cast<scf::ParallelOp>(&then.front());
  if (!parallel || parallel->getNextNode() != then.getTerminator() ||
      parallel.getNumReductions() != 0)
    return nullptr;
  if (!llvm::all_of(parallel.getLowerBound(),
                    [](Value v) { return isConstantIntValue(v, 0); }) ||
      !llvm::all_of(parallel.getStep(),
                    [](Value v) { return isConstantIntValue(v, 1); }))
    return nullptr;
  return parallel;
}

/// The buffer that `memref` views, through view-like ops and round trips
/// through tensors: a memref.alloc of this function, a function argument,
/// or null when it cannot tell.
static Value bufferOf(Value memref) {
  while (memref) {
    if (isa<BlockArgument>(memref))
      return memref;
    Operation *def = memref.getDefiningOp();
    if (isa<memref::AllocOp>(def))
      return memref;
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      memref = view.getViewSource();
      continue;
    }
    auto toBuffer = dyn_cast<bufferization::ToBufferOp>(def);
    if (!toBuffer)
      return nullptr;
    Value tensor = toBuffer.getTensor();
    if (auto arg = dyn_cast<BlockArgument>(tensor))
      return arg;
    auto toTensor = tensor.getDefiningOp<bufferization::ToTensorOp>();
    memref = toTensor ? toTensor.getBuffer() : nullptr;
  }
  return nullptr;
}

/// The LLVM parameter positions of the aligned pointers of the captured
/// memrefs that may be `noalias` in the outlined body: views of a buffer
/// this function allocated that no other capture views (a fresh allocation
/// overlaps no input, and the body's iterations touch disjoint parts of
/// it). Without it, every short loop over a scratch row (16 lanes) needs
/// run-time overlap checks, which LLVM does not emit for so few
/// iterations, and stays scalar; inside the caller, the allocation told it.
/// Nothing is marked when a capture's buffer is unknown.
static SmallVector<int64_t> noAliasPositions(ArrayRef<Value> captures) {
  llvm::DenseMap<Value, int> views;
  SmallVector<Value> buffers;
  for (Value v : captures) {
    Value buffer;
    if (isa<MemRefType>(v.getType()) && !(buffer = bufferOf(v)))
      return {};
    buffers.push_back(buffer);
    if (buffer)
      ++views[buffer];
  }
  SmallVector<int64_t> positions;
  int64_t position = 2; // begin, end
  for (auto [v, buffer] : llvm::zip(captures, buffers)) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type) {
      ++position;
      continue;
    }
    // MemRefDescriptor::unpack's order: allocated pointer, aligned pointer,
    // offset, sizes, strides.
    if (!isa<BlockArgument>(buffer) && views[buffer] == 1)
      positions.push_back(position + 1);
    position += MemRefDescriptor::getNumUnpackedValues(type);
  }
  return positions;
}

/// Writes `func(begin, end, captures...)`: the parallel loop's body for each
/// flattened iteration in [begin, end), in row-major order, with copies of
/// the `constants` it uses. The iteration's coordinates are split from
/// `begin` once and then carried, so a chunk divides once, not once an
/// iteration.
static func::FuncOp outlineBody(RewriterBase &rewriter, SymbolTable &symbols,
                                scf::ParallelOp parallel, StringRef name,
                                ArrayRef<Value> captures,
                                ArrayRef<Value> constants) {
  Location loc = parallel.getLoc();
  Type index = rewriter.getIndexType();
  SmallVector<Type> argTypes{index, index};
  for (Value v : captures)
    argTypes.push_back(v.getType());
  OpBuilder::InsertionGuard insertionGuard(rewriter);
  rewriter.setInsertionPoint(parallel->getParentOfType<FunctionOpInterface>());
  auto func = func::FuncOp::create(rewriter, loc, name,
                                   rewriter.getFunctionType(argTypes, {}));
  func.setPrivate();
  // Internal to the module, so LLVM may drop unused arguments, specialize
  // and inline it like any static function.
  func->setAttr(
      "llvm.linkage",
      LLVM::LinkageAttr::get(rewriter.getContext(), LLVM::Linkage::Internal));
  symbols.insert(func);
  SmallVector<int64_t> noAlias = noAliasPositions(captures);
  if (!noAlias.empty())
    func->setAttr(usmoe::kNoAliasArgsAttrName,
                  rewriter.getDenseI64ArrayAttr(noAlias));

  Block *entry = func.addEntryBlock();
  rewriter.setInsertionPointToStart(entry);
  IRMapping map;
  for (auto [v, arg] : llvm::zip(captures, entry->getArguments().drop_front(2)))
    map.map(v, arg);
  for (Value v : constants)
    rewriter.clone(*v.getDefiningOp(), map);
  SmallVector<Value> extents;
  for (Value ub : parallel.getUpperBound())
    extents.push_back(map.lookupOrDefault(ub));

  Value begin = entry->getArgument(0), end = entry->getArgument(1);
  // An empty range (T = 0) has zero extents: nothing to split or run.
  Value nonEmpty = arith::CmpIOp::create(rewriter, loc,
                                         arith::CmpIPredicate::ult, begin, end);
  auto guard = scf::IfOp::create(rewriter, loc, nonEmpty, /*withElse=*/false);
  rewriter.setInsertionPoint(guard.thenBlock()->getTerminator());
  size_t dims = extents.size();
  SmallVector<Value> start(dims);
  Value rest = begin;
  for (size_t d = dims - 1; d > 0; --d) {
    start[d] = arith::RemUIOp::create(rewriter, loc, rest, extents[d]);
    rest = arith::DivUIOp::create(rewriter, loc, rest, extents[d]);
  }
  start[0] = rest;

  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
  scf::ForOp::create(
      rewriter, loc, begin, end, one, start,
      [&](OpBuilder &b, Location loc, Value, ValueRange coords) {
        map.map(parallel.getInductionVars(), coords);
        for (Operation &op : parallel.getBody()->without_terminator())
          b.clone(op, map);
        // Step the coordinates: the last one by one, carrying leftwards.
        SmallVector<Value> next(coords);
        Value carry = one;
        for (size_t d = dims; d-- > 0;) {
          Value bumped = arith::AddIOp::create(b, loc, coords[d], carry);
          if (d == 0) {
            next[d] = bumped;
            break;
          }
          Value wraps = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                              bumped, extents[d]);
          next[d] = arith::SelectOp::create(b, loc, wraps, zero, bumped);
          carry = arith::SelectOp::create(b, loc, wraps, one, zero);
        }
        scf::YieldOp::create(b, loc, next);
      });
  rewriter.setInsertionPointToEnd(entry);
  func::ReturnOp::create(rewriter, loc);
  return func;
}

/// Rewrites one marked if: both forms call the outlined body, which it
/// returns. Returns null (leaving the if as it is) when it does not have
/// the expected shape.
static func::FuncOp shareBody(RewriterBase &rewriter, SymbolTable &symbols,
                              scf::IfOp twin, unsigned &counter) {
  scf::ParallelOp parallel = parallelForm(twin);
  if (!parallel)
    return nullptr;
  Location loc = parallel.getLoc();
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(parallel.getRegion(), captured);
  // The body splits iteration numbers by every extent but the first.
  captured.insert_range(parallel.getUpperBound().drop_front());
  // Constants are copied into the body, not passed: LLVM folds them there,
  // which it could not through OpenMP's outlined region.
  SmallVector<Value> captures, constants;
  for (Value v : captured)
    (matchPattern(v, m_Constant()) ? constants : captures).push_back(v);

  auto enclosing = parallel->getParentOfType<FunctionOpInterface>();
  std::string name =
      (enclosing.getName() + "_parallel_body_" + Twine(counter++)).str();
  func::FuncOp body =
      outlineBody(rewriter, symbols, parallel, name, captures, constants);

  auto callBody = [&](OpBuilder &b, Location loc, Value begin, Value end) {
    SmallVector<Value> args{begin, end};
    llvm::append_range(args, captures);
    func::CallOp::create(b, loc, body, args);
  };

  rewriter.setInsertionPoint(twin);
  Value total = parallel.getUpperBound().front();
  for (Value ub : parallel.getUpperBound().drop_front())
    total = arith::MulIOp::create(rewriter, loc, total, ub);

  // Then: equal chunks of the range in parallel.
  rewriter.setInsertionPoint(parallel);
  Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  Value chunks = arith::MinUIOp::create(
      rewriter, loc, total,
      arith::ConstantIndexOp::create(rewriter, loc, kMaxChunks));
  scf::ParallelOp::create(
      rewriter, loc, ValueRange{zero}, ValueRange{chunks}, ValueRange{one},
      [&](OpBuilder &b, Location loc, ValueRange ivs) {
        auto bound = [&](Value chunk) {
          Value scaled = arith::MulIOp::create(b, loc, chunk, total);
          return arith::DivUIOp::create(b, loc, scaled, chunks);
        };
        Value next = arith::AddIOp::create(b, loc, ivs[0], one);
        callBody(b, loc, bound(ivs[0]), bound(next));
      });
  rewriter.eraseOp(parallel);

  // Else: the whole range in one call.
  Block &otherwise = twin.getElseRegion().front();
  SmallVector<Operation *> sequentialForm;
  for (Operation &op : otherwise.without_terminator())
    sequentialForm.push_back(&op);
  for (Operation *op : llvm::reverse(sequentialForm))
    rewriter.eraseOp(op);
  rewriter.setInsertionPoint(otherwise.getTerminator());
  callBody(rewriter, loc, arith::ConstantIndexOp::create(rewriter, loc, 0),
           total);
  twin->removeAttr(usmoe::kSequentialTwinAttrName);
  return body;
}

namespace {
struct ShareParallelBodiesPass
    : usmoe::impl::UsmoeShareParallelBodiesPassBase<ShareParallelBodiesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Innermost first: an outer body is outlined with its inner loops
    // already shared.
    SmallVector<scf::IfOp> twins;
    module.walk<WalkOrder::PostOrder>([&](scf::IfOp op) {
      if (op->hasAttr(usmoe::kSequentialTwinAttrName))
        twins.push_back(op);
    });
    SymbolTable symbols(module);
    IRRewriter rewriter(&getContext());
    unsigned counter = 0;
    SmallVector<func::FuncOp> bodies;
    for (scf::IfOp twin : twins)
      if (func::FuncOp body = shareBody(rewriter, symbols, twin, counter))
        bodies.push_back(body);
    // A loop nested in an outer loop's sequential form was outlined before
    // that form was replaced: its body is called from nowhere now.
    for (func::FuncOp body : llvm::reverse(bodies))
      if (SymbolTable::symbolKnownUseEmpty(body, module))
        symbols.erase(body);
  }
};
} // namespace
