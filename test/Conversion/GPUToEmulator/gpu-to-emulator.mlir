// RUN: usmoe-opt %s -convert-gpu-to-emulator | FileCheck %s
// RUN: usmoe-opt %s -convert-gpu-to-emulator | FileCheck %s --check-prefix=GONE \
// RUN:   --implicit-check-not=gpu.module --implicit-check-not=gpu.func \
// RUN:   --implicit-check-not=gpu.return --implicit-check-not=gpu.container_module \
// RUN:   --implicit-check-not="#gpu.address_space"
// GONE: func.func @host

// A kernel becomes a host function of (thread, packed operands); ids,
// shuffles and barriers become runtime calls that name their site; each
// access is bounds-checked per dimension (a vector needs room for all its
// lanes) and reported to the checker with its address, width and kind
// (1 = read, 2 = write, 8 = shared); workgroup buffers are views of the
// block's shared memory without their memory space; the launch packs the
// operands into one stack struct and calls usmoe_emu_launch with the
// static shared memory size (32 f32 = 128 bytes).

// CHECK-DAG: llvm.mlir.global internal constant @[[LOAD:.*]]("{{.*}}gpu-to-emulator.mlir:[[#@LINE+39]]:12: vector.load\00")
// CHECK-DAG: llvm.mlir.global internal constant @[[SHFL:.*]]("{{.*}}gpu-to-emulator.mlir:[[#@LINE+40]]:20: gpu.shuffle\00")
// CHECK-DAG: llvm.mlir.global internal constant @[[BAR:.*]]("{{.*}}gpu-to-emulator.mlir:[[#@LINE+41]]:7: gpu.barrier\00")
// CHECK-LABEL: func.func private @__usmoe_emu_kernels_k(
// CHECK-SAME: %[[T:.*]]: !llvm.ptr, %[[ARGS:.*]]: !llvm.ptr)
// CHECK: %[[PACKED:.*]] = llvm.load %[[ARGS]] : !llvm.ptr -> !llvm.struct<(struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>, i64)>
// CHECK: %[[IN:.*]] = builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<?x8xf32>
// CHECK: %[[SHARED:.*]] = call @usmoe_emu_shared_memory(%[[T]])
// CHECK: %[[BUF:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<32xf32>
// CHECK: call @usmoe_emu_id(%[[T]], %c0_i32)
// CHECK: call @usmoe_emu_id(%[[T]], %c4_i32)
// CHECK: %[[C4:.*]] = arith.constant 4 : index
// CHECK: arith.addi %c0, %[[C4]] : index
// CHECK: scf.if
// CHECK: func.call @usmoe_emu_out_of_bounds(%[[T]], {{.*}}, %c1_i64, %{{.*}})
// CHECK: call @usmoe_emu_access(%[[T]], %{{.*}}, %c16_i64, %c1_i32_{{.*}}, %{{.*}})
// CHECK-NEXT: vector.load %[[IN]]
// CHECK: %[[BITS:.*]] = arith.bitcast %{{.*}} : f32 to i32
// CHECK: %[[R:.*]] = call @usmoe_emu_shuffle(%[[T]], %[[BITS]], %{{.*}}, %{{.*}}, %c2_i32, %{{.*}})
// CHECK: arith.trunci %[[R]] : i64 to i32
// CHECK: call @usmoe_emu_access(%[[T]], %{{.*}}, %c4_i64, %c10_i32, %{{.*}})
// CHECK-NEXT: memref.store %{{.*}}, %[[BUF]][%{{.*}}] : memref<32xf32>
// CHECK: call @usmoe_emu_barrier(%[[T]], %{{.*}})
// CHECK-NEXT: return
// CHECK-LABEL: func.func @host
// CHECK: %[[SLOT:.*]] = llvm.alloca
// CHECK: llvm.store %{{.*}}, %[[SLOT]]
// CHECK: %[[SMEM:.*]] = arith.constant 128 : i64
// CHECK: %[[F:.*]] = constant @__usmoe_emu_kernels_k : (!llvm.ptr, !llvm.ptr) -> ()
// CHECK: call @usmoe_emu_launch(%[[F]], %[[SLOT]], {{.*}}, %[[SMEM]])

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%in: memref<?x8xf32>, %n: index) workgroup(%buf: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %w = arith.constant 32 : i32
      %o = arith.constant 1 : i32
      %t = gpu.thread_id x
      %b = gpu.block_id y
      %v = vector.load %in[%b, %c0] : memref<?x8xf32>, vector<4xf32>
      %x = vector.extract %v[0] : f32 from vector<4xf32>
      %s, %valid = gpu.shuffle down %x, %o, %w : f32
      memref.store %s, %buf[%t] : memref<32xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      gpu.return
    }
  }
  func.func @host(%in: memref<?x8xf32>, %n: index) {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    gpu.launch_func @kernels::@k blocks in (%c1, %n, %c1) threads in (%c32, %c1, %c1) args(%in : memref<?x8xf32>, %n : index)
    return
  }
}
