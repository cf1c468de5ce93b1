// RUN: usmoe-opt %s -usmoe-host-shared-allocs | FileCheck %s

// Host buffers become managed memory; the ones that do not reach the return
// are freed before it, the returned ones (directly or through a view) are
// not, and kernels keep their own memory.

// CHECK-LABEL: func.func @host
// CHECK-SAME: (%[[N:[^:]*]]: index,
// CHECK: %[[TMP:.*]] = gpu.alloc host_shared (%[[N]]) : memref<?xf32>
// CHECK: %[[OUT:.*]] = gpu.alloc host_shared () : memref<8xi32>
// CHECK: %[[VIEWED:.*]] = gpu.alloc host_shared () : memref<4xf32>
// CHECK: %[[FREED:.*]] = gpu.alloc host_shared () : memref<2xf32>
// CHECK: scf.if
// CHECK-NEXT: %[[INNER:.*]] = gpu.alloc host_shared () : memref<3xf32>
// gpu-to-llvm lowers only the asynchronous dealloc: on a stream of its own,
// waited for at once.
// CHECK-NEXT: %[[T0:.*]] = gpu.wait async
// CHECK-NEXT: %[[T1:.*]] = gpu.dealloc async [%[[T0]]] %[[INNER]]
// CHECK-NEXT: gpu.wait [%[[T1]]]
// CHECK: gpu.dealloc async [%{{.*}}] %[[FREED]]
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.dealloc
// CHECK: gpu.dealloc async [%{{.*}}] %[[TMP]] : memref<?xf32>
// CHECK-NOT: gpu.dealloc
// CHECK: return %[[OUT]], %{{.*}} : memref<8xi32>, memref<?xf32>
// CHECK: gpu.module @kernels
// CHECK: memref.alloc() : memref<16xf32, 5>
func.func @host(%n: index, %c: i1) -> (memref<8xi32>, memref<?xf32>) {
  %tmp = memref.alloc(%n) : memref<?xf32>
  %out = memref.alloc() : memref<8xi32>
  %viewed = memref.alloc() : memref<4xf32>
  %freed = memref.alloc() : memref<2xf32>
  scf.if %c {
    %inner = memref.alloc() : memref<3xf32>
    memref.dealloc %inner : memref<3xf32>
  }
  memref.dealloc %freed : memref<2xf32>
  %cast = memref.cast %viewed : memref<4xf32> to memref<?xf32>
  return %out, %cast : memref<8xi32>, memref<?xf32>
}

gpu.module @kernels {
  gpu.func @k() kernel {
    %private = memref.alloc() : memref<16xf32, 5>
    gpu.return
  }
}
