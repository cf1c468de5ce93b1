// The cost model of a whole bf16 MoE layer (Token Choice k = 2, Mixtral's
// D = 4096, F = 14336, E = 8) at T = 4096, M = 8192: the expert GEMMs carry
// their FLOPs (M * 4 * D * F and M * 2 * D * F), are bound by them at the
// tensor-core peak, and the floor is the larger of the HBM and compute
// floors. D, F and E come from the kernels' types. Row tiles:
// min(ceildiv(8192, 64) + 8, 8192) = 136; column tiles 224 (F) and 64 (D);
// groups of 16 row tiles: min(9 + 8, 136) = 17 weight reads per GEMM.
// RUN: usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu -usmoe-gpu-cost-report="shape=B=1,T=4096,M=8192" -o /dev/null | FileCheck %s
// RUN: not usmoe-opt %s -moe-fuse-routing -convert-moe-to-gpu "-usmoe-gpu-cost-report=shape=B=1,T=4096,M=8192 tensor-tflops=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK: kernel launches grid block MB read MB written GFLOP G instr est. us
// The dispatch is gathered by the first GEMM (it reads the M plan rows'
// token ids): no dispatch kernel.
// CHECK: plan_1_fill
// CHECK-NEXT: expert_gate_up_2 1 30464 128 4470.079 234.881 1924.145
// CHECK-NEXT: expert_down_2 1 8704 128 2466.251 134.218 962.073
// CHECK-NEXT: combine_3 1 4096 256
// CHECK: compute floor (989 tensor TFLOPS): 2886.218 GFLOP = 2.92e+03 us
// CHECK-NEXT: HBM floor (operands read once, results written once): 3523.576 MB

// BAD: error: usmoe-gpu-cost-report: bandwidth-gbs, sms, tensor-tflops and tera-instructions must be positive, launch-us non-negative

func.func @layer(%logits: tensor<1x?x8xbf16>, %hidden: tensor<?x4096xbf16>, %init: tensor<?x4096xbf16>,
                 %w1: tensor<8x4096x14336xbf16>, %w3: tensor<8x4096x14336xbf16>,
                 %w2: tensor<8x14336x4096xbf16>) -> tensor<?x4096xbf16> {
  %gates, %mask = moe.route #moe.token<k = 2> %logits : tensor<1x?x8xbf16>
  %offsets, %ids, %weights = moe.plan %gates, %mask : tensor<1x?x8xf32>
  %x = moe.dispatch %hidden, %ids : tensor<?x4096xbf16>, tensor<?xi32>
  %h = moe.expert_ffn %x, %offsets, %w1, %w3, %w2 : tensor<?x4096xbf16>, tensor<9xi32>, tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>
  %y = moe.combine %h, %ids, %weights into %init offsets %offsets : tensor<?x4096xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x4096xbf16>, tensor<9xi32>
  return %y : tensor<?x4096xbf16>
}
