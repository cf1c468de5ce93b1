// RUN: usmoe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the moe dialect.

func.func @dynamic_experts(%l: tensor<1x4x?xf32>) {
  // expected-error @+1 {{expects a static number of experts (dim 2 of logits)}}
  %p = moe.token_softmax %l : tensor<1x4x?xf32>
  return
}

// -----

func.func @zero_experts(%l: tensor<1x4x0xf32>) {
  // expected-error @+1 {{expects at least one expert}}
  %f = moe.expert_score sigmoid %l : tensor<1x4x0xf32>
  return
}

// -----

func.func @integer_logits(%l: tensor<1x4x8xi32>) {
  // expected-error @+1 {{operand #0 must be 3D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %p = moe.token_softmax %l : tensor<1x4x8xi32>
  return
}

// -----

func.func @rank2_logits(%l: tensor<4x8xf32>) {
  // expected-error @+1 {{expects a rank-3 [B, T, E] tensor}}
  %p = moe.token_softmax %l : tensor<4x8xf32>
  return
}

// -----

func.func @score_not_f32(%l: tensor<1x4x8xf16>) {
  // expected-error @+1 {{result #0 must be 3D tensor of 32-bit float values}}
  %p = "moe.token_softmax"(%l) : (tensor<1x4x8xf16>) -> tensor<1x4x8xf16>
  return
}

// -----

func.func @score_shape_mismatch(%l: tensor<1x4x8xf16>) {
  // expected-error @+2 {{inferred type(s) 'tensor<1x4x8xf32>' are incompatible with return type(s) of operation 'tensor<1x5x8xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %p = "moe.token_softmax"(%l) : (tensor<1x4x8xf16>) -> tensor<1x5x8xf32>
  return
}

// -----

func.func @alpha_above_one(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects alpha in [0, 1], got 1.5}}
  %u = moe.unified_score %l alpha = 1.5 expert_score = sigmoid : tensor<1x4x8xf32>
  return
}

// -----

func.func @alpha_nan(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects alpha in [0, 1], got nan}}
  %u = moe.unified_score %l alpha = 0x7FF8000000000000 expert_score = sigmoid : tensor<1x4x8xf32>
  return
}

// -----

func.func @topk_zero(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{attribute 'k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %g, %m = moe.select_topk %s k = 0 : tensor<1x4x8xf32>
  return
}

// -----

func.func @topk_above_experts(%s: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects k in [1, 8] (the number of experts), got 9}}
  %g, %m = moe.select_topk %s k = 9 : tensor<?x?x8xf32>
  return
}

// -----

func.func @topk_huge(%s: tensor<?x?x8xf32>) {
  // expected-error @+1 {{integer constant out of range for attribute}}
  %g, %m = moe.select_topk %s k = 99999999999999999999999 : tensor<?x?x8xf32>
  return
}

// -----

func.func @expert_choice_no_capacity(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'capacity' and 'capacity_factor'}}
  %g, %m = moe.select_expert_choice %s : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_both(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'capacity' and 'capacity_factor'}}
  %g, %m = moe.select_expert_choice %s capacity = 2 capacity_factor = 1.0 k = 2 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_zero_capacity(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects capacity >= 1, got 0}}
  %g, %m = moe.select_expert_choice %s capacity = 0 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_capacity_above_tokens(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects capacity <= 4 (the number of tokens per sequence), got 5}}
  %g, %m = moe.select_expert_choice %s capacity = 5 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_k_without_factor(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects 'k' only together with 'capacity_factor'}}
  %g, %m = moe.select_expert_choice %s capacity = 2 k = 2 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_negative_factor(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a finite capacity_factor > 0, got -1}}
  %g, %m = moe.select_expert_choice %s capacity_factor = -1.0 k = 2 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_factor_without_k(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects 'k' (experts per token) with 'capacity_factor'}}
  %g, %m = moe.select_expert_choice %s capacity_factor = 1.0 : tensor<1x4x8xf32>
  return
}

// -----

