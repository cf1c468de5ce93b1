// RUN: usmoe-opt %s -usmoe-share-parallel-bodies -split-input-file | FileCheck %s

// A marked twin: the body moves into one function over a flattened range;
// the parallel form runs chunks of the range, the sequential form all of
// it, and no copy of the body is left in either.
// CHECK-LABEL: func.func private @rows_parallel_body_0
// CHECK-SAME: (%[[BEGIN:.*]]: index, %[[END:.*]]: index, %[[M:.*]]: memref<?x?xf32>, %[[COLS:.*]]: index)
// The constant is copied in, not passed.
// CHECK: %[[TWO:.*]] = arith.constant 2.0
// CHECK: scf.if
// CHECK: %[[J0:.*]] = arith.remui %[[BEGIN]], %[[COLS]]
// CHECK: %[[I0:.*]] = arith.divui %[[BEGIN]], %[[COLS]]
// CHECK: scf.for %{{.*}} = %[[BEGIN]] to %[[END]] {{.*}} iter_args(%[[I:.*]] = %[[I0]], %[[J:.*]] = %[[J0]])
// CHECK: memref.load %[[M]][%[[I]], %[[J]]]
// CHECK: arith.mulf %{{.*}}, %[[TWO]]
// CHECK: %[[NEXT:.*]] = arith.addi %[[J]], %{{.*}}
// CHECK: arith.cmpi eq, %[[NEXT]], %[[COLS]]
// CHECK-LABEL: func.func @rows
// CHECK: %[[ROWS:.*]] = memref.dim %{{.*}}, %c0
// CHECK: %[[COLS2:.*]] = memref.dim %{{.*}}, %c1
// CHECK: %[[TOTAL:.*]] = arith.muli %[[ROWS]], %[[COLS2]]
// CHECK: scf.if
// CHECK: %[[CHUNKS:.*]] = arith.minui %[[TOTAL]], %c128
// CHECK: scf.parallel (%{{.*}}) = (%{{.*}}) to (%[[CHUNKS]])
// CHECK: call @rows_parallel_body_0({{.*}}, %[[COLS2]])
// CHECK: } else {
// CHECK-NEXT: %[[ZERO:.*]] = arith.constant 0
// CHECK-NEXT: call @rows_parallel_body_0(%[[ZERO]], %[[TOTAL]], %{{.*}}, %[[COLS2]])
// CHECK-NEXT: }
// CHECK-NOT: usmoe.sequential_twin
// CHECK-NOT: memref.load
func.func @rows(%m: memref<?x?xf32>, %work: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32768 = arith.constant 32768 : index
  %two = arith.constant 2.0 : f32
  %rows = memref.dim %m, %c0 : memref<?x?xf32>
  %cols = memref.dim %m, %c1 : memref<?x?xf32>
  %worth = arith.cmpi uge, %work, %c32768 : index
  scf.if %worth {
    scf.parallel (%i, %j) = (%c0, %c0) to (%rows, %cols) step (%c1, %c1) {
      %v = memref.load %m[%i, %j] : memref<?x?xf32>
      %w = arith.mulf %v, %two : f32
      memref.store %w, %m[%i, %j] : memref<?x?xf32>
      scf.reduce
    }
  } else {
    scf.for %i = %c0 to %rows step %c1 {
      scf.for %j = %c0 to %cols step %c1 {
        %v = memref.load %m[%i, %j] : memref<?x?xf32>
        %w = arith.mulf %v, %two : f32
        memref.store %w, %m[%i, %j] : memref<?x?xf32>
      }
    }
  } {usmoe.sequential_twin}
  return
}

// -----

// Not the expected shape (the parallel loop starts at 1): both forms stay,
// marked, and nothing is outlined.
// CHECK: module {
// CHECK-NEXT: func.func @offset
// CHECK: scf.parallel
// CHECK: scf.for
// CHECK: } {usmoe.sequential_twin}
func.func @offset(%m: memref<?xf32>, %worth: i1) {
  %c1 = arith.constant 1 : index
  %n = memref.dim %m, %c1 : memref<?xf32>
  %zero = arith.constant 0.0 : f32
  scf.if %worth {
    scf.parallel (%i) = (%c1) to (%n) step (%c1) {
      memref.store %zero, %m[%i] : memref<?xf32>
      scf.reduce
    }
  } else {
    scf.for %i = %c1 to %n step %c1 {
      memref.store %zero, %m[%i] : memref<?xf32>
    }
  } {usmoe.sequential_twin}
  return
}

