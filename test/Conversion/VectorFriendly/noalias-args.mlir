// RUN: usmoe-opt %s -usmoe-noalias-args -split-input-file -verify-diagnostics | FileCheck %s

// The listed parameters become noalias and the list goes away.
// CHECK-LABEL: llvm.func internal @body
// CHECK-SAME: (%{{.*}}: i64, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr {llvm.noalias}, %{{.*}}: !llvm.ptr)
// CHECK-NOT: usmoe.noalias_args
llvm.func internal @body(%n: i64, %a: !llvm.ptr, %b: !llvm.ptr, %c: !llvm.ptr) attributes {usmoe.noalias_args = array<i64: 2>} {
  llvm.return
}

// -----

// A position that is not a pointer parameter is an error, not a guess.
// expected-error @below {{usmoe.noalias_args lists 0, which is not a pointer parameter}}
llvm.func internal @not_a_pointer(%n: i64, %a: !llvm.ptr) attributes {usmoe.noalias_args = array<i64: 0>} {
  llvm.return
}

// -----

// expected-error @below {{usmoe.noalias_args lists 7, which is not a pointer parameter}}
llvm.func internal @out_of_range(%n: i64, %a: !llvm.ptr) attributes {usmoe.noalias_args = array<i64: 7>} {
  llvm.return
}
