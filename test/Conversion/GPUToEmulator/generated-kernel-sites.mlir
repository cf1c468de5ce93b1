// RUN: usmoe-opt %s -moe-fuse-routing -canonicalize -convert-moe-to-gpu -convert-gpu-to-emulator | FileCheck %s

// Every op of a generated kernel has the location of the moe op it came
// from, so reports number them within their kernel to stay unambiguous.
// CHECK-DAG: llvm.mlir.global internal constant @{{.*}}("{{.*}}generated-kernel-sites.mlir:[[#@LINE+6]]:12: gpu.shuffle #1 in route_token_0\00")
// CHECK-DAG: llvm.mlir.global internal constant @{{.*}}("{{.*}}generated-kernel-sites.mlir:[[#@LINE+5]]:12: gpu.shuffle #2 in route_token_0\00")
// CHECK-DAG: llvm.mlir.global internal constant @{{.*}}("{{.*}}generated-kernel-sites.mlir:[[#@LINE+4]]:12: memref.store #1 in route_token_0\00")
// The launch is the only op at its site: no number.
// CHECK-DAG: llvm.mlir.global internal constant @{{.*}}("{{.*}}generated-kernel-sites.mlir:[[#@LINE+2]]:12: gpu.launch_func\00")
func.func @router(%l: tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xi1>) {
  %g, %m = moe.route #moe.token<k = 2> %l : tensor<?x?x8xf32>
  return %g, %m : tensor<?x?x8xf32>, tensor<?x?x8xi1>
}