func.func @expert_choice_factor_k_above_experts(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k in [1, 8] (the number of experts), got 10}}
  %g, %m = moe.select_expert_choice %s capacity_factor = 1.0 k = 10 : tensor<1x4x8xf32>
  return
}

// -----

func.func @global_no_budget(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'n' and 'k'}}
  %g, %m = moe.select_global %s : tensor<1x4x8xf32>
  return
}

// -----

func.func @global_both_budgets(%s: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'n' and 'k'}}
  %g, %m = moe.select_global %s n = 2 k = 1.0 : tensor<1x4x8xf32>
  return
}

// -----

func.func @global_negative_n(%s: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects n >= 0, got -3}}
  %g, %m = moe.select_global %s n = -3 : tensor<?x?x8xf32>
  return
}

// -----

func.func @global_n_above_pairs(%s: tensor<2x4x8xf32>) {
  // expected-error @+1 {{expects n <= T * E = 32, got 33}}
  %g, %m = moe.select_global %s n = 33 : tensor<2x4x8xf32>
  return
}

// -----

func.func @global_k_above_experts(%s: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects k in [0, 8] (experts per token), got 8.5}}
  %g, %m = moe.select_global %s k = 8.5 : tensor<?x?x8xf32>
  return
}

// -----

func.func @global_k_infinite(%s: tensor<?x?x8xf32>) {
  // expected-error @+1 {{expects k in [0, 8] (experts per token), got inf}}
  %g, %m = moe.select_global %s k = 0x7FF0000000000000 : tensor<?x?x8xf32>
  return
}

// -----

func.func @router_option_twice(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{router option 'k' is given twice}}
  %g, %m = moe.route #moe.token<k = 2, k = 3> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_option_unknown(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{unknown router option 'topk'}}
  %g, %m = moe.route #moe.token<topk = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_expert_score_unknown(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects expert_score sigmoid or softmax_tokens, got 'tanh'}}
  %g, %m = moe.route #moe.unified<k = 1.0, expert_score = tanh> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_k_not_a_number(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a number for 'k', got "two"}}
  %g, %m = moe.route #moe.token<k = "two"> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_k_below_int64(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k >= 1, got -9223372036854775808}}
  %g, %m = moe.route #moe.token<k = -9223372036854775808> %l : tensor<1x4x8xf32>
  return
}

// -----

