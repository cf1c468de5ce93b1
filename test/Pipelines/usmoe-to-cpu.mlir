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

// Each parallel loop's body is compiled once (usmoe-share-parallel-bodies):
// an internal function that the parallel and the sequential form both call,
// whose output buffer is noalias (usmoe-noalias-args), so that its short
// loops vectorize without run-time overlap checks.
// RUN: usmoe-opt %s -usmoe-to-cpu | FileCheck %s --check-prefix=SHARED \
// RUN:   --implicit-check-not=usmoe.noalias_args
// RUN: usmoe-opt %s -usmoe-to-cpu=openmp=true | FileCheck %s --check-prefix=SHARED \
// RUN:   --implicit-check-not=usmoe.noalias_args

// CHECK: llvm.func @router
// CHECK: llvm.call @free
// VECTORIZABLE: llvm.func internal @router_parallel_body_0
// VECTORIZABLE: llvm.intr.fma
// VECTORIZABLE: llvm.load %{{.*}} : !llvm.ptr -> i8
// SHARED: llvm.func internal @router_parallel_body_0({{.*}} !llvm.ptr {llvm.noalias}
// SHARED-LABEL: llvm.func @router(
// SHARED: llvm.call @router_parallel_body_0(
// SHARED: llvm.call @router_parallel_body_0(
func.func @router(%l: tensor<2x?x16xf16>) -> (tensor<17xi32>, tensor<?xi32>, tensor<?xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = softmax_tokens : tensor<2x?x16xf16>
  %g, %m = moe.select_global %u k = 1.25 : tensor<2x?x16xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<2x?x16xf32>
  return %o, %i, %w : tensor<17xi32>, tensor<?xi32>, tensor<?xf32>
}
