// RUN: usmoe-opt %s -convert-moe-to-loops=expert-gemm=onednn -split-input-file | FileCheck %s
// RUN: not usmoe-opt %s -convert-moe-to-loops=expert-gemm=blas 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: Cannot find option named 'blas'!

// With expert-gemm=onednn, f32 and bf16 experts become one call of the CPU
// runtime per op, declared once per module with the C interface; the
// offsets are checked first, the call's status after; the weights go as
// strided views, the layout as an i32 (out_in = 1), and no loops remain.
// CHECK-LABEL: module
// CHECK: func.func private @usmoe_cpu_expert_ffn_f32(memref<?x?xf32>, memref<?xi32>, memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>, memref<?x?xf32>, i32) -> i32 attributes {llvm.emit_c_interface}
// CHECK-NOT: func.func private @usmoe_cpu_expert_ffn_f32
// CHECK-LABEL: func.func @two_layers
// CHECK: cf.assert {{.*}} "moe: expert_ffn: expert_offsets must go from 0 to the number of rows without decreasing"
// CHECK: %[[STATUS:.*]] = call @usmoe_cpu_expert_ffn_f32({{.*}}, %c1_i32)
// CHECK: %[[OK:.*]] = arith.cmpi eq, %[[STATUS]], %c0_i32
// CHECK: cf.assert %[[OK]], "moe: expert_ffn: the oneDNN GEMMs of libusmoe_cpu_runtime.so failed
// CHECK: call @usmoe_cpu_expert_ffn_f32({{.*}}, %c0_i32
// CHECK-NOT: scf.for
// CHECK: return
func.func @two_layers(%x: tensor<?x16xf32>, %offsets: tensor<5xi32>,
                      %a1: tensor<4x32x16xf32>, %a3: tensor<4x32x16xf32>, %a2: tensor<4x16x32xf32>,
                      %b1: tensor<4x16x8xf32>, %b3: tensor<4x16x8xf32>, %b2: tensor<4x8x16xf32>)
    -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  %y = moe.expert_ffn %x, %offsets, %a1, %a3, %a2 layout out_in
      : tensor<?x16xf32>, tensor<5xi32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>
  %z = moe.expert_ffn %x, %offsets, %b1, %b3, %b2
      : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
  return %y, %z : tensor<?x16xf32>, tensor<?x16xf32>
}

// -----

// f16 experts stay on the generated loops (oneDNN has no f16 GEMM on
// most CPUs).
// CHECK-LABEL: func.func @half
// CHECK-NOT: call @usmoe_cpu_expert_ffn
// CHECK: scf.for
// CHECK-NOT: call @usmoe_cpu_expert_ffn
// CHECK: return
func.func @half(%x: tensor<?x16xf16>, %offsets: tensor<5xi32>, %w1: tensor<4x16x8xf16>,
                %w3: tensor<4x16x8xf16>, %w2: tensor<4x8x16xf16>) -> tensor<?x16xf32> {
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
      : tensor<?x16xf16>, tensor<5xi32>, tensor<4x16x8xf16>, tensor<4x16x8xf16>, tensor<4x8x16xf16>
  return %y : tensor<?x16xf32>
}