// A k beyond int64 saturates (it was cast, undefined behaviour the fuzzer
// found) and the range rule names the saturated value.
func.func @router_k_beyond_int64(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k in [1, 8] (the number of experts), got 9223372036854775807}}
  %g, %m = moe.route #moe.token<k = 9999999999999999999999999999999999999999999999999999999999999999999999991.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_k_is_a_bool(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a number for 'k', got true}}
  %g, %m = moe.route #moe.token<k = true> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_capacity_not_an_integer(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected integer value}}
  %g, %m = moe.route #moe.expert<capacity = 1.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_huge_k(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k in [0, 8] (experts per token), got 1e+300}}
  %g, %m = moe.route #moe.unified<k = 1.0e300> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_negative_capacity_factor(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a finite capacity_factor > 0, got -1}}
  %g, %m = moe.route #moe.expert<k = 2, capacity_factor = -1> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_zero_softcap(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a finite softcap > 0, got 0}}
  %g, %m = moe.route #moe.unified<k = 1.0, softcap = 0.0> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @router_negative_scale(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects a finite routed_scaling_factor > 0, got -2.5}}
  %g, %m = moe.route #moe.token<k = 2, routed_scaling_factor = -2.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_without_topk_group(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects 'n_group' and 'topk_group' together}}
  %g, %m = moe.route #moe.token<k = 2, n_group = 4> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_topk_group_above_n_group(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects topk_group in [1, 4] (n_group), got 5}}
  %g, %m = moe.route #moe.token<k = 2, n_group = 4, topk_group = 5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_not_dividing_experts(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects the number of experts (8) to be a multiple of n_group (3)}}
  %g, %m = moe.route #moe.token<k = 2, n_group = 3, topk_group = 1> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_too_few_experts_kept(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k <= topk_group * E / n_group = 4, got 5}}
  %g, %m = moe.route #moe.token<k = 5, n_group = 4, topk_group = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_on_expert_choice(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'n_group' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2, n_group = 4, topk_group = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @groups_on_unified(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'topk_group' does not apply to unified routing}}
  %g, %m = moe.route #moe.unified<k = 1.0, topk_group = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_without_k(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{token routing expects 'k'}}
  %g, %m = moe.route #moe.token<> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_fractional_k(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{token routing expects an integer k, got 1.5}}
  %g, %m = moe.route #moe.token<k = 1.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_k_above_experts(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects k in [1, 8] (the number of experts), got 12}}
  %g, %m = moe.route #moe.token<k = 12> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_with_alpha(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'alpha' does not apply to token routing}}
  %g, %m = moe.route #moe.token<k = 2, alpha = 0.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_with_n(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'n' does not apply to token routing}}
  %g, %m = moe.route #moe.token<k = 2, n = 3> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_with_capacity(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'capacity' does not apply to token routing}}
  %g, %m = moe.route #moe.token<k = 2, capacity = 3> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_with_factor(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'capacity_factor' does not apply to token routing}}
  %g, %m = moe.route #moe.token<k = 2, capacity_factor = 1.0> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_token_with_expert_score(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'expert_score' does not apply to token routing}}
  %g, %m = moe.route #moe.token<k = 2, expert_score = sigmoid> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_renormalize(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'renormalize' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2, renormalize> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_with_n(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'n' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2, n = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_with_alpha(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'alpha' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2, alpha = 0.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_with_expert_score(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'expert_score' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2, expert_score = sigmoid> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_fractional_k(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expert routing expects an integer k, got 2.5}}
  %g, %m = moe.route #moe.expert<capacity_factor = 1.0, k = 2.5> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_no_capacity(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'capacity' and 'capacity_factor'}}
  %g, %m = moe.route #moe.expert<> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_expert_capacity_above_tokens(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects capacity <= 4 (the number of tokens per sequence), got 7}}
  %g, %m = moe.route #moe.expert<capacity = 7> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_with_capacity(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'capacity' does not apply to unified routing}}
  %g, %m = moe.route #moe.unified<n = 2, capacity = 2> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_with_factor(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'capacity_factor' does not apply to unified routing}}
  %g, %m = moe.route #moe.unified<n = 2, capacity_factor = 1.0> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_renormalize(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{'renormalize' does not apply to unified routing}}
  %g, %m = moe.route #moe.unified<n = 2, renormalize> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_alpha(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects alpha in [0, 1], got -0.25}}
  %g, %m = moe.route #moe.unified<n = 2, alpha = -0.25> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_no_budget(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects exactly one of 'n' and 'k'}}
  %g, %m = moe.route #moe.unified<> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @route_unified_n_above_pairs(%l: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expects n <= T * E = 32, got 40}}
  %g, %m = moe.route #moe.unified<n = 40> %l : tensor<1x4x8xf32>
  return
}

// -----

func.func @plan_mask_shape(%g: tensor<1x4x8xf32>, %m: tensor<1x5x8xi1>) {
  // expected-error @+1 {{failed to verify that mask has the shape of gates}}
  %o, %i, %w = "moe.plan"(%g, %m) : (tensor<1x4x8xf32>, tensor<1x5x8xi1>) -> (tensor<9xi32>, tensor<?xi32>, tensor<?xf32>)
  return
}

// -----

func.func @plan_dynamic_experts(%g: tensor<1x4x?xf32>, %m: tensor<1x4x?xi1>) {
  // expected-error @+1 {{expects a static number of experts (dim 2 of gates)}}
  %o, %i, %w = moe.plan %g, %m : tensor<1x4x?xf32>
  return
}

// -----

func.func @topk_list_k(%g: tensor<1x4x8xf32>, %m: tensor<1x4x8xi1>) {
  // expected-error @+1 {{expects k in [1, 8] (the number of experts), got 9}}
  %i, %w = moe.topk_list %g, %m k = 9 : tensor<1x4x8xf32>
  return
}

