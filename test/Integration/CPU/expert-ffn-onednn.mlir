// moe.expert_ffn on oneDNN (expert-gemm=onednn, libusmoe_cpu_runtime.so)
// and on the generated loops print the same rows, for in_out weights and
// for a fused out_in gate/up tensor read through two views. E = 2 experts,
// D = 3, F = 2; rows 0-1 go to expert 0, row 2 to expert 1. Expected values
// from NumPy: silu(x W1) * (x W3) W2 per row.
// REQUIRES: onednn
// RUN: usmoe-opt %s -usmoe-to-cpu | %run_cpu | FileCheck %s
// RUN: usmoe-opt %s -usmoe-to-cpu=expert-gemm=onednn | %run_onednn | FileCheck %s

func.func private @printMemrefF32(memref<*xf32>)

func.func @print(%t: tensor<?x3xf32>) {
  %m = bufferization.to_buffer %t : tensor<?x3xf32> to memref<?x3xf32>
  %u = memref.cast %m : memref<?x3xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}

func.func @main() {
  %x0 = arith.constant dense<[[1.0, -2.0, 0.5], [0.0, 1.0, 1.0], [2.0, 0.5, -1.0]]> : tensor<3x3xf32>
  %x = tensor.cast %x0 : tensor<3x3xf32> to tensor<?x3xf32>
  %offsets = arith.constant dense<[0, 2, 3]> : tensor<3xi32>
  // in_out: W1, W3 [E, D, F], W2 [E, F, D].
  %w1 = arith.constant dense<[[[0.5, -1.0], [0.25, 0.5], [1.0, 0.0]],
                              [[-0.5, 1.0], [1.0, 1.0], [0.0, -0.25]]]> : tensor<2x3x2xf32>
  %w3 = arith.constant dense<[[[1.0, 0.5], [-0.5, 0.25], [0.0, 1.0]],
                              [[0.25, -1.0], [0.5, 0.5], [1.0, 0.0]]]> : tensor<2x3x2xf32>
  %w2 = arith.constant dense<[[[1.0, 0.0, -1.0], [0.5, 2.0, 0.25]],
                              [[-1.0, 0.5, 1.0], [0.0, 1.0, -0.5]]]> : tensor<2x2x3xf32>
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
      : tensor<?x3xf32>, tensor<3xi32>, tensor<2x3x2xf32>, tensor<2x3x2xf32>, tensor<2x2x3xf32>
  // CHECK:      {{\[}}[0.562858,   -0.238406,   -0.65226],
  // CHECK-NEXT:  [-0.291294,   0.778074,   0.583072],
  // CHECK-NEXT:  [-0.0471926,   -4.49974,   2.30886]]
  func.call @print(%y) : (tensor<?x3xf32>) -> ()

  // The same experts as one fused out_in gate/up [E, 2F, D] and W2 [E, D, F].
  %gate_up = arith.constant dense<[[[0.5, 0.25, 1.0], [-1.0, 0.5, 0.0], [1.0, -0.5, 0.0], [0.5, 0.25, 1.0]],
                                   [[-0.5, 1.0, 0.0], [1.0, 1.0, -0.25], [0.25, 0.5, 1.0], [-1.0, 0.5, 0.0]]]> : tensor<2x4x3xf32>
  %g = tensor.extract_slice %gate_up[0, 0, 0] [2, 2, 3] [1, 1, 1] : tensor<2x4x3xf32> to tensor<2x2x3xf32>
  %u = tensor.extract_slice %gate_up[0, 2, 0] [2, 2, 3] [1, 1, 1] : tensor<2x4x3xf32> to tensor<2x2x3xf32>
  %down = arith.constant dense<[[[1.0, 0.5], [0.0, 2.0], [-1.0, 0.25]],
                                [[-1.0, 0.0], [0.5, 1.0], [1.0, -0.5]]]> : tensor<2x3x2xf32>
  %z = moe.expert_ffn %x, %offsets, %g, %u, %down layout out_in
      : tensor<?x3xf32>, tensor<3xi32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>, tensor<2x3x2xf32>
  // CHECK:      {{\[}}[0.562858,   -0.238406,   -0.65226],
  // CHECK-NEXT:  [-0.291294,   0.778074,   0.583072],
  // CHECK-NEXT:  [-0.0471926,   -4.49974,   2.30886]]
  func.call @print(%z) : (tensor<?x3xf32>) -> ()
  return
}
