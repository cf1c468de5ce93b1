//===- Compiler.cpp - compile and run moe IR from Python ------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Compiler.h"
#include "JitHeap.h"
#include "usmoe/Support/Bfloat16.h"
#include "usmoe/Support/InputLimits.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "usmoe/Conversion/MoeToGPU/MoeToGPU.h"
#include "usmoe/InitAll.h"
#include "usmoe/Pipelines/Pipelines.h"
#include "usmoe/Runtime/UsmoeRuntime.h"
#include "usmoe/Target/GpuArtifacts.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <numeric>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <mutex>
#include <optional>

using namespace mlir;
using namespace usmoe_py;

namespace {

/// Registers passes and targets once per process.
void initializeOnce() {
  static std::once_flag flag;
  std::call_once(flag, [] {
    mlir::registerAllPasses();
    mlir::usmoe::registerAllPasses();
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::unique_ptr<MLIRContext> makeContext() {
  initializeOnce();
  DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::usmoe::registerAllDialects(registry);
  auto ctx = std::make_unique<MLIRContext>(registry);
  ctx->loadAllAvailableDialects();
  // The JIT runs on the caller's thread; no need for MLIR's thread pool.
  ctx->disableMultithreading();
  return ctx;
}

/// Collects every diagnostic as "line:col: severity: message" text, so that
/// Python exceptions carry what mlir-opt would have printed.
class DiagnosticCollector {
public:
  explicit DiagnosticCollector(MLIRContext &ctx)
      : handler(&ctx, [this](Diagnostic &diag) {
          llvm::raw_string_ostream os(text);
          if (auto loc = dyn_cast<FileLineColLoc>(diag.getLocation()))
            os << loc.getLine() << ":" << loc.getColumn() << ": ";
          switch (diag.getSeverity()) {
          case DiagnosticSeverity::Error:
            os << "error: ";
            break;
          case DiagnosticSeverity::Warning:
            os << "warning: ";
            break;
          default:
            os << "note: ";
            break;
          }
          os << diag.str() << "\n";
          return success();
        }) {}

  [[noreturn]] void fail(const std::string &what) const {
    throw CompileError(what + (text.empty() ? "" : ":\n" + text));
  }

private:
  std::string text;
  ScopedDiagnosticHandler handler;
};

OwningOpRef<ModuleOp> parse(MLIRContext &ctx, const std::string &source,
                            DiagnosticCollector &diags) {
  if (std::string tooDeep = usmoe::checkNesting(source); !tooDeep.empty())
    throw CompileError(tooDeep);
  auto module = parseSourceString<ModuleOp>(source, &ctx, "<usmoe>");
  if (!module)
    diags.fail("could not parse the IR");
  return module;
}

/// Parses a textual pipeline into a pass manager anchored where the
/// pipeline says (a module-anchored manager would nest it and do nothing).
void runTextualPipeline(ModuleOp module, const std::string &pipeline,
                        DiagnosticCollector &diags) {
  std::string errors;
  llvm::raw_string_ostream errorStream(errors);
  std::string anchored = pipeline;
  if (anchored.rfind("builtin.module(", 0) != 0)
    anchored = "builtin.module(" + anchored + ")";
  auto parsed = parsePassPipeline(anchored, errorStream);
  if (failed(parsed))
    throw CompileError("invalid pass pipeline '" + pipeline + "': " + errors);
  PassManager pm(module->getContext(), parsed->getOpAnchorName());
  static_cast<OpPassManager &>(pm) = std::move(*parsed);
  if (failed(pm.run(module)))
    diags.fail("pipeline '" + pipeline + "' failed");
}

TensorSignature signatureOf(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    throw CompileError("only ranked tensors can cross the Python boundary");
  TensorSignature sig;
  Type e = tensor.getElementType();
  if (e.isF32())
    sig.element = "f32";
  else if (e.isF16())
    sig.element = "f16";
  else if (e.isBF16())
    sig.element = "bf16";
  else if (e.isInteger(32))
    sig.element = "i32";
  else if (e.isInteger(64))
    sig.element = "i64";
  else if (e.isInteger(1))
    sig.element = "i1";
  else
    throw CompileError("unsupported element type at the Python boundary");
  for (int64_t d : tensor.getShape())
    sig.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return sig;
}

/// The C-interface memref descriptor of a given rank, as 64-bit words:
/// allocated, aligned, offset, sizes[rank], strides[rank].
int64_t descriptorWords(size_t rank) { return 3 + 2 * int64_t(rank); }

/// f32 -> bf16, round to nearest even (NaN stays NaN). LLVM's x86 backend
/// calls this compiler-rt builtin when it narrows bf16 arithmetic, and
/// Debian 12's libgcc (GCC 12) does not have it, so the JIT gets ours.
extern "C" __bf16 usmoeTruncSfBf2(float value) {
  uint16_t half = mlir::usmoe::roundToBfloat16(value);
  __bf16 result;
  std::memcpy(&result, &half, sizeof(result));
  return result;
}

/// Run-time checks of compiled code (cf.assert, e.g. a budget larger than
/// T * E with a dynamic T) print their message with `puts` and call `abort`.
/// In the JIT both resolve to these, so that a failed check ends the call
/// with an exception instead of killing the caller's process.
thread_local std::string failedCheckMessage;
thread_local std::jmp_buf *failedCheckGuard = nullptr;

extern "C" int usmoeJitPuts(const char *message) {
  failedCheckMessage = message;
  return 0;
}

extern "C" void usmoeJitAbort() {
  if (failedCheckGuard)
    std::longjmp(*failedCheckGuard, 1);
  std::abort();
}

/// Runs `call` (JIT'ed code) so that a failed run-time check returns false
/// with its message. What the code allocated before the check is not freed.
bool runCatchingFailedChecks(llvm::function_ref<void()> call,
                             std::string &message) {
  std::jmp_buf here;
  std::jmp_buf *outer = failedCheckGuard;
  failedCheckGuard = &here;
  if (setjmp(here) != 0) {
    failedCheckGuard = outer;
    message = failedCheckMessage;
    return false;
  }
  call();
  failedCheckGuard = outer;
  return true;
}

} // namespace

int64_t TensorSignature::elementBytes() const {
  if (element == "f32" || element == "i32")
    return 4;
  if (element == "f16" || element == "bf16")
    return 2;
  if (element == "i64")
    return 8;
  return 1;
}

std::string usmoe_py::runPipeline(const std::string &source,
                                  const std::string &pipeline) {
  auto ctx = makeContext();
  DiagnosticCollector diags(*ctx);
  auto module = parse(*ctx, source, diags);
  runTextualPipeline(*module, pipeline, diags);
  std::string out;
  llvm::raw_string_ostream os(out);
  module->print(os);
  return out;
}

GpuArtifacts usmoe_py::compileForGpu(const std::string &source,
                                     const std::string &chip,
                                     const std::string &features,
                                     const std::string &format,
                                     unsigned optLevel) {
  auto ctx = makeContext();
  DiagnosticCollector diags(*ctx);
  auto module = parse(*ctx, source, diags);
  PassManager pm(ctx.get());
  mlir::usmoe::UsmoeToNVVMPipelineOptions options;
  options.chip = chip;
  options.features = features;
  options.format = format;
  options.optLevel = optLevel;
  mlir::usmoe::buildUsmoeToNVVMPipeline(pm, options);
  if (failed(pm.run(*module)))
    diags.fail("lowering for the GPU failed");
  GpuArtifacts artifacts;
  std::vector<mlir::usmoe::GpuObject> objects =
      mlir::usmoe::collectGpuObjects(*module);
  if (objects.empty())
    throw CompileError("the IR has no moe op to compile for the GPU");
  for (const mlir::usmoe::GpuObject &o : objects)
    artifacts.files.emplace_back(
        mlir::usmoe::gpuObjectFileName(o, objects.size()), o.bytes);
  artifacts.metadata =
      mlir::usmoe::gpuMetadataJson(*module, objects.front().binary);
  return artifacts;
}

/// A runtime library, loaded RTLD_GLOBAL so that JIT'ed code resolves its
/// calls to this very instance, and its functions by name.
class RuntimeLibrary {
public:
  RuntimeLibrary(const std::string &path, std::string what)
      : what(std::move(what)) {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!handle)
      throw DeviceError("cannot load " + this->what + " '" + path +
                        "': " + dlerror());
  }
  void *symbol(const char *name) const {
    void *f = dlsym(handle, name);
    if (!f)
      throw DeviceError(what + " lacks " + name);
    return f;
  }

private:
  void *handle = nullptr;
  std::string what;
};

/// The runtime library functions a GPU JitFunction stages memory with.
struct GpuRuntime {
  void *(*memAlloc)(uint64_t bytes, void *stream, bool hostShared) = nullptr;
  void (*memFree)(void *ptr, void *stream) = nullptr;
  uint64_t (*failureCount)() = nullptr;
  int (*lastFailure)(char *message, size_t size) = nullptr;
  void (*beginStreamCall)(void *stream) = nullptr;
  void (*endStreamCall)() = nullptr;
  int (*freeAsync)(uint64_t ptr, void *stream) = nullptr;
  decltype(&usmoe_rt_read_results) readResults = nullptr;

  /// Loads the runtime (the same instance the JIT'ed code links against)
  /// and checks that a GPU is there.
  static GpuRuntime load(const std::string &path) {
    RuntimeLibrary library(path, "the usmoe CUDA runtime");
    auto symbol = [&](const char *name) { return library.symbol(name); };
    auto init = reinterpret_cast<int (*)()>(symbol("usmoe_rt_init"));
    auto lastError =
        reinterpret_cast<const char *(*)()>(symbol("usmoe_rt_last_error"));
    if (init() != 0)
      throw DeviceError(lastError());
    GpuRuntime rt;
    rt.memAlloc =
        reinterpret_cast<decltype(rt.memAlloc)>(symbol("mgpuMemAlloc"));
    rt.readResults = reinterpret_cast<decltype(rt.readResults)>(
        symbol("usmoe_rt_read_results"));
    rt.memFree = reinterpret_cast<decltype(rt.memFree)>(symbol("mgpuMemFree"));
    rt.failureCount = reinterpret_cast<decltype(rt.failureCount)>(
        symbol("usmoe_rt_mgpu_failure_count"));
    rt.lastFailure = reinterpret_cast<decltype(rt.lastFailure)>(
        symbol("usmoe_rt_mgpu_last_failure"));
    rt.beginStreamCall = reinterpret_cast<decltype(rt.beginStreamCall)>(
        symbol("usmoe_rt_mgpu_begin_stream_call"));
    rt.endStreamCall = reinterpret_cast<decltype(rt.endStreamCall)>(
        symbol("usmoe_rt_mgpu_end_stream_call"));
    rt.freeAsync =
        reinterpret_cast<decltype(rt.freeAsync)>(symbol("usmoe_rt_free_async"));
    return rt;
  }

  std::string lastFailureMessage() const {
    char message[512] = {0};
    lastFailure(message, sizeof(message));
    return message;
  }
};

/// The GPU emulator's error interface (usmoe/Runtime/GpuEmulator.h).
struct EmulatorRuntime {
  int (*guardedCall)(void (*)(void **), void **) = nullptr;
  int (*failed)() = nullptr;
  const char *(*lastError)() = nullptr;
  void (*clearError)() = nullptr;

  /// Loads the runtime (the instance the JIT'ed code links against) and
  /// makes it leave error reports to us instead of printing them.
  static EmulatorRuntime load(const std::string &path) {
    RuntimeLibrary library(path, "the usmoe GPU emulator");
    auto symbol = [&](const char *name) { return library.symbol(name); };
    EmulatorRuntime rt;
    rt.guardedCall = reinterpret_cast<decltype(rt.guardedCall)>(
        symbol("usmoe_emu_guarded_call"));
    rt.failed = reinterpret_cast<int (*)()>(symbol("usmoe_emu_failed"));
    rt.lastError =
        reinterpret_cast<const char *(*)()>(symbol("usmoe_emu_last_error"));
    rt.clearError =
        reinterpret_cast<void (*)()>(symbol("usmoe_emu_clear_error"));
    reinterpret_cast<void (*)(int)>(symbol("usmoe_emu_set_print_errors"))(0);
    return rt;
  }
};

struct JitFunction::Impl {
  std::unique_ptr<MLIRContext> ctx;
  std::unique_ptr<ExecutionEngine> engine;
  std::string symbol;
  std::optional<GpuRuntime> gpu;
  std::optional<EmulatorRuntime> emulator;

  using PackedEntry = void (*)(void **);

  /// The compiled function's packed entry point, looked up on the first
  /// call only: an ORC symbol lookup costs microseconds, a sizeable part of
  /// a decode step's router call. Throws CompileError if it is missing.
  PackedEntry entry() {
    std::call_once(resolved, [&] {
      engine->initialize(); // as invokePacked does (runs once)
      auto function = engine->lookupPacked(symbol);
      if (function)
        packed = *function;
      else
        lookupError = llvm::toString(function.takeError());
    });
    if (!packed)
      throw CompileError("call failed: " + lookupError);
    return packed;
  }

private:
  std::once_flag resolved;
  PackedEntry packed = nullptr;
  std::string lookupError;
};

namespace {
/// A public function of `source` lowered to the LLVM dialect for a target
/// (usmoe-to-nvvm for `gpu`, usmoe-to-gpu-emu for `emulator`, else
/// usmoe-to-cpu with `cpu`'s options), with its C interface.
struct LoweredFunction {
  std::unique_ptr<MLIRContext> ctx;
  OwningOpRef<ModuleOp> module;
  std::vector<TensorSignature> args, res;
  /// The host code reads device memory (no stream calls).
  bool hostReadsDevice = false;
};

LoweredFunction lowerFunction(const std::string &source,
                              const std::string &name, const GpuTarget *gpu,
                              const EmulatorTarget *emulator,
                              const CpuTarget *cpu) {
  LoweredFunction out;
  out.ctx = makeContext();
  DiagnosticCollector diags(*out.ctx);
  out.module = parse(*out.ctx, source, diags);
  auto func = out.module->lookupSymbol<func::FuncOp>(name);
  if (!func || func.isExternal())
    throw CompileError("no function named '" + name + "' with a body");
  for (Type t : func.getArgumentTypes())
    out.args.push_back(signatureOf(t));
  for (Type t : func.getResultTypes())
    out.res.push_back(signatureOf(t));
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(out.ctx.get()));

  PassManager pm(out.ctx.get());
  if (gpu) {
    mlir::usmoe::UsmoeToNVVMPipelineOptions options;
    options.chip = gpu->chip;
    options.features = gpu->features;
    options.format = "bin";
    mlir::usmoe::buildUsmoeToNVVMPipeline(pm, options);
  } else if (emulator) {
    mlir::usmoe::buildUsmoeToGPUEmulatorPipeline(pm);
  } else {
    mlir::usmoe::UsmoeToCPUPipelineOptions options;
    if (cpu && cpu->oneDnn)
      options.expertGemm = mlir::usmoe::ExpertGemm::OneDnn;
    if (cpu && !cpu->openmpRuntimePath.empty())
      options.openmp = true;
    mlir::usmoe::buildUsmoeToCPUPipeline(pm, options);
  }
  if (failed(pm.run(*out.module)))
    diags.fail("lowering '" + name + "' for the " +
               std::string(gpu        ? "GPU"
                           : emulator ? "GPU emulator"
                                      : "CPU") +
               " failed");
  out.hostReadsDevice =
      (*out.module)->hasAttr(mlir::usmoe::kHostReadsDeviceAttr);
  return out;
}

/// A target machine for this host's CPU (null if LLVM cannot describe it):
/// without one LLVM's cost model knows no vector registers and vectorizes
/// nothing. `library`: position-independent code for the architecture's
/// baseline CPU instead, for a shared library that may run on another
/// machine (GPU host code is launch glue: nothing to vectorize).
std::unique_ptr<llvm::TargetMachine> hostTargetMachine(bool library = false) {
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder) {
    llvm::consumeError(builder.takeError());
    return nullptr;
  }
  if (library) {
    builder->setRelocationModel(llvm::Reloc::PIC_);
    builder->setCPU("");
    builder->setFeatures("");
  }
  auto machine = builder->createTargetMachine();
  if (!machine) {
    llvm::consumeError(machine.takeError());
    return nullptr;
  }
  return std::move(*machine);
}
} // namespace

