#!/usr/bin/env python3
"""The Python API's GPU path on a GPU machine without LLVM/MLIR.

    api_check.py prefill DIR   here (fake driver, no GPU): compile every
                               case's host library (host code + sm_90
                               kernels) into DIR/kernel-cache
    api_check.py run DIR       on the GPU machine: usmoe.route / MoeLayer on
                               torch.cuda tensors (host libraries from the
                               cache, nothing compiled), results left on the
                               GPU, compared with usmoe.reference (NumPy)

scripts/gpu-check.sh packs the usmoe package, this script and the filled
cache; its run half calls `run`. Prints one table row per case; exit 1 on
any mismatch.
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, usmoe.route options, E, logits dtype); T tokens in B sequences.
ROUTERS = [
    ("token_e64_k8_bf16", dict(mode="token", k=8, renormalize=True), 64, "bfloat16"),
    ("token_e256_k8_bias", dict(mode="token", k=8, bias=True), 256, "float32"),
    ("unified_e64_k1.5", dict(mode="unified", k=1.5), 64, "float32"),
    ("unified_e60_softmax_tokens", dict(mode="unified", budget=40, alpha=0.25,
                                        expert_score="softmax_tokens"), 60, "float16"),
    ("expert_e64_cf1.25", dict(mode="expert", capacity_factor=1.25, k=2), 64, "float32"),
]
B, T = 2, 100
LAYER = dict(mode="token", k=2, renormalize=True)
E_LAYER, D, F = 16, 64, 96


def case_inputs(e, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, size=(B, T, e)).astype(np.float32)
    x[0, 0, :] = np.round(x[0, 0, :])  # ties
    x[0, 1, 3] = np.nan
    x[0, 2, :] = -np.inf
    return x


def bias_for(e):
    return np.random.default_rng(e).normal(0, 0.05, size=e).astype(np.float32)


def layer_weights():
    rng = np.random.default_rng(7)
    return [rng.normal(0, 0.2, size=s).astype(np.float32)
            for s in ((E_LAYER, D, F), (E_LAYER, D, F), (E_LAYER, F, D))]


class FakeDevice:
    """Prefill mode: host memory posing as GPU memory for the fake driver."""

    def __init__(self, a, element):
        self.a, self.element = a, element

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None):
        from usmoe import _usmoe
        code, bits = {"f32": (2, 32), "f16": (2, 16), "bf16": (4, 16)}[self.element]
        return _usmoe.dlpack_capsule(self, self.a.ctypes.data, list(self.a.shape), code, bits,
                                     2, 0)


def to_device(x, dtype, prefill):
    if prefill:
        if dtype == "bfloat16":
            raw = (np.ascontiguousarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)
            return FakeDevice(raw, "bf16")
        return FakeDevice(np.ascontiguousarray(x.astype(dtype)),
                          {"float32": "f32", "float16": "f16"}[dtype])
    import torch
    return torch.from_numpy(x).to(getattr(torch, dtype)).cuda()


def host_copy(x, dtype):
    """What the GPU sees, as float32 on the host (after the dtype rounding)."""
    if dtype == "bfloat16":
        import torch
        return torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    return x.astype(dtype).astype(np.float32)


def main(mode, directory):
    os.environ["USMOE_CACHE_DIR"] = os.path.join(directory, "kernel-cache")
    prefill = mode == "prefill"
    if prefill:
        os.environ.setdefault("FAKE_CUDA_CC", "9.0")
    else:
        try:
            import torch
            usable = torch.cuda.is_available()
        except ImportError:
            usable = False
        if not usable:
            print("api_check: no PyTorch with a GPU here; nothing checked", file=sys.stderr)
            return 2
    import usmoe
    from usmoe import reference
    rows, failures = [], 0
    for i, (name, options, e, dtype) in enumerate(ROUTERS):
        options = dict(options)
        if options.pop("bias", False):
            options["bias"] = bias_for(e)
        x = case_inputs(e, dtype, i)
        plan = usmoe.route(to_device(x, dtype, prefill), device="cuda", **options)
        if prefill:
            continue
        ref_options = dict(options)
        if "expert_score" in ref_options:
            ref_options["expert_score_kind"] = ref_options.pop("expert_score")
        want = reference.route(host_copy(x, dtype), **ref_options)
        mism = int((plan.mask.cpu().numpy() != want.mask).sum())
        mism += int((plan.expert_offsets.cpu().numpy() != want.expert_offsets).sum())
        ids = plan.token_ids.cpu().numpy()
        mism += int(ids.shape != want.token_ids.shape or (ids != want.token_ids).any())
        if plan.topk_ids is not None:
            mism += int((plan.topk_ids.cpu().numpy() != want.topk_ids).sum())
        g, wg = plan.gates.cpu().numpy(), want.gates
        err = float((np.abs(g - wg) / np.maximum(np.abs(wg), 1e-30))[wg != 0].max(initial=0))
        on_gpu = all(getattr(plan, n).is_cuda for n in ("gates", "mask", "token_ids"))
        ok = mism == 0 and err <= 1e-6 and on_gpu
        failures += not ok
        rows.append((name, mism, err, "ok" if ok else "FAIL"))

    w = layer_weights()
    layer = usmoe.MoeLayer(*w, device="cuda", **LAYER)
    rng = np.random.default_rng(99)
    logits = rng.normal(size=(B, T, E_LAYER)).astype(np.float32)
    hidden = rng.normal(size=(B * T, D)).astype(np.float32)
    y = layer(to_device(hidden, "float32", prefill), to_device(logits, "float32", prefill))
    if not prefill:
        want = reference.moe_layer(hidden, reference.route(logits, **LAYER), *w)
        got = y.cpu().numpy()
        err = float((np.abs(got - want) / np.maximum(np.abs(want), 1e-3)).max())
        ok = err <= 1e-5 and y.is_cuda
        failures += not ok
        rows.append(("MoeLayer token k=2 E=16 D=64 F=96", 0, err, "ok" if ok else "FAIL"))

    # The same layer from weights already on the GPU, in nn.Linear's layout
    # with gate/up fused (HF's gate_up_proj): read in place.
    gate_up = np.concatenate([w[0], w[1]], axis=2).transpose(0, 2, 1).copy()
    down = w[2].transpose(0, 2, 1).copy()
    layer = usmoe.MoeLayer(to_device(gate_up, "float32", prefill), None,
                           to_device(down, "float32", prefill), device="cuda",
                           weight_layout="out_in", **LAYER)
    y = layer(to_device(hidden, "float32", prefill), to_device(logits, "float32", prefill))
    if not prefill:
        got = y.cpu().numpy()
        err = float((np.abs(got - want) / np.maximum(np.abs(want), 1e-3)).max())
        ok = err <= 1e-5 and y.is_cuda
        failures += not ok
        rows.append(("MoeLayer, torch.cuda weights out_in fused", 0, err, "ok" if ok else "FAIL"))

    # bf16 on tensor cores (the grouped GEMMs): torch.cuda weights and
    # activations, against an f64 layer of the bf16-rounded inputs; h is
    # rounded to bf16 between the GEMMs, so 2e-2 of the largest output.
    wb = [host_copy(x, "bfloat16") for x in w]
    layer = usmoe.MoeLayer(*(to_device(x, "bfloat16", prefill) for x in wb), device="cuda",
                           **LAYER)
    y = layer(to_device(hidden, "bfloat16", prefill), to_device(logits, "float32", prefill))
    if not prefill:
        want = reference.moe_layer(host_copy(hidden, "bfloat16").astype(np.float64),
                                   reference.route(logits, **LAYER), *wb)
        got = y.float().cpu().numpy()
        err = float(np.abs(got - want).max() / np.abs(want).max())
        ok = err <= 2e-2 and y.is_cuda
        failures += not ok
        rows.append(("MoeLayer bf16 (tensor cores), torch.cuda in and out", 0, err,
                     "ok" if ok else "FAIL"))

    if prefill:
        info = usmoe.cache_info()["kernel_cache"]
        print(f"prefilled {info['misses']} host libraries into {info['dir']}")
        return 0
    import torch
    print(f"device: {torch.cuda.get_device_name(0)}; kernels from the cache: "
          f"{usmoe.cache_info()['kernel_cache']}")
    print("| Python API case (torch.cuda in and out) | mismatches | max rel err | result |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2e} | {r[3]} |")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("prefill", "run"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], os.path.abspath(sys.argv[2])))
