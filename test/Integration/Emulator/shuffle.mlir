// gpu.shuffle on the GPU emulator: every mode's source lane and `valid` bit
// as PTX shfl.sync defines them for MLIR's NVVM lowering (an invalid source
// gives the lane its own value), then the deadlock of a shuffle that only
// half of a warp reaches.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s
// RUN: sed -e 's|%half = arith.constant 32|%half = arith.constant 16|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=PARTIAL
// RUN: sed -e 's|gpu.shuffle idx %v, %c7i, %w |gpu.shuffle idx %v, %c7i, %w16 |' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=WIDTH

// Each row: the value lane i got (100 + source lane), then 1 if valid.
// xor 5, width 32
// CHECK: [105,   104,   107,   106,   101,   100,   103,   102,   113,   112,   115,   114,   109,   108,   111,   110,   121,   120,   123,   122,   117,   116,   119,   118,   129,   128,   131,   130,   125,   124,   127,   126]
// CHECK: [1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1]
// up 3, width 32: lanes 0-2 keep their own value
// CHECK: [100,   101,   102,   100,   101,   102,   103,   104,   105,   106,   107,   108,   109,   110,   111,   112,   113,   114,   115,   116,   117,   118,   119,   120,   121,   122,   123,   124,   125,   126,   127,   128]
// CHECK: [0,   0,   0,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1]
// down 3, width 32: lanes 29-31 keep their own value
// CHECK: [103,   104,   105,   106,   107,   108,   109,   110,   111,   112,   113,   114,   115,   116,   117,   118,   119,   120,   121,   122,   123,   124,   125,   126,   127,   128,   129,   130,   131,   129,   130,   131]
// CHECK: [1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   0,   0,   0]
// idx 7, width 32
// CHECK: [107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107,   107]
// CHECK: [1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1]
// CHECK-NOT: usmoe-emu

// WIDTH: usmoe-emu: error: kernel 'shuffles' {{.*}}: shuffle outside its width at <stdin>:[[#]]:[[#]]: gpu.shuffle; thread (16,0,0) of block (0,0,0); lane 16 executes a shuffle of width 16
// PARTIAL: usmoe-emu: error: kernel 'shuffles' {{.*}}: shuffle reached by part of a warp (deadlock) at <stdin>:[[#]]:[[#]]: gpu.shuffle; thread (0,0,0) of block (0,0,0) waits for lane 16, which has exited

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @shuffles(%values: memref<4x32xi32>, %valid: memref<4x32xi32>) kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %c3i = arith.constant 3 : i32
      %c5i = arith.constant 5 : i32
      %c7i = arith.constant 7 : i32
      %w = arith.constant 32 : i32
      %w16 = arith.constant 16 : i32
      %base = arith.constant 100 : i32
      %half = arith.constant 32 : index
      %t = gpu.thread_id x
      %ti = arith.index_cast %t : index to i32
      %v = arith.addi %ti, %base : i32
      %x, %xv = gpu.shuffle xor %v, %c5i, %w : i32
      %u, %uv = gpu.shuffle up %v, %c3i, %w : i32
      %d, %dv = gpu.shuffle down %v, %c3i, %w : i32
      %reached = arith.cmpi ult, %t, %half : index
      %i, %iv = scf.if %reached -> (i32, i1) {
        %r, %rv = gpu.shuffle idx %v, %c7i, %w : i32
        scf.yield %r, %rv : i32, i1
      } else {
        %false = arith.constant false
        scf.yield %v, %false : i32, i1
      }
      memref.store %x, %values[%c0, %t] : memref<4x32xi32>
      memref.store %u, %values[%c1, %t] : memref<4x32xi32>
      memref.store %d, %values[%c2, %t] : memref<4x32xi32>
      memref.store %i, %values[%c3, %t] : memref<4x32xi32>
      %xe = arith.extui %xv : i1 to i32
      %ue = arith.extui %uv : i1 to i32
      %de = arith.extui %dv : i1 to i32
      %ie = arith.extui %iv : i1 to i32
      memref.store %xe, %valid[%c0, %t] : memref<4x32xi32>
      memref.store %ue, %valid[%c1, %t] : memref<4x32xi32>
      memref.store %de, %valid[%c2, %t] : memref<4x32xi32>
      memref.store %ie, %valid[%c3, %t] : memref<4x32xi32>
      gpu.return
    }
  }

  func.func private @printMemrefI32(memref<*xi32>)

  func.func @print_row(%m: memref<4x32xi32>, %row: index) {
    %r = memref.subview %m[%row, 0] [1, 32] [1, 1] : memref<4x32xi32> to memref<32xi32, strided<[1], offset: ?>>
    %u = memref.cast %r : memref<32xi32, strided<[1], offset: ?>> to memref<*xi32>
    call @printMemrefI32(%u) : (memref<*xi32>) -> ()
    return
  }

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    %values = memref.alloc() : memref<4x32xi32>
    %valid = memref.alloc() : memref<4x32xi32>
    gpu.launch_func @kernels::@shuffles blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%values : memref<4x32xi32>, %valid : memref<4x32xi32>)
    scf.for %row = %c0 to %c4 step %c1 {
      func.call @print_row(%values, %row) : (memref<4x32xi32>, index) -> ()
      func.call @print_row(%valid, %row) : (memref<4x32xi32>, index) -> ()
    }
    memref.dealloc %values : memref<4x32xi32>
    memref.dealloc %valid : memref<4x32xi32>
    return
  }
}