HostObject usmoe_py::compileGpuHostObject(const std::string &source,
                                          const std::string &name,
                                          const GpuTarget &target,
                                          int optLevel) {
  LoweredFunction lowered =
      lowerFunction(source, name, &target, nullptr, nullptr);
  HostObject out;
  std::vector<mlir::usmoe::GpuObject> objects =
      mlir::usmoe::collectGpuObjects(*lowered.module);
  if (!objects.empty())
    out.kernelMetadata =
        mlir::usmoe::gpuMetadataJson(*lowered.module, objects.front().binary);
  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*lowered.module, llvmCtx, name);
  if (!llvmModule)
    throw CompileError("translating '" + name + "' to LLVM IR failed");
  std::unique_ptr<llvm::TargetMachine> machine =
      hostTargetMachine(/*library=*/true);
  if (!machine)
    throw CompileError("LLVM cannot generate code for this host");
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(machine->getTargetTriple());

  // A failed cf.assert prints with puts and calls abort: in a library they
  // go to the runtime, which ends the call instead of the process.
  const std::pair<const char *, const char *> renamed[] = {
      {"puts", "usmoe_rt_check_message"}, {"abort", "usmoe_rt_check_abort"}};
  for (auto [from, to] : renamed)
    if (llvm::Function *f = llvmModule->getFunction(from))
      f->setName(to);

  // The packed interface usmoe_rt_host_call takes: args[i] points at the
  // C interface's i-th argument (a descriptor pointer).
  llvm::Function *ciface = llvmModule->getFunction("_mlir_ciface_" + name);
  if (!ciface)
    throw CompileError("'" + name + "' has no C interface after lowering");
  auto *ptrType = llvm::PointerType::getUnqual(llvmCtx);
  out.packedSymbol = "_usmoe_packed_" + name;
  auto *packed = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(llvmCtx), {ptrType},
                              /*isVarArg=*/false),
      llvm::GlobalValue::ExternalLinkage, out.packedSymbol, *llvmModule);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(llvmCtx, "entry", packed));
  SmallVector<llvm::Value *> callArgs;
  for (llvm::Argument &arg : ciface->args()) {
    llvm::Value *slot =
        b.CreateConstGEP1_64(ptrType, packed->getArg(0), arg.getArgNo());
    llvm::Value *pointee = b.CreateLoad(ptrType, slot);
    callArgs.push_back(b.CreateLoad(arg.getType(), pointee));
  }
  b.CreateCall(ciface, callArgs);
  b.CreateRetVoid();

  if (llvm::Error error = makeOptimizingTransformer(
          optLevel, /*sizeLevel=*/0, machine.get())(llvmModule.get()))
    throw CompileError("optimizing '" + name +
                       "' failed: " + llvm::toString(std::move(error)));
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    throw CompileError("LLVM cannot emit an object file for this host");
  codegen.run(*llvmModule);
  out.object.assign(buffer.begin(), buffer.end());
  out.args = std::move(lowered.args);
  out.res = std::move(lowered.res);
  out.hostReadsDevice = lowered.hostReadsDevice;
  return out;
}

