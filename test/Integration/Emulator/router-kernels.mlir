// The real router kernels (convert-moe-to-gpu's output) on the GPU emulator
// give the CPU path's selection, in order and under schedule seeds; with
// their barriers removed, the checkers stop them: with none left, a thread
// counts into a histogram bin nobody zeroed yet; with only the first left,
// thread 0 reads the histogram while others still count into it.
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | env USMOE_EMU_SEED=3 %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | env USMOE_EMU_FIBERS=ucontext %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: usmoe-opt %s -moe-fuse-routing -canonicalize -convert-moe-to-gpu | sed -e '/gpu.barrier/d' \
// RUN:   | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: usmoe-opt %s -moe-fuse-routing -canonicalize -convert-moe-to-gpu \
// RUN:   | sed -e '0,/gpu.barrier/!{/gpu.barrier/d}' \
// RUN:   | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=RACE

// Unified, k = 1.5 of 6 tokens x 5 experts: the 9 best unified scores.
// CHECK:      {{\[\[\[}}0,   1,   1,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   1,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   0],
// CHECK-NEXT:   [1,   1,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   1,   1,   0],
// CHECK-NEXT:   [0,   1,   0,   0,   1]]]
// Expert Choice, capacity 2: two tokens per expert.
// CHECK:      {{\[\[\[}}0,   1,   1,   0,   0],
// CHECK-NEXT:   [0,   0,   0,   1,   0],
// CHECK-NEXT:   [1,   0,   0,   0,   1],
// CHECK-NEXT:   [1,   1,   0,   0,   0],
// CHECK-NEXT:   [0,   0,   1,   1,   0],
// CHECK-NEXT:   [0,   0,   0,   0,   1]]]

// NONE: usmoe-emu: error: kernel 'route_unified_0_select' {{.*}}: read of uninitialized shared memory at <stdin>:[[#]]:[[#]]: memref.atomic_rmw; thread (0,0,0) of block (0,0,0)
// RACE: usmoe-emu: error: kernel 'route_unified_0_select' {{.*}}: data race on shared memory at <stdin>:[[#]]:[[#]]: memref.atomic_rmw; thread (1,0,0) of block (0,0,0); this atomic conflicts with a read by thread (0,0,0) of block (0,0,0) at <stdin>:[[#]]:[[#]]: memref.load

func.func private @printMemrefI32(memref<*xi32>)

func.func @print_mask(%m: tensor<?x?x5xi1>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %mask = bufferization.to_buffer %m : tensor<?x?x5xi1> to memref<?x?x5xi1>
  %t = memref.dim %mask, %c1 : memref<?x?x5xi1>
  %ints = memref.alloc(%t) : memref<1x?x5xi32>
  scf.for %i = %c0 to %t step %c1 {
    scf.for %e = %c0 to %c5 step %c1 {
      %bit = memref.load %mask[%c0, %i, %e] : memref<?x?x5xi1>
      %v = arith.extui %bit : i1 to i32
      memref.store %v, %ints[%c0, %i, %e] : memref<1x?x5xi32>
    }
  }
  %u = memref.cast %ints : memref<1x?x5xi32> to memref<*xi32>
  call @printMemrefI32(%u) : (memref<*xi32>) -> ()
  return
}

func.func @main() {
  %cst = arith.constant dense<[[[ 0.1, 2.0, 1.5, -1.0,  0.3],
                                [-0.2, 0.0, 0.1,  2.5, -3.0],
                                [ 1.0, 0.2, 0.7,  0.9,  1.1],
                                [ 3.0, 2.9,-0.5,  0.0,  0.2],
                                [ 0.0, 0.0, 2.2,  1.9,  0.0],
                                [-1.0, 1.2, 0.4,  0.5,  1.6]]]> : tensor<1x6x5xf32>
  %l = tensor.cast %cst : tensor<1x6x5xf32> to tensor<?x?x5xf32>
  %g, %m = moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %l : tensor<?x?x5xf32>
  call @print_mask(%m) : (tensor<?x?x5xi1>) -> ()
  %g2, %m2 = moe.route #moe.expert<capacity = 2> %l : tensor<?x?x5xf32>
  call @print_mask(%m2) : (tensor<?x?x5xi1>) -> ()
  return
}
