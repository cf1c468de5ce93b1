// Soft-capping (tanh from libdevice) and the routed scaling factor compile
// to PTX that ptxas accepts, with no unresolved call.
// REQUIRES: ptxas
// RUN: rm -rf %t && usmoe-opt %s -usmoe-to-nvvm | usmoe-extract-binary -o %t
// RUN: FileCheck %s --input-file %t/usmoe_kernels.ptx \
// RUN:   --implicit-check-not=".extern .func" --implicit-check-not=.local

// CHECK: .entry route_token_0(
// CHECK: .entry route_unified_1_scores(
// CHECK: .entry route_unified_1_select(
// CHECK: .entry route_expert_2_scores(
// CHECK: .entry route_token_3(
func.func @token(%l: tensor<?x?x256xbf16>, %b: tensor<256xf32>) -> tensor<?x?x256xf32> {
  %g, %m = moe.route #moe.token<k = 8, renormalize, routed_scaling_factor = 2.5, softcap = 30.0> %l bias %b : tensor<?x?x256xbf16>, tensor<256xf32>
  return %g : tensor<?x?x256xf32>
}
func.func @unified(%l: tensor<?x?x64xf16>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5, routed_scaling_factor = 0.75, softcap = 8.0> %l : tensor<?x?x64xf16>
  return %g : tensor<?x?x64xf32>
}
func.func @expert(%l: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.expert<k = 2, capacity_factor = 1.25, softcap = 8.0> %l : tensor<?x?x64xf32>
  return %g : tensor<?x?x64xf32>
}
func.func @deepseek_v3(%l: tensor<?x?x256xf32>, %b: tensor<256xf32>) -> tensor<?x?x256xf32> {
  %g, %m = moe.route #moe.token<k = 8, n_group = 8, topk_group = 4, renormalize, routed_scaling_factor = 2.5> %l bias %b : tensor<?x?x256xf32>, tensor<256xf32>
  return %g : tensor<?x?x256xf32>
}