JitFunction::JitFunction(const std::string &source, const std::string &name,
                         int optLevel, const GpuTarget *gpu,
                         const EmulatorTarget *emulator, const CpuTarget *cpu)
    : impl(std::make_unique<Impl>()) {
  if (gpu)
    impl->gpu = GpuRuntime::load(gpu->runtimePath);
  if (emulator)
    impl->emulator = EmulatorRuntime::load(emulator->runtimePath);
  LoweredFunction lowered = lowerFunction(source, name, gpu, emulator, cpu);
  impl->ctx = std::move(lowered.ctx);
  auto &module = lowered.module;
  args = std::move(lowered.args);
  res = std::move(lowered.res);
  hostReadsDevice = lowered.hostReadsDevice;

  std::unique_ptr<llvm::TargetMachine> hostMachine = hostTargetMachine();
  auto transformer =
      makeOptimizingTransformer(optLevel, /*sizeLevel=*/0, hostMachine.get());
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = transformer;
  SmallVector<StringRef> sharedLibs;
  if (gpu)
    sharedLibs.push_back(gpu->runtimePath);
  if (emulator)
    sharedLibs.push_back(emulator->runtimePath);
  if (cpu && cpu->oneDnn)
    sharedLibs.push_back(cpu->runtimePath);
  if (cpu && !cpu->openmpRuntimePath.empty())
    sharedLibs.push_back(cpu->openmpRuntimePath);
  engineOptions.sharedLibPaths = sharedLibs;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine) {
    std::string message = llvm::toString(engine.takeError());
    throw CompileError("JIT compilation failed: " + message);
  }
  impl->engine = std::move(*engine);
  impl->engine->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    // What JIT'ed code calls that usmoe provides itself (see each function).
    const std::pair<const char *, void *> provided[] = {
        {"__truncsfbf2", reinterpret_cast<void *>(&usmoeTruncSfBf2)},
        {"puts", reinterpret_cast<void *>(&usmoeJitPuts)},
        {"abort", reinterpret_cast<void *>(&usmoeJitAbort)},
        {"malloc", reinterpret_cast<void *>(&usmoeJitMalloc)},
        {"free", reinterpret_cast<void *>(&usmoeJitFree)},
    };
    llvm::orc::SymbolMap symbols;
    for (auto [name, address] : provided)
      symbols[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                 llvm::JITSymbolFlags::Exported};
    return symbols;
  });
  impl->symbol = "_mlir_ciface_" + name;
}

