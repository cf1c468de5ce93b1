// Global memory on the GPU emulator: a barrier orders the accesses of one
// block (no report), nothing orders two blocks (a race), and a schedule seed
// changes the order of atomics, so order-dependent results show up.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: sed -e 's|%which = gpu.block_id x|%which = arith.constant 0 : index|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=RACE
// RUN: usmoe-opt %s -usmoe-to-gpu-emu -o %t.mlir
// RUN: %run_emu %t.mlir | grep -v base@ > %t.in-order
// RUN: env USMOE_EMU_SEED=1 %run_emu %t.mlir | grep -v base@ > %t.seed1
// RUN: env USMOE_EMU_SEED=1 %run_emu %t.mlir | grep -v base@ > %t.seed1-again
// RUN: diff %t.seed1 %t.seed1-again
// RUN: not diff %t.in-order %t.seed1

// Each thread read what thread 0 of its block wrote before the barrier.
// CHECK: [0,  0,  0,  0,  0,  0,  0,  0,  1,  1,  1,  1,  1,  1,  1,  1]
// In order, each thread's atomic exchange returns its predecessor's value.
// CHECK: [-1,  0,  1,  2,  3,  4,  5,  6,  -1,  8,  9,  10,  11,  12,  13,  14]

// RACE: usmoe-emu: error: kernel 'publish' {{.*}}: data race on global memory at <stdin>:[[#]]:[[#]]: memref.store; thread (0,0,0) of block (1,0,0); this write conflicts with a write by thread (0,0,0) of block (0,0,0) at <stdin>:[[#]]:[[#]]: memref.store, with no barrier between them

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @publish(%flags: memref<2xi32>, %seen: memref<16xi32>, %cells: memref<2xi32>, %previous: memref<16xi32>) kernel {
      %c0 = arith.constant 0 : index
      %c8 = arith.constant 8 : index
      %t = gpu.thread_id x
      %b = gpu.block_id x
      %which = gpu.block_id x
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        %bi = arith.index_cast %b : index to i32
        memref.store %bi, %flags[%which] : memref<2xi32>
      }
      gpu.barrier
      %v = memref.load %flags[%which] : memref<2xi32>
      %row = arith.muli %b, %c8 : index
      %i = arith.addi %row, %t : index
      memref.store %v, %seen[%i] : memref<16xi32>
      %ii = arith.index_cast %i : index to i32
      %old = memref.atomic_rmw assign %ii, %cells[%b] : (i32, memref<2xi32>) -> i32
      memref.store %old, %previous[%i] : memref<16xi32>
      gpu.return
    }
  }

  func.func private @printMemrefI32(memref<*xi32>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8 = arith.constant 8 : index
    %minus1 = arith.constant -1 : i32
    %flags = memref.alloc() : memref<2xi32>
    %seen = memref.alloc() : memref<16xi32>
    %cells = memref.alloc() : memref<2xi32>
    %previous = memref.alloc() : memref<16xi32>
    memref.store %minus1, %cells[%c0] : memref<2xi32>
    memref.store %minus1, %cells[%c1] : memref<2xi32>
    gpu.launch_func @kernels::@publish blocks in (%c2, %c1, %c1) threads in (%c8, %c1, %c1)
        args(%flags : memref<2xi32>, %seen : memref<16xi32>, %cells : memref<2xi32>, %previous : memref<16xi32>)
    %s = memref.cast %seen : memref<16xi32> to memref<*xi32>
    call @printMemrefI32(%s) : (memref<*xi32>) -> ()
    %p = memref.cast %previous : memref<16xi32> to memref<*xi32>
    call @printMemrefI32(%p) : (memref<*xi32>) -> ()
    memref.dealloc %flags : memref<2xi32>
    memref.dealloc %seen : memref<16xi32>
    memref.dealloc %cells : memref<2xi32>
    memref.dealloc %previous : memref<16xi32>
    return
  }
}
