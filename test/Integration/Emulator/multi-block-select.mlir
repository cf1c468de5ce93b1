// Selection sets larger than one chunk run on several blocks: a histogram
// launch per digit merged by the set's last block, then a marking launch.
// With select-chunk = 4 and select-spread = 4 each 30-pair sequence spans 8
// blocks and each 6-token column 2, and the selection equals the CPU path's, in order and
// under schedule seeds (random block order: any block can be the last).
// Sequence 1 is all ties: exactly the first N pairs (or C tokens) in index
// order are taken, which the last block finds by a scan over the set.
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// RUN: usmoe-opt %s -moe-fuse-routing -canonicalize -convert-moe-to-gpu="select-chunk=4 select-spread=4" > %t.mlir
// RUN: FileCheck %s --check-prefix=IR < %t.mlir
// RUN: usmoe-opt %t.mlir -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: usmoe-opt %t.mlir -usmoe-to-gpu-emu | env USMOE_EMU_SEED=5 %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: usmoe-opt %t.mlir -usmoe-to-gpu-emu | env USMOE_EMU_SEED=11 %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// The score kernel zeroes the select's workspace (no launch of its own).
// Without those stores the done counters start from the emulator's poison
// (device memory is not zeroed), no block is the last, and the selection is
// wrong.
// RUN: sed -e '/memref.store %c0_i32[_0-9]*, %arg2\[%arg3\] : memref<?xi32>/d' %t.mlir \
// RUN:   | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | not FileCheck %s

// The select kernels recompute the scores from the logits and the rows'
// softmax statistics, which is what the score kernel writes.
// IR: gpu.launch_func @usmoe_kernels::@route_unified_0_scores {{.*}} args(%{{.*}}, %[[STATS:.*]] : memref<?xf32>, %[[WS:.*]] : memref<?xi32>)
// IR-NOT: gpu.launch_func
// IR-COUNT-4: gpu.launch_func @usmoe_kernels::@route_unified_0_select_histogram {{.*}} args({{.*}}, %[[STATS]] : memref<?xf32>, %[[WS]] : memref<?xi32>,
// IR: gpu.launch_func @usmoe_kernels::@route_unified_0_select_mark
// IR: gpu.launch_func @usmoe_kernels::@route_unified_0_select blocks {{.*}} args(%{{.*}}, %[[STATS]] : memref<?xf32>,
// IR-NOT: gpu.launch_func @usmoe_kernels::@route_unified_0_select
// IR: gpu.launch_func @usmoe_kernels::@route_expert_1_scores
// IR: gpu.func @route_unified_0_scores({{.*}}, %arg1: memref<?xf32>, %arg2: memref<?xi32>)
// IR: memref.store %c0_i32{{[_0-9]*}}, %arg2[%arg3] : memref<?xi32>
// IR: gpu.return

// Unified, k = 1.5 of 6 tokens x 5 experts: the 9 best unified scores;
// sequence 1 (all equal): the first 9 pairs.
// CHECK:      {{\[\[\[}}0,   1,   1,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   1,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [1,   1,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   1,   1,   0],
// CHECK-NEXT:   [0,   1,   0,   0,   1]],
// CHECK-NEXT:  {{\[\[}}1,   1,   1,   1,   1],
// CHECK-NEXT:   [1,   1,   1,   1,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0]]]
// Expert Choice, capacity 2: two tokens per expert; all equal: tokens 0, 1.
// CHECK:      {{\[\[\[}}0,   1,   1,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   1,   0],
// CHECK-NEXT:   [1,   0,   0,   0,   1],
// CHECK-NEXT:   [1,   1,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   1,   1,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   1]],
// CHECK-NEXT:  {{\[\[}}1,   1,   1,   1,   1],
// CHECK-NEXT:   [1,   1,   1,   1,   1],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0]]]

func.func private @printMemrefI32(memref<*xi32>)

func.func @print_mask(%m: tensor<?x?x5xi1>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %mask = bufferization.to_buffer %m : tensor<?x?x5xi1> to memref<?x?x5xi1>
  %b = memref.dim %mask, %c0 : memref<?x?x5xi1>
  %t = memref.dim %mask, %c1 : memref<?x?x5xi1>
  %ints = memref.alloc(%b, %t) : memref<?x?x5xi32>
  scf.for %s = %c0 to %b step %c1 {
    scf.for %i = %c0 to %t step %c1 {
      scf.for %e = %c0 to %c5 step %c1 {
        %bit = memref.load %mask[%s, %i, %e] : memref<?x?x5xi1>
        %v = arith.extui %bit : i1 to i32
        memref.store %v, %ints[%s, %i, %e] : memref<?x?x5xi32>
      }
    }
  }
  %u = memref.cast %ints : memref<?x?x5xi32> to memref<*xi32>
  call @printMemrefI32(%u) : (memref<*xi32>) -> ()
  return
}

func.func @main() {
  %cst = arith.constant dense<[[[ 0.1, 2.0, 1.5, -1.0,  0.3],
                                [-0.2, 0.0, 0.1,  2.5, -3.0],
                                [ 1.0, 0.2, 0.7,  0.9,  1.1],
                                [ 3.0, 2.9,-0.5,  0.0,  0.2],
                                [ 0.0, 0.0, 2.2,  1.9,  0.0],
                                [-1.0, 1.2, 0.4,  0.5,  1.6]],
                               [[ 0.0, 0.0, 0.0,  0.0,  0.0],
                                [ 0.0, 0.0, 0.0,  0.0,  0.0],
                                [ 0.0, 0.0, 0.0,  0.0,  0.0],
                                [ 0.0, 0.0, 0.0,  0.0,  0.0],
                                [ 0.0, 0.0, 0.0,  0.0,  0.0],
                                [ 0.0, 0.0, 0.0,  0.0,  0.0]]]> : tensor<2x6x5xf32>
  %l = tensor.cast %cst : tensor<2x6x5xf32> to tensor<?x?x5xf32>
  %g, %m = moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %l : tensor<?x?x5xf32>
  call @print_mask(%m) : (tensor<?x?x5xi1>) -> ()
  %g2, %m2 = moe.route #moe.expert<capacity = 2> %l : tensor<?x?x5xf32>
  call @print_mask(%m2) : (tensor<?x?x5xi1>) -> ()
  return
}
