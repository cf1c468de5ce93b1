"""usmoe.hf.patch on tiny Hugging Face MoE models built from configs with
random weights (nothing downloaded); needs transformers 5.x and PyTorch >=
2.4 (the venv tier)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(torch.library, "custom_op") or int(transformers.__version__.split(".")[0]) < 5:
    pytest.skip("needs PyTorch >= 2.4 and transformers >= 5", allow_module_level=True)

import usmoe.hf  # noqa: E402

COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=24, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)


def tiny(kind):
    torch.manual_seed(0)
    if kind == "olmoe":
        config = transformers.OlmoeConfig(num_experts=8, num_experts_per_tok=2,
                                          norm_topk_prob=False, **COMMON)
        model = transformers.OlmoeForCausalLM(config)
    elif kind == "qwen2_moe":
        config = transformers.Qwen2MoeConfig(num_experts=8, num_experts_per_tok=2,
                                             moe_intermediate_size=24,
                                             shared_expert_intermediate_size=16,
                                             norm_topk_prob=True, **COMMON)
        model = transformers.Qwen2MoeForCausalLM(config)
    elif kind == "qwen3_moe":
        config = transformers.Qwen3MoeConfig(num_experts=8, num_experts_per_tok=2,
                                             moe_intermediate_size=24, norm_topk_prob=True,
                                             head_dim=8, **COMMON)
        model = transformers.Qwen3MoeForCausalLM(config)
    elif kind == "mixtral":
        config = transformers.MixtralConfig(num_local_experts=8, num_experts_per_tok=2,
                                            **COMMON)
        model = transformers.MixtralForCausalLM(config)
    else:
        config = transformers.DeepseekV3Config(
            n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
            first_k_dense_replace=0, n_shared_experts=1, moe_intermediate_size=16,
            kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8, v_head_dim=8,
            qk_nope_head_dim=8, routed_scaling_factor=2.5, norm_topk_prob=True,
            **dict(COMMON, num_key_value_heads=4))  # MLA: one KV head per query head
        model = transformers.DeepseekV3ForCausalLM(config)
        for layer in model.model.layers:  # a trained correction bias, not zeros
            layer.mlp.gate.e_score_correction_bias.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("kind", ["olmoe", "qwen2_moe", "qwen3_moe", "mixtral", "deepseek_v3"])
def test_token_router_reproduces_the_model(kind):
    model = tiny(kind)
    ids = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(ids).logits
        names = usmoe.hf.patch(model, router="token")
        got = model(ids).logits
    assert len(names) == 2
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["qwen3_moe", "deepseek_v3"])
def test_checkpoint_weights_are_read_in_place(kind, built_layers):
    """The patched blocks hand the compiled layer the model's own fused
    gate_up_proj and down_proj (nn.Linear's layout), not copies."""
    import numpy as np
    model = tiny(kind)
    usmoe.hf.patch(model, router="unified", k=1.0)
    with torch.no_grad():
        model(torch.randint(0, 64, (1, 5)))
    blocks = [m for m in model.modules() if hasattr(m, "usmoe_router")]
    assert len(built_layers) == len(blocks) == 2
    for compiled, block in zip(built_layers, blocks):
        assert compiled.fused and compiled.weight_layout == "out_in"
        for mine, param in zip(compiled._weights, (block.experts.gate_up_proj,
                                                  block.experts.down_proj)):
            assert np.shares_memory(mine, param.detach().numpy())


def test_unified_router_generates_with_a_kv_cache():
    model = tiny("olmoe")
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(2))
    usmoe.hf.patch(model, router="unified", k=1.5)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=5, do_sample=False, use_cache=True)
    assert out.shape == (1, 11)
    usmoe.hf.unpatch(model)
    with torch.no_grad():
        again = model.generate(ids, max_new_tokens=5, do_sample=False, use_cache=True)
    assert again.shape == (1, 11)


def test_bad_router_options_name_the_rule():
    with pytest.raises(ValueError, match=r"expects k in \[0, 8\]"):
        usmoe.hf.patch(tiny("olmoe"), router="unified", k=9.0)


def test_unsupported_model_is_refused():
    with pytest.raises(ValueError, match="no MoE block found"):
        usmoe.hf.patch(torch.nn.Linear(2, 2))