JitFunction::~JitFunction() = default;

namespace {
int64_t elementCount(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Throws CompileError unless argument `i` has the rank and static sizes of
/// `sig` (the Python layer checks first; this is the last line).
void checkArgument(const HostArray &a, const TensorSignature &sig, size_t i) {
  if (a.shape.size() != sig.shape.size())
    throw CompileError("argument " + std::to_string(i) + " has rank " +
                       std::to_string(a.shape.size()) + ", expected " +
                       std::to_string(sig.shape.size()));
  for (size_t d = 0; d < a.shape.size(); ++d)
    if (sig.shape[d] >= 0 && sig.shape[d] != a.shape[d])
      throw CompileError("argument " + std::to_string(i) + " dimension " +
                         std::to_string(d) + " must be " +
                         std::to_string(sig.shape[d]));
}

/// The memref descriptor words of a row-major array at `data`.
std::vector<int64_t> rowMajorDescriptor(void *data,
                                        const std::vector<int64_t> &shape) {
  size_t rank = shape.size();
  std::vector<int64_t> desc(descriptorWords(rank));
  desc[0] = desc[1] = reinterpret_cast<int64_t>(data);
  desc[2] = 0;
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    desc[3 + d] = shape[d];
    desc[3 + rank + d] = stride;
    stride *= shape[d];
  }
  return desc;
}

/// The arguments of a packed-interface call of a C-interface function:
/// a pointer to the results' storage (one descriptor, or a struct of
/// them), then a pointer to each argument's descriptor. Not copyable:
/// `packed` points into the object.
class PackedCall {
public:
  PackedCall(std::vector<std::vector<int64_t>> argDescs,
             const std::vector<TensorSignature> &results)
      : argDescs(std::move(argDescs)) {
    int64_t words = 0;
    for (const TensorSignature &sig : results)
      words += descriptorWords(sig.shape.size());
    resultStorage.resize(std::max<int64_t>(words, 1));
    resultPtr = resultStorage.data();
    for (auto &desc : this->argDescs)
      argPtrs.push_back(desc.data());
    if (!results.empty())
      packed.push_back(&resultPtr);
    for (void *&p : argPtrs)
      packed.push_back(&p);
  }
  PackedCall(const PackedCall &) = delete;
  PackedCall &operator=(const PackedCall &) = delete;

