// A budget that only the run time can check (dynamic T) aborts with a clear
// message instead of reading out of bounds (stdbuf: the message is written
// to stdout, which abort() does not flush).
// RUN: usmoe-opt %s -usmoe-to-cpu | not --crash stdbuf -o0 %run_cpu 2>&1 | FileCheck %s

// CHECK: moe: unified budget n exceeds T * E of the input
func.func @main() {
  %cst = arith.constant dense<1.0> : tensor<1x2x4xf32>
  %l = tensor.cast %cst : tensor<1x2x4xf32> to tensor<?x?x4xf32>
  %g, %m = moe.route #moe.unified<n = 9> %l : tensor<?x?x4xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x4xf32>
  %ob = bufferization.to_buffer %o : tensor<5xi32> to memref<5xi32>
  %ou = memref.cast %ob : memref<5xi32> to memref<*xi32>
  call @printMemrefI32(%ou) : (memref<*xi32>) -> ()
  return
}
func.func private @printMemrefI32(memref<*xi32>)
