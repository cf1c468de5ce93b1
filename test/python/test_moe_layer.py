"""A whole MoE layer (route, plan, dispatch, expert_ffn, combine) compiled for
the CPU against the spec's formula in usmoe.reference.moe_layer."""

import numpy as np
import pytest

import usmoe
from conftest import torch_with_gpu
from usmoe import reference

LAYER = """
func.func @layer(%hidden: tensor<?x{D}xf32>, %logits: tensor<1x?x{E}xf32>,
                 %w1: tensor<{E}x{D}x{F}xf32>, %w3: tensor<{E}x{D}x{F}xf32>,
                 %w2: tensor<{E}x{F}x{D}xf32>, %init: tensor<?x{D}xf32>)
    -> (tensor<?x{D}xf32>, tensor<?xi32>) {{
  %g, %m = moe.route {ROUTER} %logits : tensor<1x?x{E}xf32>
  %offsets, %ids, %w = moe.plan %g, %m : tensor<1x?x{E}xf32>
  %x = moe.dispatch %hidden, %ids : tensor<?x{D}xf32>, tensor<?xi32>
  %h = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
      : tensor<?x{D}xf32>, tensor<{E1}xi32>, tensor<{E}x{D}x{F}xf32>,
        tensor<{E}x{D}x{F}xf32>, tensor<{E}x{F}x{D}xf32>
  %y = moe.combine %h, %ids, %w into %init
      : tensor<?x{D}xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x{D}xf32>
  return %y, %ids : tensor<?x{D}xf32>, tensor<?xi32>
}}
"""


@pytest.mark.parametrize("router, ref_opts", [
    ("#moe.unified<k = 1.5>", dict(mode="unified", k=1.5)),
    ("#moe.token<k = 2, renormalize>", dict(mode="token", k=2, renormalize=True)),
    ("#moe.expert<capacity = 3>", dict(mode="expert", capacity=3)),
    ("#moe.token<k = 2, renormalize, routed_scaling_factor = 2.5, softcap = 1.0>",
     dict(mode="token", k=2, renormalize=True, routed_scaling_factor=2.5, softcap=1.0)),
    ("#moe.unified<k = 1.5, routed_scaling_factor = 0.5, softcap = 2.0>",
     dict(mode="unified", k=1.5, routed_scaling_factor=0.5, softcap=2.0)),
])
def test_layer_matches_reference(router, ref_opts):
    d, f, e, t = 8, 12, 6, 10
    rng = np.random.default_rng(5)
    hidden = rng.normal(size=(t, d)).astype(np.float32)
    logits = rng.normal(size=(1, t, e)).astype(np.float32)
    w1 = rng.normal(0, 0.3, size=(e, d, f)).astype(np.float32)
    w3 = rng.normal(0, 0.3, size=(e, d, f)).astype(np.float32)
    w2 = rng.normal(0, 0.3, size=(e, f, d)).astype(np.float32)
    shared = rng.normal(size=(t, d)).astype(np.float32)  # e.g. a shared expert's output
    ir = LAYER.format(D=d, F=f, E=e, E1=e + 1, ROUTER=router)
    layer = usmoe.compile(ir, target="cpu", entry="layer")
    y, ids = layer([hidden, logits, w1, w3, w2, shared])
    plan = reference.route(logits, **ref_opts)
    np.testing.assert_array_equal(ids, plan.token_ids)
    want = reference.moe_layer(hidden, plan, w1, w3, w2, init=shared)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # Tokens that no expert took get exactly the unconditional part.
    untouched = np.setdiff1d(np.arange(t), ids)
    np.testing.assert_array_equal(y[untouched], shared[untouched])


COMBINE_IR = """
func.func @combine(%out: tensor<?x4x{t}>, %ids: tensor<?xi32>, %w: tensor<?xf32>,
                   %off: tensor<{e1}xi32>, %init: tensor<?x4x{t}>) -> tensor<?x4x{t}> {{
  %y = moe.combine %out, %ids, %w into %init offsets %off
      : tensor<?x4x{t}>, tensor<?xi32>, tensor<?xf32> into tensor<?x4x{t}>, tensor<{e1}xi32>
  return %y : tensor<?x4x{t}>
}}
"""


