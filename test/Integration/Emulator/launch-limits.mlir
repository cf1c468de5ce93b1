// Launch shapes beyond what every sm_75+ GPU allows end the emulated call
// with a report naming the launch; the kernel does not run.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --implicit-check-not=usmoe-emu
// RUN: sed -e 's|%bx = arith.constant 32|%bx = arith.constant 2048|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=BLOCKX
// RUN: sed -e 's|%bz = arith.constant 1|%bz = arith.constant 64|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: sed -e 's|%gx = arith.constant 1|%gx = arith.constant 0|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: sed -e 's|%gy = arith.constant 1|%gy = arith.constant 65536|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=GRIDY
// RUN: sed -e 's|memref<16xi32, #gpu|memref<16384xi32, #gpu|' %s | usmoe-opt -usmoe-to-gpu-emu | %run_emu 2>&1 | FileCheck %s --check-prefix=SHARED

// CHECK: [7]
// BLOCKX: usmoe-emu: error: kernel 'store' (launched at <stdin>:[[#]]:5: gpu.launch_func): launch beyond hardware limits at <stdin>:[[#]]:5: gpu.launch_func; block.x = 2048 (limit 1024)
// THREADS: launch beyond hardware limits {{.*}}; 2048 threads per block (limit 1024)
// EMPTY: launch beyond hardware limits {{.*}}; grid.x = 0 (must be in [1, 2147483647])
// GRIDY: launch beyond hardware limits {{.*}}; grid.y = 65536 (must be in [1, 65535])
// SHARED: launch beyond hardware limits {{.*}}; 65536 bytes of static shared memory (limit 49152)
// BLOCKX: [0]
// THREADS: [0]

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @store(%out: memref<1xi32>) workgroup(%unused: memref<16xi32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %seven = arith.constant 7 : i32
      %t = gpu.thread_id x
      %b = gpu.block_id x
      %first = arith.cmpi eq, %t, %c0 : index
      %block0 = arith.cmpi eq, %b, %c0 : index
      %first_block = arith.andi %first, %block0 : i1
      scf.if %first_block {
        memref.store %seven, %out[%c0] : memref<1xi32>
      }
      gpu.return
    }
  }

  func.func private @printMemrefI32(memref<*xi32>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %gx = arith.constant 1 : index
    %gy = arith.constant 1 : index
    %bx = arith.constant 32 : index
    %by = arith.constant 1 : index
    %bz = arith.constant 1 : index
    %zero = arith.constant 0 : i32
    %out = memref.alloc() : memref<1xi32>
    memref.store %zero, %out[%c0] : memref<1xi32>
    gpu.launch_func @kernels::@store blocks in (%gx, %gy, %gy) threads in (%bx, %by, %bz)
        args(%out : memref<1xi32>)
    %u = memref.cast %out : memref<1xi32> to memref<*xi32>
    call @printMemrefI32(%u) : (memref<*xi32>) -> ()
    memref.dealloc %out : memref<1xi32>
    return
  }
}
