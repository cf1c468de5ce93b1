// Edge cases of the spec with E = 4: single token, empty and full budgets,
// all-equal logits, NaN and -inf rows, an empty sequence.
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// The parallel loops on OpenMP threads give the same output.
// RUN: %if openmp %{ usmoe-opt %s -usmoe-to-cpu=openmp | %run_openmp | FileCheck %s %}

func.func private @printMemrefF32(memref<*xf32>)
func.func private @printMemrefI32(memref<*xi32>)

func.func @print_gates(%t: tensor<?x?x4xf32>) {
  %m = bufferization.to_buffer %t : tensor<?x?x4xf32> to memref<?x?x4xf32>
  %u = memref.cast %m : memref<?x?x4xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}
/// Prints expert_offsets, then token_ids (only the size of an empty one:
/// the runtime printer shows a stray element for size 0).
func.func @print_plan(%g: tensor<?x?x4xf32>, %m: tensor<?x?x4xi1>) {
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x4xf32>
  %ob = bufferization.to_buffer %o : tensor<5xi32> to memref<5xi32>
  %ou = memref.cast %ob : memref<5xi32> to memref<*xi32>
  call @printMemrefI32(%ou) : (memref<*xi32>) -> ()
  %ib = bufferization.to_buffer %i : tensor<?xi32> to memref<?xi32>
  %iu = memref.cast %ib : memref<?xi32> to memref<*xi32>
  call @printMemrefI32(%iu) : (memref<*xi32>) -> ()
  return
}

func.func @main() {
  %nan = arith.constant 0x7FC00000 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c1f = arith.constant 1.0 : f32
  %c2f = arith.constant 2.0 : f32

  // --- Empty budget (N = 0) and full budget (N = T * E).
  %a = arith.constant dense<[[[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]]> : tensor<1x2x4xf32>
  %al = tensor.cast %a : tensor<1x2x4xf32> to tensor<?x?x4xf32>
  // CHECK: sizes = [5]
  // CHECK-NEXT: [0,  0,  0,  0,  0]
  // CHECK: sizes = [0]
  %g0, %m0 = moe.route #moe.unified<n = 0> %al : tensor<?x?x4xf32>
  call @print_plan(%g0, %m0) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  // CHECK: [0,  2,  4,  6,  8]
  // CHECK: [0,  1,  0,  1,  0,  1,  0,  1]
  %g1, %m1 = moe.route #moe.unified<n = 8> %al : tensor<?x?x4xf32>
  call @print_plan(%g1, %m1) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // --- All-equal logits: every tie goes to the lower index.
  %eq = arith.constant dense<0.5> : tensor<1x2x4xf32>
  %el = tensor.cast %eq : tensor<1x2x4xf32> to tensor<?x?x4xf32>
  // Token Choice k=2: experts {0, 1} for both tokens, gates 0.25.
  // CHECK: {{\[\[\[}}0.25, 0.25, 0, 0],
  // CHECK-NEXT: [0.25, 0.25, 0, 0]]]
  %tg, %tm = moe.route #moe.token<k = 2> %el : tensor<?x?x4xf32>
  call @print_gates(%tg) : (tensor<?x?x4xf32>) -> ()
  // Unified N=3: flat indices 0, 1, 2, all of token 0.
  // CHECK: [0,  1,  2,  3,  3]
  // CHECK: [0,  0,  0]
  %ug, %um = moe.route #moe.unified<n = 3> %el : tensor<?x?x4xf32>
  call @print_plan(%ug, %um) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  // Expert Choice C=1: every expert takes token 0.
  // CHECK: [0,  1,  2,  3,  4]
  // CHECK: [0,  0,  0,  0]
  %xg, %xm = moe.route #moe.expert<capacity = 1> %el : tensor<?x?x4xf32>
  call @print_plan(%xg, %xm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()

  // --- NaN counts as -inf; rows of only NaN / -inf give P = 0, never NaN.
  %s = tensor.from_elements %nan, %c1f, %nan, %c2f,
                            %nan, %nan, %nan, %nan,
                            %ninf, %ninf, %ninf, %ninf : tensor<1x3x4xf32>
  %sl = tensor.cast %s : tensor<1x3x4xf32> to tensor<?x?x4xf32>
  // CHECK: {{\[\[\[}}0, 0.268941, 0, 0.731059],
  // CHECK-NEXT: [0, 0, 0, 0],
  // CHECK-NEXT: [0, 0, 0, 0]]]
  %sp = moe.token_softmax %sl : tensor<?x?x4xf32>
  call @print_gates(%sp) : (tensor<?x?x4xf32>) -> ()
  // Token Choice k=2 still selects two experts per token (ties: 0 and 1).
  // CHECK: [0,  2,  5,  5,  6]
  // CHECK: [1,  2,  0,  1,  2,  0]
  %sg, %sm = moe.route #moe.token<k = 2, renormalize> %sl : tensor<?x?x4xf32>
  call @print_plan(%sg, %sm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  // Unified with sigmoid: F(-inf) = 0, so the dead rows score 0 everywhere;
  // U = 0.5 * P + 0.5 * (2/4) * sigmoid(L) elsewhere.
  // CHECK: {{\[\[\[}}0, 0.317235, 0, 0.585729],
  // CHECK-NEXT: [0, 0, 0, 0],
  // CHECK-NEXT: [0, 0, 0, 0]]]
  %vg, %vm = moe.route #moe.unified<n = 2> %sl : tensor<?x?x4xf32>
  call @print_gates(%vg) : (tensor<?x?x4xf32>) -> ()

  // --- An empty sequence (T = 0) routes to an empty plan.
  %z = tensor.empty() : tensor<1x0x4xf32>
  %zl = tensor.cast %z : tensor<1x0x4xf32> to tensor<?x?x4xf32>
  // CHECK: [0,  0,  0,  0,  0]
  // CHECK: sizes = [0]
  %zg, %zm = moe.route #moe.unified<n = 5> %zl : tensor<?x?x4xf32>
  call @print_plan(%zg, %zm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  // CHECK: [0,  0,  0,  0,  0]
  // CHECK: sizes = [0]
  %zxg, %zxm = moe.route #moe.expert<capacity_factor = 1.0, k = 2> %zl : tensor<?x?x4xf32>
  call @print_plan(%zxg, %zxm) : (tensor<?x?x4xf32>, tensor<?x?x4xi1>) -> ()
  return
}
