// Routers of every mode for the expert counts and k of real models, lowered
// to PTX for sm_90 and, where the toolkit is present, assembled by ptxas.
// REQUIRES: ptxas
// RUN: rm -rf %t && usmoe-opt %s -usmoe-to-nvvm | usmoe-extract-binary -o %t
// libdevice is linked in (no call is left unresolved) and rows live in
// registers (no local memory), in every kernel.
// RUN: FileCheck %s --input-file %t/usmoe_kernels.ptx \
// RUN:   --implicit-check-not=".extern .func" --implicit-check-not=.local \
// RUN:   --implicit-check-not=ex2.approx
// RUN: FileCheck %s --check-prefix=META --input-file %t/usmoe_kernels.json
// RUN: usmoe-opt %s -usmoe-to-nvvm | FileCheck %s --check-prefix=HOST
// The cost model charges each recomputing select pass the kernel table's
// score_instructions per element: the element loops of the histogram and
// mark kernels must have that many PTX instructions, within 30%.
// RUN: %python %S/Inputs/check_score_instructions.py %t | FileCheck %s --check-prefix=ALU

// CHECK: .version 8.0
// CHECK: .target sm_90
// E = 8: a warp routes 4 tokens, 8 lanes each, one expert a lane; the
// butterflies stay inside the 8 lanes.
// CHECK: .entry route_token_0(
// CHECK-NOT: ld.global.v4
// CHECK-NOT: shfl.sync.bfly.b32 {{.*}}, {{16|8}}, 31
// CHECK: shfl.sync.bfly.b32 {{.*}}, 4, 31
// exp is usmoe-expand-exp's f32 arithmetic (as on the CPU), every product
// and sum rounded on its own (.rn: ptxas may not contract them); k by the
// 1.5 * 2^23 shifter, no float/int conversion:
// CHECK: add.rn.f32 {{.*}}, 0f4B400000
// CHECK-NOT: cvt.rni
// CHECK-COUNT-7: fma.rn.f32
// CHECK: add.rn.f32
// The row's sum in SoftmaxSum's integer units (2^59 for E = 8), the i64
// butterfly as two 32-bit shuffles a step, converted once:
// CHECK: mul.rn.f32 {{.*}}, 0f5D000000
// CHECK: cvt.rzi.s64.f32
// CHECK: shfl.sync.bfly.b32 {{.*}}, 4, 31
// CHECK: shfl.sync.bfly.b32 {{.*}}, 4, 31
// CHECK: add.s64
// CHECK: cvt.rn.f32.s64
// CHECK: mul.rn.f32 {{.*}}, 0f22000000
// CHECK: div.rn.f32
// CHECK: .entry route_token_1(
// Rows are read with 16-byte vector loads when E % 4 == 0 (E > 16).
// CHECK: .entry route_token_2(
// CHECK: ld.global.v4.b16
// CHECK: shfl.sync.bfly.b32 {{.*}}, 16, 31
// CHECK: .entry route_token_6(
// CHECK: .entry route_unified_7_scores(
// CHECK: .entry route_unified_7_select(
// CHECK: .shared .align 4 .b8 {{.*}}[1024]
// CHECK: bar.sync
// CHECK: atom.shared.add.u32
// CHECK: shfl.sync.up.b32
// Spread over blocks: each block's histogram out, then a fenced done count.
// CHECK: .entry route_unified_7_select_histogram(
// CHECK: atom.global.add.u32
// CHECK: membar.gl
// CHECK: atom.global.add.u32
// CHECK-NEXT: membar.gl
// CHECK: .entry route_unified_8_mix(
// CHECK: .entry route_expert_9_select(
// A route's plan: the route's select kernel counts its selection per tile
// and the block done last (a done counter between device-scope fences)
// scans the counts; the plan fills, or does it all on one block when the
// rows fit a tile.
// CHECK: .entry route_unified_10_select(
// CHECK: atom.global.add.u32
// CHECK: membar.gl
// CHECK: atom.global.add.u32
// CHECK-NEXT: membar.gl
// CHECK: .entry plan_11_single(
// CHECK: .entry plan_11_fill(
// CHECK: .entry dispatch_12(
// combine reads and writes 4 elements of d at a time where rows allow.
// CHECK: .entry combine_13(
// CHECK: ld.global.v4.b16
// CHECK: st.global.v2.b32
// bf16 experts: two grouped GEMMs on tensor cores (m16n8k16, f32
// accumulators), SwiGLU in the first one's epilogue.
// CHECK: .entry expert_gate_up_14(
// CHECK: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: add.rn.f32 {{.*}}, 0f4B400000
// CHECK: .entry expert_down_14(
// CHECK: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NOT: 0f4B400000
// The Token Choice route writes its own k = 32 list (no topk_list kernel
// of its own); the unified selection's list has one.
// CHECK: .entry route_token_15(
// CHECK: shfl.sync.idx.b32
// CHECK-NOT: .entry topk_list
// CHECK: .entry route_unified_16_scores(
// CHECK: .entry topk_list_17(
// CHECK: shfl.sync.bfly.b32

// META: "kernels": {
// META: "route_token_0": {
// META: "args": [
// META-NEXT: "memref<?x?x8xf32>",
// META: "experts": 8,
// META: "params": [
// META: "module": "usmoe_kernels",
// META: "file": "usmoe_kernels.ptx"

