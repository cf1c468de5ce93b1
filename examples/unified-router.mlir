// A USMoE router as a model would write it: unified score, then a global
// top-N with 1.5 experts per token on average, then the expert-major plan.
// `scripts/run.sh` fuses it with:
//   usmoe-opt examples/unified-router.mlir -moe-fuse-routing -canonicalize
func.func @router(%logits: tensor<1x?x8xbf16>)
    -> (tensor<9xi32>, tensor<?xi32>, tensor<?xf32>) {
  %u = moe.unified_score %logits alpha = 0.5 expert_score = sigmoid
      : tensor<1x?x8xbf16>
  %gates, %mask = moe.select_global %u k = 1.5 : tensor<1x?x8xf32>
  %offsets, %token_ids, %weights = moe.plan %gates, %mask : tensor<1x?x8xf32>
  return %offsets, %token_ids, %weights
      : tensor<9xi32>, tensor<?xi32>, tensor<?xf32>
}
