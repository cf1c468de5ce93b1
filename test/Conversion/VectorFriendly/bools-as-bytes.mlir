// RUN: usmoe-opt %s -usmoe-bools-as-bytes | FileCheck %s

// A mask element is read as its byte and truncated, written zero-extended;
// the accesses keep their attributes.
// CHECK-LABEL: llvm.func @copy_mask
// CHECK: %[[BYTE:.*]] = llvm.load volatile %{{.*}} {alignment = 1 : i64} : !llvm.ptr -> i8
// CHECK: %[[BIT:.*]] = llvm.trunc %[[BYTE]] : i8 to i1
// CHECK: %[[WIDE:.*]] = llvm.zext %[[BIT]] : i1 to i8
// CHECK: llvm.store %[[WIDE]], %{{.*}} {alignment = 1 : i64} : i8, !llvm.ptr
// CHECK-NOT: !llvm.ptr -> i1
// CHECK-NOT: i1, !llvm.ptr
llvm.func @copy_mask(%src: !llvm.ptr, %dst: !llvm.ptr) {
  %v = llvm.load volatile %src {alignment = 1 : i64} : !llvm.ptr -> i1
  llvm.store %v, %dst {alignment = 1 : i64} : i1, !llvm.ptr
  llvm.return
}

// Other integer types and vectors of i1 (bit-packed in memory) are left
// alone.
// CHECK-LABEL: llvm.func @others
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> i32
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> vector<8xi1>
// CHECK: llvm.store %{{.*}}, %{{.*}} : vector<8xi1>, !llvm.ptr
// CHECK-NOT: llvm.trunc
// CHECK-NOT: llvm.zext
llvm.func @others(%p: !llvm.ptr) -> i32 {
  %a = llvm.load %p : !llvm.ptr -> i32
  %v = llvm.load %p : !llvm.ptr -> vector<8xi1>
  llvm.store %v, %p : vector<8xi1>, !llvm.ptr
  llvm.return %a : i32
}