def test_combine_is_deterministic_and_f16_accumulates_in_f32(monkeypatch):
    """The GPU combine (a block per token, rows found by binary search, no
    atomics) gives the CPU's bits under any schedule, and sums in f32."""
    # 2048 small contributions to token 0, one from each of 2048 experts (a
    # plan has at most one row per token and expert): an f16 running sum
    # would stall at 0.5 + ... (f16 has 11 bits); an f32 accumulator rounds
    # once at the end.
    m = 2048
    ir = COMBINE_IR.format(t="f16", e1=m + 1)
    args = [np.full((m, 4), 1.0, np.float16), np.zeros(m, np.int32),
            np.full(m, 1e-3, np.float32), np.arange(m + 1, dtype=np.int32),
            np.zeros((2, 4), np.float16)]
    (cpu,) = usmoe.compile(ir, target="cpu", entry="combine")(args)
    assert cpu.dtype == np.float16
    np.testing.assert_allclose(cpu[0].astype(np.float32), 2.048, rtol=1e-3)
    np.testing.assert_array_equal(cpu[1], 0)
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    gpu = usmoe.compile(ir, target="cuda", entry="combine")
    for seed in ("", "1", "2", "3"):
        monkeypatch.setenv("USMOE_EMU_SEED", seed)
        np.testing.assert_array_equal(gpu(args)[0], cpu)


def test_combine_with_offsets_matches_an_independent_sum(monkeypatch):
    """The CPU combine (rows in order) and the GPU one (offsets, binary
    search) against NumPy: the same bits, since both add each token's rows
    in ascending row order."""
    rng = np.random.default_rng(9)
    plan = reference.route(rng.normal(size=(1, 6, 3)).astype(np.float32), mode="token", k=2)
    out = rng.normal(size=(plan.token_ids.size, 4)).astype(np.float32)
    init = rng.normal(size=(6, 4)).astype(np.float32)
    args = [out, plan.token_ids, plan.weights, plan.expert_offsets, init]
    want = init.astype(np.float64).copy()
    np.add.at(want, plan.token_ids, plan.weights[:, None].astype(np.float64) * out)
    ir = COMBINE_IR.format(t="f32", e1=4)
    (cpu,) = usmoe.compile(ir, target="cpu", entry="combine")(args)
    np.testing.assert_allclose(cpu, want, rtol=1e-6, atol=1e-6)
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    (gpu,) = usmoe.compile(ir, target="cuda", entry="combine")(args)
    np.testing.assert_array_equal(gpu, cpu)


def _weights(rng, e, d, f, dtype=np.float32):
    return (rng.normal(0, 0.3, size=(e, d, f)).astype(dtype),
            rng.normal(0, 0.3, size=(e, d, f)).astype(dtype),
            rng.normal(0, 0.3, size=(e, f, d)).astype(dtype))


@pytest.mark.parametrize("options", [
    dict(mode="unified", k=1.5),
    dict(mode="unified", budget=5, alpha=0.25, expert_score="softmax_tokens"),
    dict(mode="token", k=2, renormalize=True),
    dict(mode="token", k=2, bias=np.linspace(-0.2, 0.2, 6).astype(np.float32)),
    dict(mode="expert", capacity_factor=1.25, k=2),
])
def test_moe_layer_api_matches_reference(options):
    rng = np.random.default_rng(11)
    e, d, f, b, t = 6, 8, 12, 2, 9
    w1, w3, w2 = _weights(rng, e, d, f)
    layer = usmoe.MoeLayer(w1, w3, w2, **options)
    logits = rng.normal(size=(b, t, e)).astype(np.float32)
    hidden = rng.normal(size=(b * t, d)).astype(np.float32)
    init = rng.normal(size=(b * t, d)).astype(np.float32)
    ref_options = dict(options)
    if "expert_score" in ref_options:
        ref_options["expert_score_kind"] = ref_options.pop("expert_score")
    plan = reference.route(logits, **ref_options)
    want = reference.moe_layer(hidden, plan, w1, w3, w2, init=init)
    np.testing.assert_allclose(layer(hidden, logits, init=init), want, rtol=1e-5, atol=1e-5)
    # Without init the routed sum alone.
    want0 = reference.moe_layer(hidden, plan, w1, w3, w2)
    np.testing.assert_allclose(layer(hidden, logits), want0, rtol=1e-5, atol=1e-5)


