// RUN: usmoe-opt %s -usmoe-expand-exp | FileCheck %s

// A scalar f32 exp becomes f64 arithmetic: clamp (NaN-ignoring), widen,
// k = roundeven(x * log2(e)), r = fma(k, -ln 2, x), a Horner chain of 11
// fmas, 2^k from its bits, one rounding to f32, NaN passed through.
// CHECK-LABEL: func.func @exp_f32
// CHECK-SAME: (%[[X:.*]]: f32)
// CHECK: %[[LO:.*]] = arith.minnumf %[[X]]
// CHECK: %[[C:.*]] = arith.maxnumf %[[LO]]
// CHECK: %[[XD:.*]] = arith.extf %[[C]] : f32 to f64
// CHECK: %[[K:.*]] = math.roundeven
// CHECK: %[[R:.*]] = math.fma %[[K]], %{{.*}}, %[[XD]] : f64
// CHECK-COUNT-11: math.fma %{{.*}}, %[[R]], %{{.*}} : f64
// CHECK: arith.fptosi %[[K]] : f64 to i64
// CHECK: arith.shli
// CHECK: arith.bitcast %{{.*}} : i64 to f64
// CHECK: %[[Y:.*]] = arith.truncf %{{.*}} : f64 to f32
// CHECK: %[[NAN:.*]] = arith.cmpf uno, %[[X]], %[[X]]
// CHECK: %[[OUT:.*]] = arith.select %[[NAN]], %[[X]], %[[Y]]
// CHECK: return %[[OUT]]
// CHECK-NOT: math.exp
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