// The host launches the kernels through the mgpu* runtime ABI.
// HOST: llvm.func @e8_k1
// Results in managed memory (usmoe-host-shared-allocs), never malloc'ed.
// HOST-NOT: @malloc
// HOST: llvm.call @mgpuMemAlloc
// HOST: gpu.launch_func @usmoe_kernels::@route_token_0
// The mask is not returned: freed before the return.
// HOST: llvm.call @mgpuMemFree
// HOST: llvm.return
// HOST-NOT: @malloc
// HOST: gpu.binary @usmoe_kernels

func.func @e8_k1(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 1> %l : tensor<?x?x8xf32>
  return %g : tensor<?x?x8xf32>
}
func.func @e60_k2(%l: tensor<?x?x60xbf16>) -> tensor<?x?x60xi1> {
  %g, %m = moe.route #moe.token<k = 2, renormalize> %l : tensor<?x?x60xbf16>
  return %m : tensor<?x?x60xi1>
}
func.func @e64_k6(%l: tensor<?x?x64xf16>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.token<k = 6> %l : tensor<?x?x64xf16>
  return %g : tensor<?x?x64xf32>
}
func.func @e128_k8(%l: tensor<?x?x128xbf16>) -> tensor<?x?x128xf32> {
  %g, %m = moe.route #moe.token<k = 8, renormalize> %l : tensor<?x?x128xbf16>
  return %g : tensor<?x?x128xf32>
}
func.func @e256_k8(%l: tensor<?x?x256xf32>) -> tensor<?x?x256xf32> {
  %g, %m = moe.route #moe.token<k = 8> %l : tensor<?x?x256xf32>
  return %g : tensor<?x?x256xf32>
}
func.func @e384_k8(%l: tensor<?x?x384xbf16>) -> tensor<?x?x384xf32> {
  %g, %m = moe.route #moe.token<k = 8> %l : tensor<?x?x384xbf16>
  return %g : tensor<?x?x384xf32>
}
func.func @e512_k32(%l: tensor<?x?x512xf32>) -> tensor<?x?x512xf32> {
  %g, %m = moe.route #moe.token<k = 32> %l : tensor<?x?x512xf32>
  return %g : tensor<?x?x512xf32>
}
func.func @unified_e64(%l: tensor<?x?x64xbf16>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x64xbf16>
  return %g : tensor<?x?x64xf32>
}
func.func @unified_e60_tokens(%l: tensor<?x?x60xf16>) -> tensor<?x?x60xf32> {
  %g, %m = moe.route #moe.unified<k = 2.75, alpha = 0.25, expert_score = softmax_tokens> %l : tensor<?x?x60xf16>
  return %g : tensor<?x?x60xf32>
}
func.func @expert_e256(%l: tensor<?x?x256xf32>) -> tensor<?x?x256xi1> {
  %g, %m = moe.route #moe.expert<capacity_factor = 1.25, k = 8> %l : tensor<?x?x256xf32>
  return %m : tensor<?x?x256xi1>
}
func.func @layer(%l: tensor<1x?x8xbf16>, %h: tensor<?x64xbf16>, %init: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<1x?x8xbf16>
  %o, %i, %w = moe.plan %g, %m : tensor<1x?x8xf32>
  %x = moe.dispatch %h, %i : tensor<?x64xbf16>, tensor<?xi32>
  %y = moe.combine %x, %i, %w into %init offsets %o : tensor<?x64xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x64xbf16>, tensor<9xi32>
  return %y : tensor<?x64xbf16>
}
func.func @ffn(%x: tensor<?x64xbf16>, %o: tensor<9xi32>, %w1: tensor<8x64x128xbf16>,
               %w3: tensor<8x64x128xbf16>, %w2: tensor<8x128x64xbf16>) -> tensor<?x64xf32> {
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x64xbf16>, tensor<9xi32>, tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16>
  return %y : tensor<?x64xf32>
}
// The [B*T, k] list of Token Choice (k = 32 of 512 experts: written by the
// route kernel) and of a Unified selection (padded where a token got fewer
// than k).
func.func @topk_e512_k32(%l: tensor<?x?x512xf32>) -> (tensor<?x32xi32>, tensor<?x32xf32>) {
  %g, %m = moe.route #moe.token<k = 32> %l : tensor<?x?x512xf32>
  %i, %w = moe.topk_list %g, %m k = 32 : tensor<?x?x512xf32>
  return %i, %w : tensor<?x32xi32>, tensor<?x32xf32>
}
func.func @topk_unified_e60(%l: tensor<?x?x60xbf16>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x60xbf16>
  %i, %w = moe.topk_list %g, %m k = 4 : tensor<?x?x60xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// ALU: route_unified_7_select_histogram: loop {{[0-9]+}} instructions, model 120: ok
// ALU: route_unified_7_select_mark: loop {{[0-9]+}} instructions, model 120: ok
// ALU: route_expert_9_select_histogram: loop {{[0-9]+}} instructions, model 85: ok
// ALU: route_expert_9_select_mark: loop {{[0-9]+}} instructions, model 85: ok
// ALU-NOT: OFF
