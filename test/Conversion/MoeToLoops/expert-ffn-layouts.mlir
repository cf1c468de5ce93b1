// RUN: usmoe-opt %s -convert-moe-to-loops -one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s
// RUN: usmoe-opt %s -convert-moe-to-gpu -one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s --check-prefix=GPU

// A fused gate/up checkpoint tensor ([E, 2F, D], nn.Linear's layout) is
// read in place: its halves bufferize to two views of the argument's
// buffer, never to copies.
// CHECK-LABEL: func.func @fused_gate_up
// CHECK-SAME: %[[GU:[a-z0-9]+]]: memref<4x64x16xf32>
// CHECK: memref.subview %[[GU]][0, 0, 0] [4, 32, 16] [1, 1, 1]
// CHECK: memref.subview %[[GU]][0, 32, 0] [4, 32, 16] [1, 1, 1]
// CHECK-NOT: memref.copy
// CHECK: return
// GPU-LABEL: func.func @fused_gate_up
// GPU: memref.subview
// GPU: memref.subview
// GPU-NOT: memref.copy
// GPU: gpu.launch_func @usmoe_kernels::@expert_ffn_0
// GPU-NOT: memref.copy
// GPU: return
func.func @fused_gate_up(%x: tensor<?x16xf32>, %offsets: tensor<5xi32>,
                         %gate_up: tensor<4x64x16xf32>, %w2: tensor<4x16x32xf32>)
    -> tensor<?x16xf32> {
  %w1 = tensor.extract_slice %gate_up[0, 0, 0] [4, 32, 16] [1, 1, 1]
      : tensor<4x64x16xf32> to tensor<4x32x16xf32>
  %w3 = tensor.extract_slice %gate_up[0, 32, 0] [4, 32, 16] [1, 1, 1]
      : tensor<4x64x16xf32> to tensor<4x32x16xf32>
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2 layout out_in
      : tensor<?x16xf32>, tensor<5xi32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>
  return %y : tensor<?x16xf32>
}

// In out_in, W1 is read as W1[e, f, d] (D innermost: a dot product over d);
// in in_out as W1[e, d, f].
// CHECK-LABEL: func.func @out_in_indexing
// CHECK: scf.for %[[E:[a-z0-9]+]] = {{.*}} {
// CHECK: scf.for {{.*}} step %c16 {
// CHECK: scf.for %[[F:[a-z0-9]+]] =
// CHECK: scf.for {{.*}} =
// CHECK: scf.for %[[D:[a-z0-9]+]] = {{.*}} iter_args
// CHECK: memref.load %{{.*}}[%[[E]], %[[F]], %[[D]]] : memref<4x32x16xbf16, strided<[?, ?, 1], offset: ?>>
// CHECK-LABEL: func.func @in_out_indexing
// CHECK: scf.for %[[E:[a-z0-9]+]] = {{.*}} {
// CHECK: scf.for {{.*}} step %c16 {
// CHECK: memref.load %arg0[%{{.*}}, %[[D:[a-z0-9]+]]] : memref<?x16xbf16>
// CHECK: scf.for %[[F:[a-z0-9]+]] =
// CHECK: memref.load %{{.*}}[%[[E]], %[[D]], %[[F]]] : memref<4x16x32xbf16, strided<[?, ?, 1], offset: ?>>
func.func @out_in_indexing(%x: tensor<?x16xbf16>, %offsets: tensor<5xi32>,
                           %w1: tensor<4x32x16xbf16>, %w3: tensor<4x32x16xbf16>,
                           %w2: tensor<4x16x32xbf16>) -> tensor<?x16xf32> {
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2 layout out_in
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x32x16xbf16>, tensor<4x32x16xbf16>, tensor<4x16x32xbf16>
  return %y : tensor<?x16xf32>
}
func.func @in_out_indexing(%x: tensor<?x16xbf16>, %offsets: tensor<5xi32>,
                           %w1: tensor<4x16x32xbf16>, %w3: tensor<4x16x32xbf16>,
                           %w2: tensor<4x32x16xbf16>) -> tensor<?x16xf32> {
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y : tensor<?x16xf32>
}
