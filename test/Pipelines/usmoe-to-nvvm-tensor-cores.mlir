// The f16/bf16 expert MLP on tensor cores: mma.sync m16n8k16 with f32
// accumulators in both grouped GEMMs, for both weight layouts, assembled by
// ptxas for sm_80 and sm_90 with no spills and no local memory (a register
// limit of 128 keeps ptxas from choosing 64 and spilling).
// REQUIRES: ptxas
// RUN: rm -rf %t && usmoe-opt %s -usmoe-to-nvvm | usmoe-extract-binary -o %t/sm90
// RUN: FileCheck %s --input-file %t/sm90/usmoe_kernels.ptx --implicit-check-not=.local
// RUN: FileCheck %s --check-prefix=VEC --input-file %t/sm90/usmoe_kernels.ptx
// RUN: %cuda_root/bin/ptxas -arch=sm_90 -v %t/sm90/usmoe_kernels.ptx -o %t/sm90.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS
// RUN: usmoe-opt %s "-usmoe-to-nvvm=chip=sm_80 features=+ptx80" | usmoe-extract-binary -o %t/sm80
// RUN: %cuda_root/bin/ptxas -arch=sm_80 -v %t/sm80/usmoe_kernels.ptx -o %t/sm80.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS

// CHECK: .entry expert_gate_up_0(
// CHECK: .maxnreg 128
// CHECK-COUNT-32: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NOT: mma.sync
// CHECK: .entry expert_down_0(
// CHECK-COUNT-16: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NOT: mma.sync
// CHECK: .entry expert_gate_up_1(
// CHECK: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK: .entry expert_down_1(
// CHECK: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32

// Tiles are staged with 16-byte loads where rows start on 16 bytes.
// VEC: .entry expert_gate_up_0(
// VEC: ld.global.v4.b32
// VEC: .entry expert_down_0(
// VEC: ld.global.v4.b32

// PTXAS-COUNT-4: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// PTXAS-NOT: bytes spill

func.func @bf16_in_out(%x: tensor<?x4096xbf16>, %o: tensor<9xi32>, %w1: tensor<8x4096x14336xbf16>, %w3: tensor<8x4096x14336xbf16>, %w2: tensor<8x14336x4096xbf16>) -> tensor<?x4096xf32> {
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x4096xbf16>, tensor<9xi32>, tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>
  return %y : tensor<?x4096xf32>
}

func.func @f16_out_in(%x: tensor<?x2048xf16>, %o: tensor<65xi32>, %w1: tensor<64x1408x2048xf16>, %w3: tensor<64x1408x2048xf16>, %w2: tensor<64x2048x1408xf16>) -> tensor<?x2048xf32> {
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 layout out_in : tensor<?x2048xf16>, tensor<65xi32>, tensor<64x1408x2048xf16>, tensor<64x1408x2048xf16>, tensor<64x2048x1408xf16>
  return %y : tensor<?x2048xf32>
}