// -----

func.func @dispatch_i64_ids(%h: tensor<?x16xf32>, %ids: tensor<?xi64>) {
  // expected-error @+1 {{operand #1 must be 1D tensor of 32-bit signless integer values}}
  %x = moe.dispatch %h, %ids : tensor<?x16xf32>, tensor<?xi64>
  return
}

// -----

func.func @ffn_element_type(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf16>,
                            %w3: tensor<4x16x32xf16>, %w2: tensor<4x32x16xf16>) {
  // expected-error @+1 {{expects expert weights of the input's element type 'f32'}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf16>, tensor<4x16x32xf16>, tensor<4x32x16xf16>
  return
}

// -----

func.func @ffn_w1_w3(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
                     %w3: tensor<4x16x64xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expects w1 and w3 of the same shape [E, D, F]}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x64xf32>, tensor<4x32x16xf32>
  return
}

// -----

func.func @ffn_w2(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
                  %w3: tensor<4x16x32xf32>, %w2: tensor<4x16x32xf32>) {
  // expected-error @+1 {{expects w2 of shape [E, F, D] for w1 of shape [E, D, F]}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>
  return
}

// -----

func.func @ffn_hidden(%x: tensor<?x8xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
                      %w3: tensor<4x16x32xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expects input rows of size D = 16}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x8xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return
}

// -----

func.func @ffn_out_in_w2(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x32x16xf32>,
                         %w3: tensor<4x32x16xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expects w2 of shape [E, D, F] for w1 of shape [E, F, D] (layout out_in)}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 layout out_in : tensor<?x16xf32>, tensor<5xi32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>
  return
}

// -----

// D is the last dimension of W1 in out_in: in_out weights fail as rows of 16.
func.func @ffn_out_in_hidden(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
                             %w3: tensor<4x16x32xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expects input rows of size D = 32 (layout out_in)}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 layout out_in : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return
}

// -----

func.func @ffn_bad_layout(%x: tensor<?x16xf32>, %o: tensor<5xi32>, %w1: tensor<4x16x32xf32>,
                          %w3: tensor<4x16x32xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expected}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 layout column_major : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return
}

// -----

func.func @ffn_offsets(%x: tensor<?x16xf32>, %o: tensor<4xi32>, %w1: tensor<4x16x32xf32>,
                       %w3: tensor<4x16x32xf32>, %w2: tensor<4x32x16xf32>) {
  // expected-error @+1 {{expects 5 expert offsets (E + 1)}}
  %y = moe.expert_ffn %x, %o, %w1, %w3, %w2 : tensor<?x16xf32>, tensor<4xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return
}

// -----

func.func @combine_element_type(%x: tensor<?x16xf16>, %i: tensor<?xi32>, %w: tensor<?xf32>, %init: tensor<?x16xf32>) {
  // expected-error @+1 {{expects f32 expert outputs (or init's element type), got 'tensor<?x16xf16>' and 'tensor<?x16xf32>'}}
  %y = moe.combine %x, %i, %w into %init : tensor<?x16xf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x16xf32>
  return
}

// -----

func.func @combine_hidden(%x: tensor<?x16xf32>, %i: tensor<?xi32>, %w: tensor<?xf32>, %init: tensor<?x32xf32>) {
  // expected-error @+1 {{expects expert outputs and init with the same hidden size}}
  %y = moe.combine %x, %i, %w into %init : tensor<?x16xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xf32>
  return
}

// -----

func.func @combine_rows(%x: tensor<6x16xf32>, %i: tensor<5xi32>, %w: tensor<6xf32>, %init: tensor<?x16xf32>) {
  // expected-error @+1 {{expects one token id and one weight per expert output row (6)}}
  %y = moe.combine %x, %i, %w into %init : tensor<6x16xf32>, tensor<5xi32>, tensor<6xf32> into tensor<?x16xf32>
  return
}

// -----

func.func @generic_plan_scalar(%g: f32) {
  // expected-error @+1 {{operand #0 must be 3D tensor of 32-bit float values, but got 'f32'}}
  %o, %i, %w = "moe.plan"(%g, %g) : (f32, f32) -> (tensor<9xi32>, tensor<?xi32>, tensor<?xf32>)
  return
}

