// Blocks run one after another on the emulator, so block 0 waiting for a
// flag that block 1 sets would spin forever: a thread that makes too many
// memory accesses without reaching a barrier or a shuffle is stopped with a
// report instead of hanging the process.
// RUN: usmoe-opt %s -usmoe-to-gpu-emu | env USMOE_EMU_SPIN_LIMIT=100000 %run_emu 2>&1 | FileCheck %s

// CHECK: usmoe-emu: error: kernel 'wait_for_block_1' {{.*}}: thread spins without progress at {{.*}}spin-wait.mlir:[[#]]:[[#]]: memref.atomic_rmw; thread (0,0,0) of block (0,0,0); 100000 memory accesses without reaching a barrier or a shuffle
// CHECK: [0]

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @wait_for_block_1(%flag: memref<1xi32>) kernel {
      %c0 = arith.constant 0 : index
      %zero = arith.constant 0 : i32
      %one = arith.constant 1 : i32
      %b = gpu.block_id x
      %first = arith.cmpi eq, %b, %c0 : index
      scf.if %first {
        scf.while : () -> () {
          %v = memref.atomic_rmw addi %zero, %flag[%c0] : (i32, memref<1xi32>) -> i32
          %unset = arith.cmpi eq, %v, %zero : i32
          scf.condition(%unset)
        } do {
          scf.yield
        }
      } else {
        %old = memref.atomic_rmw assign %one, %flag[%c0] : (i32, memref<1xi32>) -> i32
      }
      gpu.return
    }
  }

  func.func private @printMemrefI32(memref<*xi32>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %zero = arith.constant 0 : i32
    %flag = memref.alloc() : memref<1xi32>
    memref.store %zero, %flag[%c0] : memref<1xi32>
    gpu.launch_func @kernels::@wait_for_block_1 blocks in (%c2, %c1, %c1) threads in (%c1, %c1, %c1)
        args(%flag : memref<1xi32>)
    %u = memref.cast %flag : memref<1xi32> to memref<*xi32>
    call @printMemrefI32(%u) : (memref<*xi32>) -> ()
    memref.dealloc %flag : memref<1xi32>
    return
  }
}
