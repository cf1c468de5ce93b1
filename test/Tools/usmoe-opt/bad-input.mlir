// Malformed input gives a diagnostic with a location and a non-zero exit,
// never a crash.
// RUN: split-file %s %t
// RUN: not usmoe-opt %t/truncated.mlir 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: not usmoe-opt %t/wrong-type.mlir 2>&1 | FileCheck %s --check-prefix=TYPE
// RUN: not usmoe-opt %t/unknown-mode.mlir 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not usmoe-opt %t/missing-type.mlir 2>&1 | FileCheck %s --check-prefix=NOTYPE
// RUN: not usmoe-opt %t/huge-n.mlir 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not usmoe-opt %t/negative-n.mlir -moe-fuse-routing 2>&1 | FileCheck %s --check-prefix=NEG

// TRUNC: truncated.mlir:3:{{[0-9]+}}: error:
// TYPE: wrong-type.mlir:2:{{[0-9]+}}: error: 'moe.select_topk' op operand #0 must be 3D tensor of 32-bit float values
// MODE: unknown-mode.mlir:2:{{[0-9]+}}: error: unknown attribute `shared` in dialect `moe`
// NOTYPE: missing-type.mlir:2:{{[0-9]+}}: error: expected ':'
// HUGE: huge-n.mlir:2:{{[0-9]+}}: error: integer value too large
// NEG: negative-n.mlir:3:{{[0-9]+}}: error: 'moe.select_global' op expects n >= 0, got -1

//--- truncated.mlir
func.func @f(%l: tensor<1x4x8xf32>) {
  %p = moe.token_softmax %l : tensor<1x4x8xf32>
  %g, %m = moe.select_topk %p k =
//--- wrong-type.mlir
func.func @f(%l: tensor<1x4x8xf16>) {
  %g, %m = moe.select_topk %l k = 2 : tensor<1x4x8xf16>
  return
}
//--- unknown-mode.mlir
func.func @f(%l: tensor<1x4x8xf32>) {
  %g, %m = moe.route #moe.shared<k = 2> %l : tensor<1x4x8xf32>
  return
}
//--- missing-type.mlir
func.func @f(%l: tensor<1x4x8xf32>) {
  %p = moe.token_softmax %l
  return
}
//--- huge-n.mlir
func.func @f(%l: tensor<1x4x8xf32>) {
  %g, %m = moe.route #moe.unified<n = 123456789012345678901234567890> %l : tensor<1x4x8xf32>
  return
}
//--- negative-n.mlir
func.func @f(%l: tensor<1x4x8xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<1x4x8xf32>
  %g, %m = moe.select_global %u n = -1 : tensor<1x4x8xf32>
  return
}
