// A CHECK-NOT before the first match of its prefix only checks the text
// before that match.
// CHECK-NOT: moe.
// CHECK: llvm.func
// -----
// CHECK: llvm.func
// CHECK-NOT: moe.