  void **arguments() { return packed.data(); }
  int64_t *results() { return resultStorage.data(); }

private:
  std::vector<std::vector<int64_t>> argDescs;
  std::vector<int64_t> resultStorage;
  void *resultPtr = nullptr;
  std::vector<void *> argPtrs, packed;
};
} // namespace

std::vector<OwnedResult>
JitFunction::call(const std::vector<HostArray> &inputs) const {
  if (inputs.size() != args.size())
    throw CompileError("expected " + std::to_string(args.size()) +
                       " arguments, got " + std::to_string(inputs.size()));
  const std::optional<GpuRuntime> &gpu = impl->gpu;
  // On the GPU, arguments live in managed memory for the call.
  std::vector<void *> staged;
  auto releaseStaged = [&] {
    for (void *p : staged)
      gpu->memFree(p, nullptr);
  };

  for (size_t i = 0; i < inputs.size(); ++i)
    checkArgument(inputs[i], args[i], i);
  // Argument descriptors: contiguous row-major views of the host arrays
  // (on the GPU, of their copies in managed memory).
  std::vector<std::vector<int64_t>> argDescs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const HostArray &a = inputs[i];
    void *data = a.data;
    if (gpu) {
      size_t bytes = size_t(elementCount(a.shape) * args[i].elementBytes());
      data = gpu->memAlloc(std::max<size_t>(bytes, 1), nullptr,
                           /*hostShared=*/true);
      if (!data) {
        releaseStaged();
        throw DeviceError("cannot allocate managed memory for argument " +
                          std::to_string(i) + ": " + gpu->lastFailureMessage());
      }
      staged.push_back(data);
      std::memcpy(data, a.data, bytes);
    }
    argDescs.push_back(rowMajorDescriptor(data, a.shape));
  }
  PackedCall packed(std::move(argDescs), res);
  uint64_t failuresBefore = gpu ? gpu->failureCount() : 0;
  const std::optional<EmulatorRuntime> &emulator = impl->emulator;
  if (emulator)
    emulator->clearError();
  Impl::PackedEntry function;
  try {
    function = impl->entry();
  } catch (...) {
    if (gpu)
      releaseStaged();
    throw;
  }
  bool emulationFailed = false;
  std::string failedCheck;
  bool checksPassed = runCatchingFailedChecks(
      [&] {
        // On the emulator a failed kernel check ends the call at the failing
        // launch: the host code after it (which may read what the kernel
        // should have written) never runs.
        if (emulator)
          emulationFailed =
              emulator->guardedCall(function, packed.arguments()) != 0 ||
              emulator->failed();
        else
          function(packed.arguments());
      },
      failedCheck);
  if (!checksPassed) {
    if (gpu)
      releaseStaged();
    if (emulator)
      emulator->clearError();
    throw CompileError("a run-time check of the compiled code failed: " +
                       failedCheck);
  }
  if (emulationFailed) {
    std::string report = emulator->lastError();
    emulator->clearError();
    throw DeviceError("the emulated GPU function failed: " + report);
  }

  std::vector<OwnedResult> out;
  int64_t *word = packed.results();
  // One owner per allocation: results that share one keep it alive together.
  std::vector<std::pair<void *, std::shared_ptr<void>>> owners;
  for (const TensorSignature &sig : res) {
    size_t rank = sig.shape.size();
    OwnedResult r;
    void *allocated = reinterpret_cast<void *>(word[0]);
    auto *aligned = reinterpret_cast<char *>(word[1]);
    int64_t offset = word[2];
    for (size_t d = 0; d < rank; ++d)
      r.shape.push_back(word[3 + d]);
    int64_t elements = elementCount(r.shape);
    // Results come back row-major (fresh allocations); keep the offset.
    r.data = aligned + offset * sig.elementBytes();
    auto shared =
        std::find_if(owners.begin(), owners.end(),
                     [&](const auto &o) { return o.first == allocated; });
    bool seen = shared != owners.end();
    if (gpu) {
      // Copy out of managed memory into a host block the caller owns.
      size_t bytes = size_t(elements * sig.elementBytes());
      if (bytes) {
        r.owner = std::shared_ptr<void>(std::malloc(bytes), std::free);
        std::memcpy(r.owner.get(), r.data, bytes);
      }
      r.data = r.owner.get();
      bool isArgument =
          std::find(staged.begin(), staged.end(), allocated) != staged.end();
      if (!seen && !isArgument && allocated)
        gpu->memFree(allocated, nullptr);
      owners.emplace_back(allocated, nullptr);
    } else if (seen) {
      r.owner = shared->second;
    } else {
      // The code's allocation (usmoeJitMalloc) is the result's storage.
      r.owner = allocated ? std::shared_ptr<void>(allocated, usmoeJitFree)
                          : std::shared_ptr<void>();
      owners.emplace_back(allocated, r.owner);
    }
    out.push_back(std::move(r));
    word += descriptorWords(rank);
  }
  if (gpu) {
    releaseStaged();
    if (gpu->failureCount() != failuresBefore) {
      out.clear();
      throw DeviceError("the GPU function failed: " +
                        gpu->lastFailureMessage());
    }
  }
  return out;
}

