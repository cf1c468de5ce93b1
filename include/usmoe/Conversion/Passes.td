//===- Passes.td - usmoe conversion passes -----------------*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_PASSES_TD
#define USMOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoeToLoopsPass : Pass<"convert-moe-to-loops"> {
  let summary = "Lower every moe op to scf loops over memrefs";
  let description = [{
    The reference lowering of the `moe` dialect, used by the CPU pipeline
    and as the oracle of the GPU path. Each op reads its tensor operands
    through `bufferization.to_buffer`, computes its results with `scf.for`
    loops, `arith` and `math` on memrefs, and hands them back through
    `bufferization.to_tensor restrict`, so `one-shot-bufferize` finishes
    the job.

    The algorithms follow the normative semantics (docs/Dialect.md):
    scores in f32; NaN logits as `-inf`; selection by an order-preserving
    integer key of each f32 score, ties to the lower index. The per-token
    top-k keeps the k best in registers in one pass over the row (k <= 16;
    k scans beyond), the 8 rows of a token group side by side in vector
    lanes; Expert Choice and the unified global top-N select by a
    running top-k for budgets of at most 8, by ranks for sets of at most 32
    and by a 4-pass radix select over the keys otherwise (O(T * E), no
    sort). Fused `moe.route` ops compute scores straight into the gate
    buffer and select in place, a group of 8 rows (Token Choice) or one
    sequence (Unified) at a time; a Token Choice route also writes the
    `topk_list`s with its k and builds the `plan`s of its selection from
    each row's picks.

    Budgets that depend on a dynamic T are checked at run time with
    `cf.assert` (n <= T * E, capacity <= T).

    `expert-gemm=onednn` lowers f32 and bf16 `moe.expert_ffn` to a call of
    `usmoe_cpu_expert_ffn_<type>` in libusmoe_cpu_runtime.so (the GEMMs on
    oneDNN, every core; weights passed as strided views, either layout),
    with a run-time check of its status; link that library to run the code.
  }];
  let options = [
    Option<"expertGemm", "expert-gemm", "::mlir::usmoe::ExpertGemm",
           "::mlir::usmoe::ExpertGemm::Loops",
           "Where moe.expert_ffn's GEMMs run: generated loops, or oneDNN "
           "through libusmoe_cpu_runtime.so (f32 and bf16)",
           [{::llvm::cl::values(
             clEnumValN(::mlir::usmoe::ExpertGemm::Loops, "loops",
                        "generated scf loops"),
             clEnumValN(::mlir::usmoe::ExpertGemm::OneDnn, "onednn",
                        "oneDNN matmuls in libusmoe_cpu_runtime.so"))}]>
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::func::FuncDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def UsmoeShareParallelBodiesPass
    : Pass<"usmoe-share-parallel-bodies", "::mlir::ModuleOp"> {
  let summary = "Emit each parallel loop body once for its parallel and "
                "sequential forms";
  let description = [{
    `convert-moe-to-loops` writes every parallel loop as an `scf.if` on its
    amount of work, marked `usmoe.sequential_twin`: an `scf.parallel` when
    the work is worth waking threads for, and the same body in a sequential
    `scf.for` nest otherwise (decode-sized calls never touch the thread
    pool). Both forms are correct, but LLVM compiles the body twice, which
    roughly doubles a router's JIT time.

    This pass outlines the body into one private function that runs a
    contiguous range of the flattened iteration space, `(begin, end,
    captured values...)`, and rewrites the two forms as calls of it: the
    parallel form becomes an `scf.parallel` over at most 128 equal chunks
    of the range (OpenMP's static schedule gives each thread adjacent
    chunks, as it gave each thread adjacent iterations before), the
    sequential form one call over the whole range. One call per chunk, not
    per iteration, so small bodies (a token's row) pay no call each.

    Iterations run in the same order as before on each thread and the body
    is unchanged, so results are too. An `scf.if` that does not have the
    expected shape (a then-branch holding only a zero-based, unit-step,
    reduction-free `scf.parallel`) keeps both forms.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def UsmoeExpandExpPass : Pass<"usmoe-expand-exp"> {
  let summary = "Rewrite f32 math.exp into f32 arithmetic, the same on the "
                "CPU and the GPU";
  let description = [{
    One exp for every backend. Lowered as is, `math.exp` becomes libm's
    `expf` on the CPU and libdevice's `__nv_expf` (`ex2.approx`) on the GPU:
    they differ in the last bits, so the two paths scored the same logits
    differently and could select differently where scores tie, and the libm
    call keeps every loop around it scalar. This pass rewrites each scalar
    f32 `math.exp` into IEEE f32 operations that round alike everywhere:
    `k = roundeven(x * log2(e))` (by adding and subtracting 1.5 * 2^23, the
    integer from the sum's bits: no float/int conversion), `r = x - k ln 2`
    (two fmas, ln 2 split in
    two), `exp(r) = 1 + fma(r^2, q(r), r)` with `q` the degree-5 Taylor
    polynomial by Horner's rule in fmas, times `2^k` applied as two exact
    powers of two. Within 1.06 ulp of exp on every f32 input (all of them
    measured), the correctly rounded f32 for about 9 in 10; +-inf, overflow, f32 subnormals
    and NaN come out as IEEE says. The CPU pipeline runs it after
    `convert-moe-to-loops`, the GPU pipelines on the kernels; other element
    types and vector exps are left alone.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
  ];
}

def UsmoeBoolsAsBytesPass : Pass<"usmoe-bools-as-bytes"> {
  let summary = "Load and store i1 values in memory as i8 so mask loops "
                "vectorize";
  let description = [{
    A `memref<...xi1>` (a routing mask) lowers to one byte per element,
    accessed with `llvm.load`/`llvm.store` of `i1`. LLVM's loop vectorizer
    does not widen accesses of a type narrower than its storage, so every
    loop over a mask (the plan's counting pass, the top-k lists, dispatch)
    stays scalar. This pass rewrites each scalar `i1` load into an `i8`
    load of the same address (all other attributes kept) and a `trunc`,
    and each scalar `i1` store into a `zext` and an `i8` store: the same
    bytes, in a form the vectorizer handles. Masks from NumPy or PyTorch are
    bytes of 0 or 1, as the stores write them. The CPU pipeline runs it on
    the LLVM dialect, after the conversion to LLVM.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def UsmoeNoAliasArgsPass : Pass<"usmoe-noalias-args", "::mlir::ModuleOp"> {
  let summary = "Mark the parameters listed in usmoe.noalias_args noalias";
  let description = [{
    usmoe-share-parallel-bodies moves loop bodies into functions whose
    memref parameters LLVM must assume may overlap, so short loops over a
    scratch buffer (which it will not guard with run-time overlap checks)
    stop vectorizing. That pass lists, in the `usmoe.noalias_args`
    attribute, the parameters that cannot overlap anything else the body
    touches; this pass, run on the LLVM dialect, puts `llvm.noalias` on
    each of them and drops the list. The CPU pipeline runs it right after
    the conversion to LLVM.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def ConvertMoeToGPUPass : Pass<"convert-moe-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower fused moe.route ops to hand-designed GPU kernels";
  let description = [{
    Replaces each supported `moe.route` with a `gpu.launch_func` of a kernel
    generated into the `gpu.module @usmoe_kernels` of the module (created on
    demand; the module becomes a `gpu.container_module`). The kernels are
    written with `gpu`, `arith`, `math`, `memref` and `scf` ops and lower
    through `convert-gpu-to-nvvm` (see the `usmoe-to-nvvm` pipeline).

    Supported so far (details and launch shapes in docs/Design.md):

    - `moe.route token`, E <= 2048, any k: one warp per token, 4 tokens per
      128-thread block (E <= 16: a segment of E rounded up to a power of two
      lanes per token, 32 / that many tokens a warp); the row in registers
      (16-byte vector loads when E % 4 == 0 and E > 16); the max by a
      `gpu.shuffle xor` butterfly, the sum by one over i64 units (the
      order-free sum the CPU computes too, so every lane and both paths
      divide by the same bits); each of the k picks a warp
      arg-max over (score key, expert index), ties to the lower index; gates
      and mask written once.
    - `moe.route unified` / `moe.route expert`: each row's softmax max and
      sum into a statistics buffer, from which the select kernels recompute
      the scores (by the same code; with `softmax_tokens`, row scores into
      the gate buffer and a column kernel mixing them), then the radix
      select of each sequence (Unified) or (sequence, expert) column
      (Expert Choice), 8-bit digits from the top. A set runs on one
      1024-thread block (shared-memory histograms, ties ranked in index
      order by block prefix counts) unless it has more than `select-spread`
      elements and there are fewer than 128 sets (packed sequences always
      run on one block each): then it spreads over ceil(count /
      select-chunk) blocks, a histogram launch per digit merged by the set's
      last block to finish (no host round trip; once the keys matching the
      prefix fit a quarter of the set, the next pass compacts them into a
      candidate buffer that the later digits read), then one marking launch.
      Unified sequences of one token (at most 128 of them, sigmoid expert
      score) take the Token Choice kernel ranking U instead (one launch).
    - `moe.plan`: a thread per row of each tile of 128 rows marks the
      row in its experts' 128-bit sets (shared memory), so counts per
      (expert, tile) and ranks are popcounts; counts per (expert, chunk of
      16 tiles) are scanned into the offsets and each chunk's first rows,
      then the tiles fill the expert-major rows in token order (E <= 2048).
      For a route's selection (M from its budget) the route's first kernel
      zeroes the counts, the Unified / Expert Choice select kernels count
      their selection and their last block scans (the plan is one fill
      launch), Token Choice counts and scans in one launch; B * T <= 128
      runs on one block (one launch).
      Other selections: count, scan, M read back, fill.
    - `moe.dispatch`: a block per plan row.
    - `moe.expert_ffn`: a block per plan row (expert by binary search in the
      offsets), SwiGLU through an [M, F] f32 scratch buffer.
    - `moe.combine` with `expert_offsets`: a block per token, rows found by
      binary search per expert, summed in row order (no atomics).

    The module attribute `usmoe.kernels` maps every kernel to a
    `#moe.kernel` (kind, argument types, block, grid, launches and bytes as
    shape expressions), checked against the kernels at the end of the
    pass, for runtimes without MLIR and the cost report.

    Any other moe op is an error ("not supported on the GPU path yet"), so
    that nothing silently runs on the host; the CPU path (`usmoe-to-cpu`)
    supports all of them.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::cf::ControlFlowDialect",
  ];
  let options = [
    Option<"selectChunk", "select-chunk", "int64_t",
           /*default=*/"::mlir::usmoe::kDefaultSelectChunk",
           "Elements of a selection set per block when a set spreads over "
           "blocks">,
    Option<"selectSpread", "select-spread", "int64_t",
           /*default=*/"::mlir::usmoe::kDefaultSelectSpread",
           "Sets of more elements than this spread over blocks when there are "
           "fewer than 128 sets (tests lower both to exercise that path on "
           "small inputs)">,
  ];
}

def UsmoeGpuCostReportPass
    : Pass<"usmoe-gpu-cost-report", "::mlir::ModuleOp"> {
  let summary = "Print the cost model of the generated GPU kernels for a shape";
  let description = [{
    Evaluates, for the symbols given in `shape`, the cost that
    convert-moe-to-gpu recorded for each kernel in `usmoe.kernels` (launches,
    grid, DRAM bytes read and written, as shape expressions) and prints a
    table in launch order to stdout, with an estimate per kernel and the
    HBM floor of the module's ops (operands read once, results written
    once). The IR is unchanged. E, K, D and F default to the kernels' own.

    The estimate is a roofline without caches: per launch `launch-us` plus
    the largest of the bytes at `bandwidth-gbs`, the kernel's FLOPs (where
    it records them: the expert GEMMs) at `tensor-tflops` and its thread
    instructions (where it records them: the select passes that recompute
    scores, counted per element from their PTX) at `tera-instructions`, all scaled by
    min(1, blocks / sms) (a grid of fewer blocks than SMs reaches only their
    share of the chip). Bytes a kernel's last block moves alone after the
    rest of its grid (its `tail_bytes`, e.g. a last-block scan) are charged
    on top at one SM's share of the bandwidth. With FLOPs the floor is the
    larger of the HBM floor and the FLOPs at peak. It
    judges designs before a GPU is at hand; measured times replace it where
    they exist (docs/gpu-performance.md).

    ```sh
    usmoe-opt router.mlir -moe-fuse-routing -convert-moe-to-gpu \
      -usmoe-gpu-cost-report="shape=B=1,T=16384,M=24576" -o /dev/null
    ```
  }];
  let options = [
    Option<"shape", "shape", "std::string", /*default=*/"\"\"",
           "Symbol values, e.g. B=1,T=16384,E=64,M=24576,D=4096,F=14336">,
    Option<"bandwidthGBs", "bandwidth-gbs", "double", /*default=*/"3350.0",
           "HBM bandwidth in GB/s (H100 SXM: 3350, H200: 4800)">,
    Option<"sms", "sms", "int64_t", /*default=*/"132",
           "Streaming multiprocessors (H100 SXM and H200: 132)">,
    Option<"launchMicros", "launch-us", "double", /*default=*/"2.0",
           "Cost of one launch in microseconds">,
    Option<"tensorTflops", "tensor-tflops", "double", /*default=*/"989.0",
           "Dense f16/bf16 tensor-core peak in TFLOPS (H100 SXM, H200: 989)">,
    Option<"teraInstructions", "tera-instructions", "double",
           /*default=*/"33.5",
           "Thread instructions a second, in 10^12 (H100 SXM: 132 SMs x 4 "
           "schedulers x 32 lanes x 1.98 GHz = 33.5)">,
  ];
}

def UsmoeRequireCudaToolkitPass
    : Pass<"usmoe-require-cuda-toolkit", "::mlir::ModuleOp"> {
  let summary = "Fail with a clear message unless the CUDA toolkit is usable";
  let description = [{
    The first pass of `usmoe-to-nvvm`. MLIR's own GPU serialization reports
    a missing toolkit late and sometimes not at all (PTX with unresolved
    `__nv_*` calls and exit code 0), so this pass checks up front that
    `<cuda-root>/nvvm/libdevice/libdevice.10.bc` exists and, when
    `need-ptxas` is set (cubin and fatbin output), `<cuda-root>/bin/ptxas`.
  }];
  let options = [
    Option<"cudaRoot", "cuda-root", "std::string", /*default=*/"\"\"",
           "Root of the CUDA toolkit">,
    Option<"needPtxas", "need-ptxas", "bool", /*default=*/"false",
           "Also require ptxas (for cubin and fatbin output)">,
  ];
}

def UsmoeCheckGpuTargetPass
    : Pass<"usmoe-check-gpu-target", "::mlir::ModuleOp"> {
  let summary = "Fail with a clear message on an unsupported GPU target";
  let description = [{
    The first pass of `usmoe-to-nvvm`: rejects, before anything reaches
    LLVM's NVPTX backend (which crashes or aborts on some of them), a chip
    that is not `sm_XY[a|f]` with XY >= 75 (CUDA 13's floor), PTX features
    that are not `+ptxNN`, an output format other than `isa`, `bin`,
    `fatbin` or `llvm`, and an optimization level outside 0-3.
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90\"",
           "GPU architecture (sm_XY)">,
    Option<"features", "features", "std::string", /*default=*/"\"+ptx80\"",
           "PTX features (ISA version)">,
    Option<"format", "format", "std::string", /*default=*/"\"isa\"",
           "Artifact: isa, bin, fatbin or llvm">,
    Option<"optLevel", "opt-level", "unsigned", /*default=*/"3",
           "NVPTX optimization level (0-3)">,
  ];
}

def UsmoeBf16MmaSyncToNVVMPass
    : Pass<"usmoe-bf16-mma-sync-to-nvvm", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Lower bf16 nvgpu.mma.sync to nvvm.mma.sync";
  let description = [{
    MLIR 22's `convert-nvgpu-to-nvvm` lowers `nvgpu.mma.sync` with f16
    operands but fails on bf16 ones ("failed to deduce operand PTX types"):
    NVVM's `mma.sync` takes bf16 fragments packed two per i32 register with
    the PTX type given as an attribute. This pass rewrites every m16n8k16
    `nvgpu.mma.sync` with bf16 operands and f32 accumulators into that form
    (`vector.bitcast` of each `vector<2xbf16>` register to i32), leaving the
    fragment layout, and every other op, as it is. It runs on the kernels
    right before `convert-nvgpu-to-nvvm`.
  }];
  let dependentDialects = [
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def UsmoeHostSharedAllocsPass
    : Pass<"usmoe-host-shared-allocs", "::mlir::ModuleOp"> {
  let summary = "Make the host code's buffers GPU-accessible (managed memory)";
  let description = [{
    After `convert-moe-to-gpu` and bufferization, the host functions
    allocate the buffers that kernels write (gates, plans, layer outputs)
    with `memref.alloc`, i.e. `malloc`: memory a GPU cannot touch. This pass
    turns every such `memref.alloc` outside `gpu.module`s into
    `gpu.alloc host_shared` (CUDA managed memory through `mgpuMemAlloc`) and
    the matching `memref.dealloc` into `gpu.dealloc`, so that the lowered
    host code works as it is: kernels and host code (which reads a plan's
    row count) see the same buffers. A buffer allocated in a function's
    entry block that does not reach its return (directly or through a view)
    is freed with `gpu.dealloc` just before the return (the launches are
    synchronous). Callers then pass device or managed memory and free
    results with `mgpuMemFree`.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def ConvertGpuToEmulatorPass
    : Pass<"convert-gpu-to-emulator", "::mlir::ModuleOp"> {
  let summary = "Run the module's GPU kernels on the CPU GPU emulator";
  let description = [{
    Turns every kernel of every `gpu.module` into a host function
    `void(UsmoeEmuThread *, void *args)` that each emulated GPU thread runs
    as a fiber of libusmoe_gpu_emulator.so, and every `gpu.launch_func` into
    a call of `usmoe_emu_launch` with the kernel operands packed into one
    struct (the ABI is include/usmoe/Runtime/GpuEmulator.h).

    Inside kernels: `gpu.thread_id`, `block_id`, `block_dim`, `grid_dim`,
    `lane_id` and `global_id` read the emulated thread; `gpu.barrier` and
    `gpu.shuffle` (i32/f32, every mode and width) and `nvgpu.mma.sync`
    (m16n8k16, f16/bf16 operands, f32 accumulators, PTX's fragment layout)
    become runtime calls that switch fibers; workgroup buffers become views of the block's shared
    memory; every `memref.load`, `memref.store`, `memref.atomic_rmw`,
    `vector.load` and `vector.store` gets a bounds check against the
    memref's sizes and reports its address to the race and
    uninitialized-read checker. Every report names the IR location of the
    offending op.

    On the host, `gpu.alloc` / `gpu.dealloc` become `memref.alloc` /
    `memref.dealloc` and `gpu.wait` disappears (launches are synchronous).

    Any other `gpu`, `nvvm`, `nvgpu`, `rocdl` or `amdgpu` op, and any op
    that touches memory in a way the checker cannot see, is an error that
    names the op: nothing runs unchecked or silently differently.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // USMOE_CONVERSION_PASSES_TD