def test_moe_layer_compiles_once_per_shape_class():
    rng = np.random.default_rng(12)
    layer = usmoe.MoeLayer(*_weights(rng, 4, 8, 16), mode="unified", k=1.0)
    layer(rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32))
    before = usmoe.cache_info()["compilations"]
    for t in (1, 5, 40):
        y = layer(rng.normal(size=(t, 8)).astype(np.float32),
                  rng.normal(size=(t, 4)).astype(np.float32))
        assert y.shape == (t, 8)
    assert usmoe.cache_info()["compilations"] == before


def test_moe_layer_half_precision_and_torch():
    rng = np.random.default_rng(13)
    e, d, f, t = 4, 8, 8, 6
    w32 = _weights(rng, e, d, f)
    logits = rng.normal(size=(t, e)).astype(np.float32)
    hidden = rng.normal(size=(t, d)).astype(np.float32)
    want = reference.moe_layer(hidden, reference.route(logits, mode="token", k=2), *w32)
    y16 = usmoe.MoeLayer(*(w.astype(np.float16) for w in w32), mode="token", k=2)(
        hidden.astype(np.float16), logits)
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float32), want, rtol=2e-2, atol=2e-2)
    torch = pytest.importorskip("torch")
    tw = [torch.from_numpy(w).to(torch.bfloat16) for w in w32]
    layer = usmoe.MoeLayer(*tw, mode="token", k=2)
    y = layer(torch.from_numpy(hidden).to(torch.bfloat16), torch.from_numpy(logits))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16 and tuple(y.shape) == (t, d)
    np.testing.assert_allclose(y.float().numpy(), want, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("build, call, message", [
    (lambda w1, w3, w2: (w1, np.ascontiguousarray(w3[:, :, :-1]), w2), None,
     r"w3 must be \[E, D, F\] = \(4, 8, 16\)"),
    (lambda w1, w3, w2: (w1, w3, np.ascontiguousarray(w2[:, :-1])), None,
     r"w1 must be \[E, D, F\] = \(4, 8, 15\) for w2 \(4, 15, 8\)"),
    (lambda w1, w3, w2: (w1, w3.astype(np.float16), w2), None, "same dtype"),
    (lambda w1, w3, w2: (w1[0], w3[0], w2[0]), None, "w2 must be 3-D"),
    (lambda w1, w3, w2: (w1, None, w2), None,
     r"fused gate/up w1 must be \[E, D, 2F\] = \(4, 8, 32\)"),
    (None, lambda layer, h, lg: layer(h[:-1], lg), r"hidden must be \[B\*T, D\]"),
    (None, lambda layer, h, lg: layer(h, np.ascontiguousarray(lg[:, :3])),
     "logits have 3 experts"),
    (None, lambda layer, h, lg: layer(h.astype(np.float16), lg), "weights' dtype"),
    (None, lambda layer, h, lg: layer(h, lg, init=h[:2]), "init must have the shape"),
    (None, lambda layer, h, lg: layer(h, lg, stream=1), "device='cuda' only"),
    (None, lambda layer, h, lg: layer(h[:, ::2], lg), "hidden must be C-contiguous"),
])
def test_moe_layer_bad_input(build, call, message):
    rng = np.random.default_rng(14)
    w = _weights(rng, 4, 8, 16)
    h = rng.normal(size=(5, 8)).astype(np.float32)
    lg = rng.normal(size=(5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        layer = usmoe.MoeLayer(*(build(*w) if build else w), mode="token", k=2)
        call(layer, h, lg)


def test_moe_layer_rejects_an_unknown_weight_layout():
    w = _weights(np.random.default_rng(14), 4, 8, 16)
    with pytest.raises(ValueError, match="weight_layout must be one of in_out, out_in, got 'rows'"):
        usmoe.MoeLayer(*w, mode="token", k=2, weight_layout="rows")


def _in_layouts(w1, w3, w2):
    """The same experts in every layout MoeLayer reads: (weights,
    weight_layout) for separate and fused gate/up, in_out and out_in."""
    out_in = [np.ascontiguousarray(w.transpose(0, 2, 1)) for w in (w1, w3, w2)]
    return [((w1, w3, w2), "in_out"),
            ((np.concatenate([w1, w3], axis=2), None, w2), "in_out"),
            (tuple(out_in), "out_in"),
            ((np.concatenate(out_in[:2], axis=1), None, out_in[2]), "out_in")]


def _expert_gemms(device):
    """The CPU's expert GEMM lowerings to test (USMOE_CPU_GEMM), or [None]
    on the GPU path."""
    if device != "cpu":
        return [None]
    return ["loops"] + (["onednn"] if usmoe.cpu.runtime_path() else [])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16"])
def test_weight_layouts_give_identical_results(dtype, route_device, monkeypatch):
    """Separate or fused gate/up, in_out or out_in: the same experts give
    the same layer, for a router and for a selection made elsewhere, and the
    weights are not copied. Bitwise where the code sums over d and f in
    order in every layout (the generated loops, the GPU kernels on the
    emulator); within f32 round-off on oneDNN, whose kernels differ by
    layout."""
    rng = np.random.default_rng(31)
    e, d, f, t = 6, 24, 40, 37
    w = _weights(rng, e, d, f)
    if dtype == "bfloat16":
        torch = pytest.importorskip("torch")
        w = tuple(torch.from_numpy(x).bfloat16() for x in w)
    else:
        w = tuple(x.astype(dtype) for x in w)
    as_f32 = (lambda a: a.float().numpy()) if dtype == "bfloat16" else \
        (lambda a: np.asarray(a, np.float32))
    logits = rng.normal(size=(t, e)).astype(np.float32)
    hidden = rng.normal(size=(t, d)).astype(np.float32)
    hidden = torch.from_numpy(hidden).bfloat16() if dtype == "bfloat16" else hidden.astype(dtype)
    ids = np.argsort(-logits, axis=1)[:, :2].astype(np.int32)
    gates = rng.uniform(size=(t, 2)).astype(np.float32)
    device = route_device
    layouts = _in_layouts_any(*w)
    for gemm in _expert_gemms(device):
        if gemm is not None:
            monkeypatch.setenv("USMOE_CPU_GEMM", gemm)
        results, given = [], []
        for weights, layout in layouts:
            layer = usmoe.MoeLayer(*weights, mode="unified", k=1.5, device=device,
                                   weight_layout=layout)
            assert all(np.shares_memory(mine, np.asarray(_raw(theirs)))
                       for mine, theirs in zip(layer._weights,
                                               [x for x in weights if x is not None]))
            results.append(as_f32(layer(hidden, logits)))
            given.append(as_f32(layer.forward_topk(hidden, ids, gates)))
        want = reference.moe_layer(as_f32(hidden),
                                   reference.route(logits, mode="unified", k=1.5),
                                   *(as_f32(x) for x in w))
        np.testing.assert_allclose(results[0], want, rtol=3e-2, atol=3e-2)
        bitwise = gemm != "onednn" or dtype == np.float16  # f16 stays on loops
        for group in (results, given):
            for y in group[1:]:
                if bitwise:
                    np.testing.assert_array_equal(y, group[0])
                else:
                    np.testing.assert_allclose(y, group[0], rtol=1e-5, atol=1e-6)


def _raw(weight):
    """The array MoeLayer reads for `weight` (bf16 tensors as raw bits)."""
    if hasattr(weight, "view") and str(getattr(weight, "dtype", "")) == "torch.bfloat16":
        import torch
        return weight.view(torch.int16).numpy()
    return weight


def _in_layouts_any(w1, w3, w2):
    """_in_layouts for NumPy arrays or torch tensors."""
    if isinstance(w1, np.ndarray):
        return _in_layouts(w1, w3, w2)
    import torch
    out_in = [w.transpose(1, 2).contiguous() for w in (w1, w3, w2)]
    return [((w1, w3, w2), "in_out"),
            ((torch.cat([w1, w3], 2), None, w2), "in_out"),
            (tuple(out_in), "out_in"),
            ((torch.cat(out_in[:2], 1), None, out_in[2]), "out_in")]


@pytest.mark.parametrize("options", [dict(mode="unified", k=1.5),
                                     dict(mode="token", k=2, renormalize=True),
                                     dict(mode="expert", capacity_factor=1.0, k=2)])
def test_moe_layer_on_the_gpu_matches_the_cpu(options, gpu_path):
    rng = np.random.default_rng(15)
    e, d, f, b, t = 16, 64, 96, 2, 100
    w = _weights(rng, e, d, f)
    logits = rng.normal(size=(b, t, e)).astype(np.float32)
    hidden = rng.normal(size=(b * t, d)).astype(np.float32)
    want = usmoe.MoeLayer(*w, **options)(hidden, logits)
    gpu_layer = usmoe.MoeLayer(*w, device="cuda", **options)
    # Host arrays in, NumPy out; the GPU sums in another order: 1e-5.
    np.testing.assert_allclose(gpu_layer(hidden, logits), want, rtol=1e-5, atol=1e-5)
    if gpu_path == "cuda" and torch_with_gpu() is not None:
        # torch CUDA tensors in, a torch CUDA tensor out.
        torch = torch_with_gpu()
        y = gpu_layer(torch.from_numpy(hidden).cuda(), torch.from_numpy(logits).cuda())
        assert y.is_cuda
        np.testing.assert_allclose(y.cpu().numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_moe_layer_on_the_gpu_in_half_precision(dtype, gpu_path):
    """f16/bf16 weights and activations, f32 accumulation, on the GPU path:
    within one rounding of the half type of the CPU path."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    e, d, f, t = 8, 32, 48, 40
    w = [torch.from_numpy(x).to(getattr(torch, dtype)) for x in _weights(rng, e, d, f)]
    logits = torch.from_numpy(rng.normal(size=(t, e)).astype(np.float32))
    hidden = torch.from_numpy(rng.normal(size=(t, d)).astype(np.float32)).to(getattr(torch, dtype))
    want = usmoe.MoeLayer(*w, mode="token", k=2)(hidden, logits)
    got = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")(hidden, logits)
    assert got.dtype == getattr(torch, dtype)
    np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_tensor_core_layer_over_partial_tiles(dtype, layout, gpu_path):
    """The f16/bf16 expert GEMMs (tensor-core tiles of 64 rows x 64 columns,
    32 deep): experts with several row tiles and with none, D and F that are
    no multiple of a tile, against the CPU path and an f64 reference. The
    SwiGLU intermediate is rounded to the half type between the GEMMs (the
    spec allows it): within a few roundings of the half type."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(41)
    e, d, f, t = 5, 72, 100, 150
    w32 = _weights(rng, e, d, f)
    logits = rng.normal(size=(t, e)).astype(np.float32)
    logits[:, 3] = -np.inf  # expert 3 gets no rows
    logits[:, 1] += 2.0     # expert 1 gets more than two row tiles
    hidden32 = rng.normal(size=(t, d)).astype(np.float32)
    half = getattr(torch, dtype)
    if layout == "out_in":
        w = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).to(half) for x in w32]
    else:
        w = [torch.from_numpy(x).to(half) for x in w32]
    hidden = torch.from_numpy(hidden32).to(half)
    plan = reference.route(logits, mode="token", k=2)
    counts = np.diff(plan.expert_offsets)
    assert counts[3] == 0 and counts.max() > 128
    got = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda", weight_layout=layout)(hidden, logits)
    cpu = usmoe.MoeLayer(*w, mode="token", k=2, weight_layout=layout)(hidden, logits)
    as_in_out = [x.float().numpy() if layout == "in_out"
                 else np.ascontiguousarray(x.float().numpy().transpose(0, 2, 1)) for x in w]
    want = reference.moe_layer(hidden.float().numpy().astype(np.float64), plan, *as_in_out)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.float().numpy(), want, rtol=0, atol=2e-2 * scale)
    np.testing.assert_allclose(got.float().numpy(), cpu.float().numpy(), rtol=0,
                               atol=2e-2 * scale)
    if layout == "in_out":
        # A fused gate/up tensor: w3's rows start F = 100 elements (200
        # bytes) into it, off 16 bytes, so its tiles are staged element by
        # element while w1's take 16-byte loads: the same bits.
        fused = usmoe.MoeLayer(torch.cat([w[0], w[1]], 2), None, w[2], mode="token", k=2,
                               device="cuda")(hidden, logits)
        np.testing.assert_array_equal(fused.float().numpy(), got.float().numpy())


def test_tensor_core_layer_over_several_block_groups(gpu_path):
    """More row tiles than one group of consecutive blocks takes (16) and
    several column tiles in both GEMMs: the grouped grid order covers every
    (row tile, column tile) once."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(43)
    e, d, f, t = 3, 72, 136, 600
    w = [torch.from_numpy(x).bfloat16() for x in _weights(rng, e, d, f)]
    logits = rng.normal(size=(t, e)).astype(np.float32)
    hidden = torch.from_numpy(rng.normal(size=(t, d)).astype(np.float32)).bfloat16()
    plan = reference.route(logits, mode="token", k=2)
    assert -(-plan.expert_offsets[-1] // 64) > 16
    got = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")(hidden, logits)
    want = reference.moe_layer(hidden.float().numpy().astype(np.float64), plan,
                               *(x.float().numpy() for x in w))
    np.testing.assert_allclose(got.float().numpy(), want, rtol=0,
                               atol=2e-2 * np.abs(want).max())


def test_combine_reads_misaligned_rows_element_by_element(gpu_path):
    """The combine sums 4 elements of d at a time where every row starts
    aligned; an `init` view 2 bytes off its allocation takes the element
    path: the same bits."""
    rng = np.random.default_rng(44)
    e, d, f, t = 4, 24, 40, 30
    w = [x.astype(np.float16) for x in _weights(rng, e, d, f)]
    logits = rng.normal(size=(t, e)).astype(np.float32)
    hidden = rng.normal(size=(t, d)).astype(np.float16)
    init = rng.normal(size=(t, d)).astype(np.float16)
    flat = np.empty(t * d + 1, np.float16)
    misaligned = flat[1:].reshape(t, d)
    misaligned[...] = init
    assert misaligned.ctypes.data % 8 != 0
    layer = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")
    np.testing.assert_array_equal(layer(hidden, logits, init=misaligned),
                                  layer(hidden, logits, init=init))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_empty_plan_gives_the_init(dtype, gpu_path):
    """A plan with no rows (Unified with a budget below one pair): no
    expert kernel reads anything, and the layer returns zeros."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(42)
    e, d, f = 4, 24, 40
    w = [torch.from_numpy(x).to(getattr(torch, dtype)) for x in _weights(rng, e, d, f)]
    hidden = torch.from_numpy(rng.normal(size=(1, d)).astype(np.float32)).to(getattr(torch, dtype))
    logits = rng.normal(size=(1, e)).astype(np.float32)
    assert reference.route(logits, mode="unified", k=0.5).expert_offsets[-1] == 0
    y = usmoe.MoeLayer(*w, mode="unified", k=0.5, device="cuda")(hidden, logits)
    assert tuple(y.shape) == (1, d)
    assert not y.float().numpy().any()


def test_moe_layer_with_many_rows_per_expert():
    # 2 experts, 37 tokens, k=1: about 18 rows each, so the CPU expert MLP's
    # row tiles (16 rows) come full and partial, and an expert may get 0.
    rng = np.random.default_rng(16)
    e, d, f, t = 3, 24, 40, 37
    w = _weights(rng, e, d, f)
    logits = rng.normal(size=(t, e)).astype(np.float32)
    logits[:, 2] = -np.inf  # expert 2 gets nothing
    hidden = rng.normal(size=(t, d)).astype(np.float32)
    layer = usmoe.MoeLayer(*w, mode="token", k=1)
    plan = reference.route(logits, mode="token", k=1)
    assert np.diff(plan.expert_offsets).tolist()[2] == 0
    assert max(np.diff(plan.expert_offsets)) > 16
    np.testing.assert_allclose(layer(hidden, logits), reference.moe_layer(hidden, plan, *w),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device_setup", ["cpu", "emulator"])
def test_f16_layer_rounds_once_at_the_end(device_setup, monkeypatch):
    """Each expert's output (+-125000) overflows f16 but their gated sum
    (0) does not: the spec's single rounding gives a number, rounding each
    expert's output first gave inf - inf = NaN."""
    device = "cpu"
    if device_setup == "emulator":
        monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
        device = "cuda"
    w1 = np.array([[[50.0], [0.0]], [[50.0], [0.0]]], np.float16)  # [E=2, D=2, F=1]
    w3 = w1.copy()
    w2 = np.array([[[50.0, 1.0]], [[-50.0, 1.0]]], np.float16)     # [E, F, D]
    hidden = np.array([[1.0, 0.0]], np.float16)
    logits = np.zeros((1, 2), np.float32)                            # gates 0.5 and 0.5
    y = usmoe.MoeLayer(w1, w3, w2, mode="token", k=2, device=device)(hidden, logits)
    assert np.isfinite(y).all(), y
    want = reference.moe_layer(hidden.astype(np.float64), reference.route(logits, mode="token",
                                                                          k=2), w1, w3, w2)
    np.testing.assert_allclose(y.astype(np.float32), want, atol=0.5)
