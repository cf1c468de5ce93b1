// A shared-memory histogram (zero, barrier, atomics, barrier, read out) run
// on the GPU emulator as written, then with one fault injected at a time:
// each checker must fire and name the offending op.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=OK --implicit-check-not=usmoe-emu
// RUN: env USMOE_EMU_SEED=7 usmoe-opt %s -usmoe-to-gpu-emu | env USMOE_EMU_SEED=7 %run_emu 2>&1 | FileCheck %s --check-prefix=OK --implicit-check-not=usmoe-emu
// RUN: sed -e 's|gpu.barrier // after atomics||' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=RACE
// RUN: sed -e '/histogram zeroing/d' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=UNINIT
// RUN: sed -e 's|// barrier in a branch|gpu.barrier|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=DIVERGENT
// RUN: sed -e 's|%c63 = arith.constant 63|%c63 = arith.constant 64|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=BOUNDS

// OK: [15,  16,  16,  17]

// RACE: usmoe-emu: error: kernel 'histogram' (launched at <stdin>:[[#]]:5: gpu.launch_func): data race on shared memory at <stdin>:[[#]]:14: memref.load; thread (1,0,0) of block (0,0,0); this read conflicts with an atomic by thread (0,0,0) of block (0,0,0) at <stdin>:[[#]]:14: memref.atomic_rmw, with no barrier between them
// UNINIT: usmoe-emu: error: kernel 'histogram' {{.*}}: read of uninitialized shared memory at <stdin>:[[#]]:14: memref.atomic_rmw; thread (0,0,0) of block (0,0,0)
// DIVERGENT: usmoe-emu: error: kernel 'histogram' {{.*}}: barrier reached by part of the block at <stdin>:[[#]]:9: gpu.barrier; 4 of 64 threads wait there but thread (4,0,0) of block (0,0,0) has exited without reaching it
// BOUNDS: usmoe-emu: error: kernel 'histogram' {{.*}}: out-of-bounds access at <stdin>:[[#]]:12: memref.load; thread (63,0,0) of block (0,0,0); index 64 of dimension 0 is outside [0, 64)

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @histogram(%in: memref<64xi32>, %out: memref<4xi32>)
        workgroup(%bins: memref<4xi32, #gpu.address_space<workgroup>>) kernel {
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c63 = arith.constant 63 : index
      %one = arith.constant 1 : i32
      %zero = arith.constant 0 : i32
      %t = gpu.thread_id x
      %owner = arith.cmpi ult, %t, %c4 : index
      scf.if %owner {
        memref.store %zero, %bins[%t] : memref<4xi32, #gpu.address_space<workgroup>> // histogram zeroing
      }
      gpu.barrier
      // A bounds-clamped read of the next element: min(t + 1, 63).
      %next = arith.addi %t, %c1 : index
      %i = arith.minui %next, %c63 : index
      %v = memref.load %in[%i] : memref<64xi32>
      %bin = arith.index_cast %v : i32 to index
      %old = memref.atomic_rmw addi %one, %bins[%bin] : (i32, memref<4xi32, #gpu.address_space<workgroup>>) -> i32
      gpu.barrier // after atomics
      scf.if %owner {
        // barrier in a branch
        %n = memref.load %bins[%t] : memref<4xi32, #gpu.address_space<workgroup>>
        memref.store %n, %out[%t] : memref<4xi32>
      }
      gpu.return
    }
  }

  func.func private @printMemrefI32(memref<*xi32>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c64 = arith.constant 64 : index
    %in = memref.alloc() : memref<64xi32>
    scf.for %i = %c0 to %c64 step %c1 {
      %b = arith.remui %i, %c4 : index
      %v = arith.index_cast %b : index to i32
      memref.store %v, %in[%i] : memref<64xi32>
    }
    %out = memref.alloc() : memref<4xi32>
    gpu.launch_func @kernels::@histogram blocks in (%c1, %c1, %c1) threads in (%c64, %c1, %c1)
        args(%in : memref<64xi32>, %out : memref<4xi32>)
    %u = memref.cast %out : memref<4xi32> to memref<*xi32>
    call @printMemrefI32(%u) : (memref<*xi32>) -> ()
    memref.dealloc %in : memref<64xi32>
    memref.dealloc %out : memref<4xi32>
    return
  }
}
