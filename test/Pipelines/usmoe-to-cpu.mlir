// The CPU pipeline leaves nothing but the LLVM dialect.
// DEFINE: %{leftovers} = --implicit-check-not=moe. --implicit-check-not=memref. \
// DEFINE:   --implicit-check-not=scf. --implicit-check-not=bufferization.
// RUN: usmoe-opt %s -usmoe-to-cpu | FileCheck %s %{leftovers}
// RUN: usmoe-opt %s -usmoe-to-cpu=fuse-routing=false | FileCheck %s %{leftovers}

// Masks are read and written as bytes (usmoe-bools-as-bytes), exps are
// f64 arithmetic (usmoe-expand-exp), not calls of libm.
// RUN: usmoe-opt %s -usmoe-to-cpu | FileCheck %s --check-prefix=VECTORIZABLE \
// RUN:   --implicit-check-not="!llvm.ptr -> i1" --implicit-check-not="i1, !llvm.ptr" \
// RUN:   --implicit-check-not=llvm.intr.exp --implicit-check-not=expf

// CHECK: llvm.func @router
// CHECK: llvm.call @free
// VECTORIZABLE: llvm.func @router
// VECTORIZABLE: llvm.intr.fma
// VECTORIZABLE: llvm.load %{{.*}} : !llvm.ptr -> i8
func.func @router(%l: tensor<2x?x16xf16>) -> (tensor<17xi32>, tensor<?xi32>, tensor<?xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = softmax_tokens : tensor<2x?x16xf16>
  %g, %m = moe.select_global %u k = 1.25 : tensor<2x?x16xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<2x?x16xf32>
  return %o, %i, %w : tensor<17xi32>, tensor<?xi32>, tensor<?xf32>
}
