"""Switch a Hugging Face MoE model's router, training-free (USMoE's use):
a tiny OLMoE with random weights (built from a config, nothing
downloaded), patched with usmoe's Token Choice (the model's own routing),
USMoE's unified router at several budgets and Expert Choice; each one
generates a few tokens with a KV cache and reports the routed expert FLOPs
of the prompt. Needs PyTorch >= 2.4 and transformers >= 5."""

import torch
import transformers

import usmoe
import usmoe.hf

torch.manual_seed(0)
config = transformers.OlmoeConfig(vocab_size=128, hidden_size=64, intermediate_size=96,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=4, num_experts=16, num_experts_per_tok=4,
                                  eos_token_id=None, pad_token_id=0)
model = transformers.OlmoeForCausalLM(config).eval()
prompt = torch.randint(0, 128, (1, 24), generator=torch.Generator().manual_seed(1))
d, f = config.hidden_size, config.intermediate_size

routers = [("token (OLMoE's own)", "token", {}),
           ("unified k=4", "unified", dict(k=4.0)),
           ("unified k=2", "unified", dict(k=2.0)),
           ("unified k=1", "unified", dict(k=1.0)),
           ("expert C=1.0", "expert", dict(capacity_factor=1.0, k=4))]

with torch.no_grad():
    block = model.model.layers[0].mlp
    hidden = model.model.embed_tokens(prompt)  # the first block's input, roughly
    logits = (hidden @ block.gate.weight.t()).float()
    for label, router, options in routers:
        usmoe.hf.patch(model, router=router, **options)
        tokens = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
        usmoe.hf.unpatch(model)
        route_options = (dict(mode="token", k=4) if router == "token"
                         else dict(mode=router, **options))
        cost = usmoe.route(logits.numpy(), **route_options).cost(d, f)
        print(f"{label:20s} routed pairs {cost['selected_pairs']:3d}  routed FLOPs per layer "
              f"{cost['routed_flops']:>9,d}  imbalance {cost['imbalance']:.2f}  "
              f"new tokens {tokens[0, -6:].tolist()}")
