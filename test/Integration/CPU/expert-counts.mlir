// Expert counts that are not powers of two, E = 1, and E = 384.
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// The parallel loops on OpenMP threads give the same output.
// RUN: %if openmp %{ usmoe-opt %s -usmoe-to-cpu=openmp | %run_openmp | FileCheck %s %}

func.func private @printMemrefI32(memref<*xi32>)
func.func private @printMemrefF32(memref<*xf32>)

func.func @print_ids(%t: tensor<?x?xi32>) {
  %m = bufferization.to_buffer %t : tensor<?x?xi32> to memref<?x?xi32>
  %u = memref.cast %m : memref<?x?xi32> to memref<*xi32>
  call @printMemrefI32(%u) : (memref<*xi32>) -> ()
  return
}

func.func @main() {
  // --- E = 6, Token Choice k = 3 and Unified n = 4 over T = 2.
  %a = arith.constant dense<[[[0.1, 0.9, 0.3, 0.8, 0.2, 0.7],
                              [1.5, -1.0, 0.0, 2.5, 0.4, 0.4]]]> : tensor<1x2x6xf32>
  %al = tensor.cast %a : tensor<1x2x6xf32> to tensor<?x?x6xf32>
  // CHECK: {{\[\[}}1,   3,   5],
  // CHECK-NEXT: [3,   0,   4]]
  %tg, %tm = moe.route #moe.token<k = 3> %al : tensor<?x?x6xf32>
  %ti, %tw = moe.topk_list %tg, %tm k = 3 : tensor<?x?x6xf32>
  %tic = tensor.cast %ti : tensor<?x3xi32> to tensor<?x?xi32>
  call @print_ids(%tic) : (tensor<?x?xi32>) -> ()
  // Unified n = 4 (alpha = 0.5): token 1 takes 3 and 0, token 0 takes 1 and 3.
  // CHECK: {{\[\[}}1,   3,   -1,   -1],
  // CHECK-NEXT: [3,   0,   -1,   -1]]
  %ug, %um = moe.route #moe.unified<n = 4> %al : tensor<?x?x6xf32>
  %ui, %uw = moe.topk_list %ug, %um k = 4 : tensor<?x?x6xf32>
  %uic = tensor.cast %ui : tensor<?x4xi32> to tensor<?x?xi32>
  call @print_ids(%uic) : (tensor<?x?xi32>) -> ()

  // --- E = 1: every token takes the only expert with gate 1.
  %one = arith.constant dense<[[[-3.0], [0.0], [7.0]]]> : tensor<1x3x1xf32>
  %ol = tensor.cast %one : tensor<1x3x1xf32> to tensor<?x?x1xf32>
  %og, %om = moe.route #moe.token<k = 1> %ol : tensor<?x?x1xf32>
  %ogb = bufferization.to_buffer %og : tensor<?x?x1xf32> to memref<?x?x1xf32>
  %ogu = memref.cast %ogb : memref<?x?x1xf32> to memref<*xf32>
  // CHECK: {{\[\[\[}}1],
  // CHECK-NEXT: [1],
  // CHECK-NEXT: [1]]]
  call @printMemrefF32(%ogu) : (memref<*xf32>) -> ()

  // --- E = 384, k = 8: L[t, e] = -((37 e + 11 t) mod 384), so the top 8 of
  // token t are the experts with residues 0..7, best first.
  %c2 = arith.constant 2 : index
  %big = tensor.generate %c2 {
  ^bb0(%b: index, %t: index, %e: index):
    %c37 = arith.constant 37 : index
    %c11 = arith.constant 11 : index
    %c384 = arith.constant 384 : index
    %x = arith.muli %e, %c37 : index
    %y = arith.muli %t, %c11 : index
    %s = arith.addi %x, %y : index
    %r = arith.remui %s, %c384 : index
    %ri = arith.index_cast %r : index to i64
    %rf = arith.sitofp %ri : i64 to f32
    %neg = arith.negf %rf : f32
    tensor.yield %neg : f32
  } : tensor<1x?x384xf32>
  %bg, %bm = moe.route #moe.token<k = 8> %big : tensor<1x?x384xf32>
  %bi, %bw = moe.topk_list %bg, %bm k = 8 : tensor<1x?x384xf32>
  %bic = tensor.cast %bi : tensor<?x8xi32> to tensor<?x?xi32>
  // CHECK: {{\[\[}}0,   301,   218,   135,   52,   353,   270,   187],
  // CHECK-NEXT: [145,   62,   363,   280,   197,   114,   31,   332]]
  call @print_ids(%bic) : (tensor<?x?xi32>) -> ()
  // The unified router over the same logits keeps 16 pairs per sequence.
  %vg, %vm = moe.route #moe.unified<k = 8.0> %big : tensor<1x?x384xf32>
  %vo, %vi, %vw = moe.plan %vg, %vm : tensor<1x?x384xf32>
  %vib = bufferization.to_buffer %vi : tensor<?xi32> to memref<?xi32>
  %viu = memref.cast %vib : memref<?xi32> to memref<*xi32>
  // CHECK: sizes = [16]
  call @printMemrefI32(%viu) : (memref<*xi32>) -> ()
  return
}
