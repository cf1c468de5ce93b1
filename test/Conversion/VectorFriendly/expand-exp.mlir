// RUN: usmoe-opt %s -usmoe-expand-exp | FileCheck %s

// A scalar f32 exp becomes f32 arithmetic: clamp (NaN-ignoring),
// k = roundeven(x * log2(e)) by adding and subtracting 1.5 * 2^23 (k's
// integer from the sum's bits, no conversion), r = x - k ln 2 in two fmas, a Horner chain of 5
// fmas for q(r), 1 + fma(r*r, q, r), 2^k as two powers of two from their
// bits, NaN passed through; no f64 and no exp call left.
// CHECK-LABEL: func.func @exp_f32
// CHECK-SAME: (%[[X:.*]]: f32)
// CHECK: %[[LO:.*]] = arith.minnumf %[[X]]
// CHECK: %[[C:.*]] = arith.maxnumf %[[LO]]
// CHECK: %[[Y:.*]] = arith.mulf %[[C]]
// CHECK: %[[T:.*]] = arith.addf %[[Y]], %[[SHIFTER:.*]] : f32
// CHECK: %[[K:.*]] = arith.subf %[[T]], %[[SHIFTER]] : f32
// CHECK: %[[TB:.*]] = arith.bitcast %[[T]] : f32 to i32
// CHECK: %[[KI:.*]] = arith.subi %[[TB]], %c1262485504_i32 : i32
// CHECK: %[[R0:.*]] = math.fma %[[K]], %{{.*}}, %[[C]] : f32
// CHECK: %[[R:.*]] = math.fma %[[K]], %{{.*}}, %[[R0]] : f32
// CHECK-COUNT-5: math.fma %{{.*}}, %[[R]], %{{.*}} : f32
// CHECK: %[[R2:.*]] = arith.mulf %[[R]], %[[R]]
// CHECK: %[[Q:.*]] = math.fma %[[R2]], %{{.*}}, %[[R]] : f32
// CHECK: %[[P:.*]] = arith.addf %[[Q]]
// CHECK: %[[HALF:.*]] = arith.shrsi %[[KI]]
// CHECK: arith.subi %[[KI]], %[[HALF]]
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[E:.*]] = arith.mulf
// CHECK: %[[NAN:.*]] = arith.cmpf uno, %[[X]], %[[X]]
// CHECK: %[[OUT:.*]] = arith.select %[[NAN]], %[[X]], %[[E]]
// CHECK: return %[[OUT]]
// CHECK-NOT: math.exp
// CHECK-NOT: f64
// CHECK-NOT: math.roundeven
// CHECK-NOT: arith.fptosi
func.func @exp_f32(%x: f32) -> f32 {
  %e = math.exp %x : f32
  return %e : f32
}

// Other types keep math.exp (libm / LLVM intrinsics).
// CHECK-LABEL: func.func @exp_others
// CHECK: math.exp %{{.*}} : f64
// CHECK: math.exp %{{.*}} : vector<4xf32>
// CHECK-NOT: math.fma
func.func @exp_others(%x: f64, %v: vector<4xf32>) -> (f64, vector<4xf32>) {
  %e = math.exp %x : f64
  %w = math.exp %v : vector<4xf32>
  return %e, %w : f64, vector<4xf32>
}