// -----

// An unmarked if is not a twin, whatever it holds.
// CHECK: module {
// CHECK-NEXT: func.func @unmarked
// CHECK: scf.parallel
// CHECK: memref.store
// CHECK: } else {
// CHECK-NEXT: }
func.func @unmarked(%m: memref<?xf32>, %worth: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %m, %c0 : memref<?xf32>
  %zero = arith.constant 0.0 : f32
  scf.if %worth {
    scf.parallel (%i) = (%c0) to (%n) step (%c1) {
      memref.store %zero, %m[%i] : memref<?xf32>
      scf.reduce
    }
  } else {
  }
  return
}

// -----

// A twin inside another's body: the inner body is outlined first and the
// outer body calls it; the copy made from the outer sequential form is
// dropped with that form, so exactly two bodies remain.
// CHECK: func.func private @nested_parallel_body_0
// CHECK: memref.store
// CHECK: func.func private @nested_parallel_body_2
// CHECK: call @nested_parallel_body_0
// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @nested
// CHECK-NOT: memref.store
func.func @nested(%m: memref<?x?xf32>, %worth: i1, %inner: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = memref.dim %m, %c0 : memref<?x?xf32>
  %cols = memref.dim %m, %c1 : memref<?x?xf32>
  %zero = arith.constant 0.0 : f32
  scf.if %worth {
    scf.parallel (%i) = (%c0) to (%rows) step (%c1) {
      scf.if %inner {
        scf.parallel (%j) = (%c0) to (%cols) step (%c1) {
          memref.store %zero, %m[%i, %j] : memref<?x?xf32>
          scf.reduce
        }
      } else {
        scf.for %j = %c0 to %cols step %c1 {
          memref.store %zero, %m[%i, %j] : memref<?x?xf32>
        }
      } {usmoe.sequential_twin}
      scf.reduce
    }
  } else {
    scf.for %i = %c0 to %rows step %c1 {
      scf.if %inner {
        scf.parallel (%j) = (%c0) to (%cols) step (%c1) {
          memref.store %zero, %m[%i, %j] : memref<?x?xf32>
          scf.reduce
        }
      } else {
        scf.for %j = %c0 to %cols step %c1 {
          memref.store %zero, %m[%i, %j] : memref<?x?xf32>
        }
      } {usmoe.sequential_twin}
    }
  } {usmoe.sequential_twin}
  return
}

// -----

// The aligned pointers of captured buffers the function allocated, each
// captured once, are listed for usmoe-noalias-args: %s (LLVM parameters:
// begin, end, %in's 5, then %s's allocated and aligned pointers = 8). %in
// is an argument (it may overlap anything) and %t is captured twice (as
// itself and as a view), so neither is listed.
// CHECK-LABEL: func.func private @scratch_parallel_body_0
// CHECK-SAME: (%{{.*}}: index, %{{.*}}: index, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32, strided<[1]>>)
// CHECK-SAME: llvm.linkage = #llvm.linkage<internal>
// CHECK-SAME: usmoe.noalias_args = array<i64: 8>
func.func @scratch(%in: memref<?xf32>, %worth: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %in, %c0 : memref<?xf32>
  %s = memref.alloc(%n) : memref<?xf32>
  %t = memref.alloc(%n) : memref<?xf32>
  %tv = memref.subview %t[0] [%n] [1] : memref<?xf32> to memref<?xf32, strided<[1]>>
  scf.if %worth {
    scf.parallel (%i) = (%c0) to (%n) step (%c1) {
      %v = memref.load %in[%i] : memref<?xf32>
      memref.store %v, %s[%i] : memref<?xf32>
      memref.store %v, %t[%i] : memref<?xf32>
      memref.store %v, %tv[%i] : memref<?xf32, strided<[1]>>
      scf.reduce
    }
  } else {
    scf.for %i = %c0 to %n step %c1 {
      %v = memref.load %in[%i] : memref<?xf32>
      memref.store %v, %s[%i] : memref<?xf32>
      memref.store %v, %t[%i] : memref<?xf32>
      memref.store %v, %tv[%i] : memref<?xf32, strided<[1]>>
    }
  } {usmoe.sequential_twin}
  return
}