std::vector<DeviceResult>
JitFunction::callOnDevice(const std::vector<HostArray> &inputs,
                          void *stream) const {
  const std::optional<GpuRuntime> &gpu = impl->gpu;
  if (!gpu)
    throw CompileError("a call on device memory needs a function compiled "
                       "for the GPU (JitFunction.for_gpu)");
  if (hostReadsDevice)
    throw CompileError(
        "this function's host code reads device memory on the host (a "
        "moe.plan of a selection that is not a moe.route's reads its row "
        "count back), so it cannot run asynchronously on device arrays: "
        "call it with host (NumPy) arrays");
  if (inputs.size() != args.size())
    throw CompileError("expected " + std::to_string(args.size()) +
                       " arguments, got " + std::to_string(inputs.size()));
  std::vector<std::vector<int64_t>> argDescs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    checkArgument(inputs[i], args[i], i);
    argDescs.push_back(rowMajorDescriptor(inputs[i].data, inputs[i].shape));
  }
  PackedCall packed(std::move(argDescs), res);

  Impl::PackedEntry function = impl->entry();
  uint64_t failuresBefore = gpu->failureCount();
  std::string failedCheck;
  gpu->beginStreamCall(stream);
  bool checksPassed = runCatchingFailedChecks(
      [&] { function(packed.arguments()); }, failedCheck);
  gpu->endStreamCall();

  // The results' descriptors, read by the runtime's one reader.
  std::vector<int32_t> ranks, elementBytes;
  for (const TensorSignature &sig : res) {
    ranks.push_back(int32_t(sig.shape.size()));
    elementBytes.push_back(int32_t(sig.elementBytes()));
  }
  std::vector<uint64_t> argPointers;
  for (const HostArray &a : inputs)
    argPointers.push_back(reinterpret_cast<uint64_t>(a.data));
  size_t count = res.size();
  std::vector<uint64_t> allocation(count), data(count);
  std::vector<int64_t> shapes(
      std::accumulate(ranks.begin(), ranks.end(), size_t(0)));
  gpu->readResults(packed.results(), int32_t(count), ranks.data(),
                   elementBytes.data(), argPointers.data(),
                   int32_t(argPointers.size()), allocation.data(), data.data(),
                   shapes.data());
  std::vector<DeviceResult> out(count);
  std::vector<uint64_t> owned;
  const int64_t *dims = shapes.data();
  for (size_t i = 0; i < count; ++i) {
    out[i].allocation = allocation[i];
    out[i].data = data[i];
    out[i].shape.assign(dims, dims + ranks[i]);
    dims += ranks[i];
    if (allocation[i])
      owned.push_back(allocation[i]);
  }
  bool driverFailed = gpu->failureCount() != failuresBefore;
  if (!checksPassed || driverFailed) {
    if (checksPassed) // results of a failed check were never written
      for (uint64_t p : owned)
        gpu->freeAsync(p, stream);
    if (!checksPassed)
      throw CompileError("a run-time check of the compiled code failed: " +
                         failedCheck);
    throw DeviceError("the GPU function failed: " + gpu->lastFailureMessage());
  }
  return out;
}
