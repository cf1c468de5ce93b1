// Without a usable toolkit the pipeline stops with a clear message instead of
// emitting PTX with unresolved libdevice calls.
// RUN: not usmoe-opt %s -usmoe-to-nvvm=cuda-root=%t/none 2>&1 | FileCheck %s
// RUN: mkdir -p %t/half/nvvm/libdevice && touch %t/half/nvvm/libdevice/libdevice.10.bc
// RUN: not usmoe-opt %s -usmoe-to-nvvm="cuda-root=%t/half format=bin" 2>&1 | FileCheck %s --check-prefix=PTXAS

// CHECK: error: the CUDA toolkit is not usable: libdevice not found at '{{.*}}none/nvvm/libdevice/libdevice.10.bc'
// PTXAS: error: the CUDA toolkit is not usable: ptxas not found at '{{.*}}half/bin/ptxas'
func.func @f(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %g, %m = moe.route #moe.token<k = 1> %l : tensor<?x?x8xf32>
  return %g : tensor<?x?x8xf32>
}
