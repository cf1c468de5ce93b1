// The worked example of the spec (T=4, E=4, alpha=0.5, sigmoid), every mode,
// compiled for the CPU and run; T is dynamic in the IR.
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// The parallel loops on OpenMP threads give the same output.
// RUN: %if openmp %{ usmoe-opt %s -usmoe-to-cpu=openmp | %run_openmp | FileCheck %s %}

func.func private @printMemrefF32(memref<*xf32>)
func.func private @printMemrefI32(memref<*xi32>)

func.func @print_f32(%t: tensor<?x?x4xf32>) {
  %m = bufferization.to_buffer %t : tensor<?x?x4xf32> to memref<?x?x4xf32>
  %u = memref.cast %m : memref<?x?x4xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}
func.func @print_i32(%t: tensor<?xi32>) {
  %m = bufferization.to_buffer %t : tensor<?xi32> to memref<?xi32>
  %u = memref.cast %m : memref<?xi32> to memref<*xi32>
  call @printMemrefI32(%u) : (memref<*xi32>) -> ()
  return
}
func.func @print_plan(%g: tensor<?x?x4xf32>, %m: tensor<?x?x4xi1>) {
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x4xf32>
  %oc = tensor.cast %o : tensor<5xi32> to tensor<?xi32>
  call @print_i32(%oc) : (tensor<?xi32>) -> ()
  call @print_i32(%i) : (tensor<?xi32>) -> ()
  return
}

func.func @main() {
  %cst = arith.constant dense<[[[ 3.0, 1.0, 2.5,-1.0],
                                [ 0.2, 0.1, 0.0,-0.1],
                                [ 2.0, 2.2, 1.8, 0.5],
                                [-0.5, 0.0, 1.0, 2.0]]]> : tensor<1x4x4xf32>
  %l = tensor.cast %cst : tensor<1x4x4xf32> to tensor<?x?x4xf32>

  // P, the row softmax.
  // CHECK: sizes = [1, 4, 4]
  // CHECK-NEXT: {{\[\[\[}}0.568123, 0.0768871, 0.344584, 0.0104055],
  // CHECK-NEXT: [0.288651, 0.261183, 0.236328, 0.213838],
  // CHECK-NEXT: [0.306442, 0.374289, 0.250893, 0.0683764],
  // CHECK-NEXT: [0.0517788, 0.0853689, 0.232057, 0.630796]]]
  %p = moe.token_softmax %l : tensor<?x?x4xf32>
  call @print_f32(%p) : (tensor<?x?x4xf32>) -> ()

  // U, the unified score.
  // CHECK: sizes = [1, 4, 4]
  // CHECK-NEXT: {{\[\[\[}}0.522205, 0.221208, 0.403328, 0.0724381],
  // CHECK-NEXT: [0.281784, 0.261836, 0.243164, 0.225674],
  // CHECK-NEXT: [0.37342, 0.412207, 0.339984, 0.189803],
  // CHECK-NEXT: [0.120275, 0.167684, 0.298793, 0.535597]]]
  %u = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<?x?x4xf32>
  call @print_f32(%u) : (tensor<?x?x4xf32>) -> ()

  // Token Choice k=2, renormalized: t0 {0,2}, t1 {0,1}, t2 {0,1}, t3 {2,3}.
  // CHECK: sizes = [1, 4, 4]
  // CHECK-NEXT: {{\[\[\[}}0.622459, 0, 0.377541, 0],
  // CHECK-NEXT: [0.524979, 0.475021, 0, 0],
  // CHECK-NEXT: [0.450166, 0.549834, 0, 0],
  // CHECK-NEXT: [0, 0, 0.268941, 0.731059]]]
  // CHECK: [0,  3,  5,  7,  8]
  // CHECK: [0,  1,  2,  1,  2,  0,  3,  3]
  %tg, %tm = moe.select_topk %p k = 2 renormalize : tensor<?x?x4xf32>
  call @print_f32(%tg) : (tensor<?x?x4xf32>) -> ()
  call @print_plan(%tg, %tm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // Expert Choice C=2 on P: e0 <- {t0,t2}, e1 <- {t1,t2}, e2 <- {t0,t2},
  // e3 <- {t1,t3}.
  // CHECK: [0,  2,  4,  6,  8]
  // CHECK: [0,  2,  1,  2,  0,  2,  1,  3]
  %eg, %em = moe.select_expert_choice %p capacity = 2 : tensor<?x?x4xf32>
  call @print_plan(%eg, %em) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // Unified N=8, fused: t0 {0,2}, t1 {0}, t2 {0,1,2}, t3 {2,3}; gates = U.
  // CHECK: sizes = [1, 4, 4]
  // CHECK-NEXT: {{\[\[\[}}0.522205, 0, 0.403328, 0],
  // CHECK-NEXT: [0.281784, 0, 0, 0],
  // CHECK-NEXT: [0.37342, 0.412207, 0.339984, 0],
  // CHECK-NEXT: [0, 0, 0.298793, 0.535597]]]
  // CHECK: [0,  3,  4,  7,  8]
  // CHECK: [0,  1,  2,  2,  0,  2,  3,  3]
  %ug, %um = moe.route #moe.unified<n = 8, alpha = 0.5, expert_score = sigmoid> %l : tensor<?x?x4xf32>
  call @print_f32(%ug) : (tensor<?x?x4xf32>) -> ()
  call @print_plan(%ug, %um) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // The same through the unfused ops, with a fractional budget k = 2.
  // CHECK: [0,  3,  4,  7,  8]
  // CHECK: [0,  1,  2,  2,  0,  2,  3,  3]
  %u2 = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<?x?x4xf32>
  %sg, %sm = moe.select_global %u2 k = 2.0 : tensor<?x?x4xf32>
  call @print_plan(%sg, %sm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // Decode (T=1): Token Choice and Unified both pick {1, 3}.
  %dcst = arith.constant dense<[[[0.5, 2.0, -1.0, 1.0]]]> : tensor<1x1x4xf32>
  %dl = tensor.cast %dcst : tensor<1x1x4xf32> to tensor<?x?x4xf32>
  // CHECK: [0,  0,  1,  1,  2]
  // CHECK-NEXT: Unranked
  // CHECK-NEXT: [0,  0]
  %dg, %dm = moe.route #moe.token<k = 2> %dl : tensor<?x?x4xf32>
  call @print_plan(%dg, %dm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  // CHECK: sizes = [1, 1, 4]
  // CHECK-NEXT: {{\[\[\[}}0, 0.524929, 0, 0.294869]]]
  // CHECK: [0,  0,  1,  1,  2]
  %vg, %vm = moe.route #moe.unified<k = 2.0> %dl : tensor<?x?x4xf32>
  call @print_f32(%vg) : (tensor<?x?x4xf32>) -> ()
  call @print_plan(%vg, %vm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  return
}