// -----

func.func @generic_combine_arity(%g: tensor<?x8xf32>) {
  // expected-error @+1 {{expected 4 or more operands, but found 1}}
  %o = "moe.combine"(%g) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @generic_select_without_k(%g: tensor<?x?x8xf32>) {
  // expected-error @+1 {{requires attribute 'k'}}
  %o, %i = "moe.select_topk"(%g) : (tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xi1>)
  return
}

// -----

func.func @route_bias_unified(%l: tensor<1x4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'bias' does not apply to unified routing}}
  %g, %m = moe.route #moe.unified<n = 2> %l bias %b : tensor<1x4x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @route_bias_expert(%l: tensor<1x4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'bias' does not apply to expert routing}}
  %g, %m = moe.route #moe.expert<capacity = 2> %l bias %b : tensor<1x4x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @route_bias_size(%l: tensor<1x4x8xf32>, %b: tensor<6xf32>) {
  // expected-error @+1 {{expects one bias per expert (8), got 6}}
  %g, %m = moe.route #moe.token<k = 2> %l bias %b : tensor<1x4x8xf32>, tensor<6xf32>
  return
}

// -----

func.func @select_given_weights_mismatch(%ids: tensor<4x2xi32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{expects one weight per expert id, got 'tensor<4x2xi32>' and 'tensor<4x3xf32>'}}
  %g, %m = moe.select_given %ids, %w experts = 8 : tensor<4x2xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @select_given_k_above_experts(%ids: tensor<4x9xi32>, %w: tensor<4x9xf32>) {
  // expected-error @+1 {{expects at most 8 experts per row (no expert twice), got 9}}
  %g, %m = moe.select_given %ids, %w experts = 8 : tensor<4x9xi32>, tensor<4x9xf32>
  return
}

// -----

func.func @select_given_no_experts(%ids: tensor<4x1xi32>, %w: tensor<4x1xf32>) {
  // expected-error @+1 {{attribute 'experts' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %g, %m = moe.select_given %ids, %w experts = 0 : tensor<4x1xi32>, tensor<4x1xf32>
  return
}

// -----

func.func @packed_needs_one_batch(%l: tensor<2x?x8xf32>, %cu: tensor<?xi32>) {
  // expected-error @+1 {{expects one packed batch [1, N, E] of logits with seqlens, got 'tensor<2x?x8xf32>'}}
  %g, %m = moe.route #moe.unified<k = 1.0> %l seqlens %cu : tensor<?xi32> : tensor<2x?x8xf32>
  return
}

// -----

// With seqlens, N is not T: n = 40 > N * E is no error (checked per
// sequence at run time).
func.func @packed_budget_is_per_sequence(%l: tensor<1x4x8xf32>, %cu: tensor<?xi32>) {
  // expected-error @+1 {{expects n <= T * E = 32, got 40}}
  %g, %m = moe.route #moe.unified<n = 40> %l : tensor<1x4x8xf32>
  %g2, %m2 = moe.route #moe.unified<n = 40> %l seqlens %cu : tensor<?xi32> : tensor<1x4x8xf32>
  return
}

// -----

// Shapes at the edge of int64: a diagnostic, never an overflow.
func.func @plan_experts_at_int64_max(%g: tensor<1x2x9223372036854775807xf32>, %m: tensor<1x2x9223372036854775807xi1>) {
  // expected-error @+1 {{expects E + 1 expert offsets to fit in int64, got E = 9223372036854775807}}
  %o, %i, %w = moe.plan %g, %m : tensor<1x2x9223372036854775807xf32>
  return
}

// -----

func.func @topk_list_rows_beyond_int64(%g: tensor<4611686018427387904x4x8xf32>, %m: tensor<4611686018427387904x4x8xi1>) {
  // expected-error @+1 {{expects B * T to fit in int64}}
  %i, %w = moe.topk_list %g, %m k = 2 : tensor<4611686018427387904x4x8xf32>
  return
}
