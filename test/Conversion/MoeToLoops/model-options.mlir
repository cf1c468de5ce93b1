// RUN: usmoe-opt %s -convert-moe-to-loops -split-input-file | FileCheck %s

// Soft-capping reads every logit as cap * tanh(L / cap) before the NaN check
// (in f64, rounded once; a NaN stays NaN through tanh, then counts as
// -inf); the routed scaling
// factor multiplies the gates as the selection writes them.
// CHECK-LABEL: func.func @token_capped_scaled
// CHECK: arith.constant 3.000000e+01 : f64
// CHECK: arith.extf %{{.*}} : f32 to f64
// CHECK-NEXT: arith.divf
// CHECK-NEXT: math.tanh %{{.*}} : f64
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: arith.truncf %{{.*}} : f64 to f32
// CHECK-NEXT: arith.cmpf uno
// CHECK: arith.constant 2.500000e+00 : f32
func.func @token_capped_scaled(%l: tensor<?x?x8xbf16>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 2, renormalize, routed_scaling_factor = 2.5, softcap = 30.0> %l : tensor<?x?x8xbf16>
  return %g : tensor<?x?x8xf32>
}

// -----

// Without the options, neither appears.
// CHECK-LABEL: func.func @token_plain
// CHECK-NOT: math.tanh
// CHECK-NOT: 2.500000e+00
// CHECK: return
func.func @token_plain(%l: tensor<?x?x8xbf16>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 2, renormalize> %l : tensor<?x?x8xbf16>
  return %g : tensor<?x?x8xf32>
}

// -----

// Unified and Expert Choice scale the gates the radix select keeps.
// CHECK-LABEL: func.func @unified_scaled
// CHECK: math.tanh
// CHECK: memref.alloc(%{{.*}}) : memref<?x8192xi32>
// CHECK: arith.constant 1.750000e+00 : f32
// CHECK: arith.mulf
// CHECK: arith.select
func.func @unified_scaled(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5, routed_scaling_factor = 1.75, softcap = 5.0> %l : tensor<?x?x8xf32>
  return %g : tensor<?x?x8xf32>
}

// -----

// (Expert Choice of capacity 2: the row-wise select, 2 slots x 8 experts.)
// CHECK-LABEL: func.func @expert_scaled
// CHECK: math.tanh
// CHECK: memref.alloc(%{{.*}}) : memref<?x16xi32>
// CHECK: arith.constant 1.750000e+00 : f32
// CHECK: arith.mulf
// CHECK: arith.select
func.func @expert_scaled(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.expert<capacity = 2, routed_scaling_factor = 1.75, softcap = 5.0> %l : tensor<?x?x8xf32>
  return %g : tensor<?x?x8xf32>
}

// -----

// Group-limited Token Choice: per row, the groups' top-2 sums into a
// scratch of n_group scores, a kept flag per group, and the keys of dropped
// groups' experts replaced by 0.
// CHECK-LABEL: func.func @token_groups
// CHECK-DAG: %[[KEPT:.*]] = memref.alloc() : memref<4xi1>
// CHECK-DAG: %[[SCORES:.*]] = memref.alloc() : memref<4xf32>
// CHECK: memref.store %{{.*}}, %[[SCORES]]
// CHECK: arith.cmpi slt, %{{.*}}, %c2_i32 : i32
// CHECK: memref.store %{{.*}}, %[[KEPT]]
// CHECK: arith.divui %{{.*}}, %c2 : index
// CHECK: memref.load %[[KEPT]]
// CHECK: arith.select %{{.*}}, %{{.*}}, %c0_i32{{.*}} : i32
func.func @token_groups(%l: tensor<?x?x8xf32>, %b: tensor<8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 3, n_group = 4, topk_group = 2> %l bias %b : tensor<?x?x8xf32>, tensor<8xf32>
  return %g : tensor<?x?x8xf32>
}

