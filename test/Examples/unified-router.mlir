// The README's main job: the shipped example fuses into one moe.route.
// RUN: usmoe-opt %usmoe_src_root/examples/unified-router.mlir -moe-fuse-routing -canonicalize | FileCheck %s

// CHECK-LABEL: func.func @router
// CHECK-NOT: moe.unified_score
// CHECK: %[[G:.*]], %[[M:.*]] = moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %{{.*}}
// CHECK: moe.plan %[[G]], %[[M]]
