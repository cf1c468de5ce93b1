"""The Python API: caching, bad input, compile() targets, dtypes."""

import numpy as np
import pytest

import usmoe
from conftest import torch_with_gpu
from usmoe import reference


def test_new_sequence_length_compiles_nothing():
    router = usmoe.Router(mode="unified", k=1.5, alpha=0.25)
    rng = np.random.default_rng(0)
    router(rng.normal(size=(2, 8, 16)).astype(np.float32))
    before = usmoe.cache_info()["compilations"]
    for t in (1, 3, 17, 64):
        plan = router(rng.normal(size=(2, t, 16)).astype(np.float32))
        assert plan.mask.reshape(2, -1).sum(axis=1).tolist() == [int(1.5 * t)] * 2
    assert usmoe.cache_info()["compilations"] == before


def test_route_shares_the_cache_with_router():
    logits = np.zeros((1, 4, 8), np.float32)
    usmoe.route(logits, mode="token", k=2)
    before = usmoe.cache_info()["compilations"]
    usmoe.route(np.ones((3, 9, 8), np.float32), mode="token", k=2)
    assert usmoe.cache_info()["compilations"] == before
    # Another dtype or expert count is another compiled router.
    usmoe.route(logits.astype(np.float16), mode="token", k=2)
    assert usmoe.cache_info()["compilations"] == before + 1


def test_float16_and_bfloat16_inputs():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 6, 8)).astype(np.float16)
    got = usmoe.route(logits, mode="unified", k=2)
    want = reference.route(logits, mode="unified", k=2)
    np.testing.assert_array_equal(got.mask, want.mask)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = logits.astype(np.float32).astype(ml_dtypes.bfloat16)
    got = usmoe.route(bf, mode="token", k=2)
    want = reference.route(bf.astype(np.float32), mode="token", k=2)
    np.testing.assert_array_equal(got.mask, want.mask)


def test_empty_inputs_give_empty_plans():
    plan = usmoe.route(np.zeros((2, 0, 8), np.float32), mode="unified", k=2)
    assert plan.gates.shape == (2, 0, 8)
    assert plan.token_ids.size == 0 and plan.expert_offsets.tolist() == [0] * 9
    plan = usmoe.route(np.zeros((0, 5, 8), np.float32), mode="token", k=2)
    assert plan.topk_ids.shape == (0, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="token", k=9), r"expects k in \[1, 8\] \(the number of experts\), got 9"),
    (dict(mode="token", k=1.5), "token routing expects an integer k, got 1.5"),
    (dict(mode="token"), "token routing expects 'k'"),
    (dict(mode="token", k=2, alpha=0.9), "'alpha' does not apply to token routing"),
    (dict(mode="token", k=2, budget=3), "'n' does not apply to token routing"),
    (dict(mode="unified", k=2, alpha=float("nan")), r"expects alpha in \[0, 1\], got nan"),
    (dict(mode="unified", k=2, alpha=1.5), r"expects alpha in \[0, 1\], got 1.5"),
    (dict(mode="unified", k=float("inf")), r"expects a finite k >= 0 \(experts per token\), got inf"),
    (dict(mode="unified", k=1e300), r"expects k in \[0, 8\] \(experts per token\), got 1e\+300"),
    (dict(mode="unified", budget=33), r"expects n <= T \* E = 32, got 33"),
    (dict(mode="unified", budget=-1), "expects n >= 0, got -1"),
    (dict(mode="unified", budget=2**70), "budget must fit in a 64-bit integer"),
    (dict(mode="unified"), "expects exactly one of 'n' and 'k'"),
    (dict(mode="unified", k=2, budget=3), "expects exactly one of 'n' and 'k'"),
    (dict(mode="expert", capacity=5), r"expects capacity <= 4 \(the number of tokens per sequence\)"),
    (dict(mode="expert", capacity=2, k=3), "expects 'k' only together with 'capacity_factor'"),
    (dict(mode="expert"), "expects exactly one of 'capacity' and 'capacity_factor'"),
    (dict(mode="expert", capacity_factor=1.0), r"expects 'k' \(experts per token\) with 'capacity_factor'"),
    (dict(mode="expert", capacity_factor=float("nan"), k=2), "expects a finite capacity_factor > 0, got nan"),
    (dict(mode="expert", capacity=2, renormalize=True), "'renormalize' does not apply to expert routing"),
    (dict(mode="token", k=2, softcap=float("inf")), "expects a finite softcap > 0, got inf"),
    (dict(mode="unified", k=2, routed_scaling_factor=float("nan")),
     "expects a finite routed_scaling_factor > 0, got nan"),
    (dict(mode="shared", k=2), "mode must be one of"),
    (dict(mode="unified", k=2, expert_score="tanh"), "expert_score must be one of"),
    (dict(mode="unified", k=2, device="tpu"), "device must be"),
])
def test_bad_options_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        usmoe.route(np.zeros((1, 4, 8), np.float32), **kwargs)


@pytest.mark.parametrize("kwargs, error", [
    (dict(k="2"), "k must be a number, got str"),
    (dict(k=2, budget=2.5), "budget must be an integer, got float"),
    (dict(k=2, alpha=True), "alpha must be a number, got bool"),
    (dict(k=2, renormalize="yes"), "renormalize must be a bool, got str"),
    (dict(k=2, softcap="30"), "softcap must be a number, got str"),
    (dict(k=2, n_group=4.5), "n_group must be an integer, got float"),
    (dict(k=2, routed_scaling_factor=[2.5]), "routed_scaling_factor must be a number, got list"),
])
def test_wrong_types_raise_type_error(kwargs, error):
    with pytest.raises(TypeError, match=error):
        usmoe.Router(mode="unified", **kwargs)


# (usmoe.route options, the same router as a moe.route router attribute)
SAME_RULES = [
    (dict(mode="token", k=9), "#moe.token<k = 9>"),
    (dict(mode="token", k=2.5), "#moe.token<k = 2.5>"),
    (dict(mode="token", k=2, alpha=0.9), "#moe.token<k = 2, alpha = 0.9>"),
    (dict(mode="token", k=2, expert_score="sigmoid"), "#moe.token<k = 2, expert_score = sigmoid>"),
    (dict(mode="expert", capacity=2, k=3), "#moe.expert<k = 3, capacity = 2>"),
    (dict(mode="expert", capacity_factor=-1.0, k=2), "#moe.expert<k = 2, capacity_factor = -1.0>"),
    (dict(mode="expert", capacity_factor=1e300, k=2.5), "#moe.expert<k = 2.5, capacity_factor = 1.0e300>"),
    (dict(mode="unified", budget=33), "#moe.unified<n = 33>"),
    (dict(mode="unified", k=2, alpha=1.5), "#moe.unified<k = 2, alpha = 1.5>"),
    (dict(mode="unified", k=9.5), "#moe.unified<k = 9.5>"),
    (dict(mode="unified", k=1e300), "#moe.unified<k = 1.0e300>"),
    (dict(mode="unified", k=2, budget=3), "#moe.unified<k = 2, n = 3>"),
    (dict(mode="expert", capacity=2, renormalize=True), "#moe.expert<capacity = 2, renormalize>"),
    (dict(mode="token", k=2, softcap=0.0), "#moe.token<k = 2, softcap = 0.0>"),
    (dict(mode="unified", k=2, softcap=-1.0), "#moe.unified<k = 2, softcap = -1.0>"),
    (dict(mode="expert", capacity=2, routed_scaling_factor=-2.5),
     "#moe.expert<capacity = 2, routed_scaling_factor = -2.5>"),
    (dict(mode="token", k=2, routed_scaling_factor=0.0),
     "#moe.token<k = 2, routed_scaling_factor = 0.0>"),
    (dict(mode="token", k=2, n_group=4), "#moe.token<k = 2, n_group = 4>"),
    (dict(mode="token", k=2, n_group=3, topk_group=1), "#moe.token<k = 2, n_group = 3, topk_group = 1>"),
    (dict(mode="token", k=5, n_group=4, topk_group=2), "#moe.token<k = 5, n_group = 4, topk_group = 2>"),
    (dict(mode="unified", k=1, n_group=4, topk_group=2), "#moe.unified<k = 1, n_group = 4, topk_group = 2>"),
]


@pytest.mark.parametrize("kwargs, attributes", SAME_RULES)
def test_python_and_the_verifier_reject_with_the_same_words(kwargs, attributes):
    """One definition of the router rules: usmoe.route and moe.route's
    verifier (what usmoe-opt runs) refuse the same configurations with the
    same message."""
    with pytest.raises(ValueError) as python_error:
        usmoe.route(np.zeros((1, 4, 8), np.float32), **kwargs)
    ir = (f"func.func @f(%l: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {{\n"
          f"  %g, %m = moe.route {attributes} %l : tensor<1x4x8xf32>\n"
          f"  return %g : tensor<1x4x8xf32>\n}}\n")
    with pytest.raises(ValueError) as verifier_error:
        usmoe.compile(ir, target="mlir")
    # Rules that need E or T are the op verifier's, the others the router
    # attribute's parser's: the same words either way.
    assert f"error: {python_error.value}" in str(verifier_error.value) or \
        f"'moe.route' op {python_error.value}" in str(verifier_error.value)


@pytest.mark.parametrize("logits, message", [
    (np.zeros((8,), np.float32), r"must be \[T, E\] or \[B, T, E\]"),
    (np.zeros((1, 2, 3, 4), np.float32), r"must be \[T, E\] or \[B, T, E\]"),
    (np.zeros((4, 8), np.float64), "float32, float16 or bfloat16, got float64"),
    (np.zeros((4, 8), np.int32), "got int32"),
    (np.zeros((8, 4), np.float32).T, "C-contiguous"),
    (np.zeros((4, 0), np.float32), "at least one expert"),
    ("logits", "must be an array"),
])
def test_bad_logits_raise_value_error(logits, message):
    with pytest.raises(ValueError, match=message):
        usmoe.route(logits, mode="unified", k=1)


@pytest.mark.skipif(__import__("shutil").which("nvidia-smi") is not None,
                    reason="a GPU may be present")
def test_cuda_without_gpu_is_a_clear_runtime_error(monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    monkeypatch.delenv("USMOE_GPU_EMULATOR", raising=False)
    with pytest.raises(RuntimeError, match="CUDA driver not available"):
        usmoe.route(np.zeros((1, 4, 8), np.float32), mode="token", k=2, device="cuda")


@pytest.mark.skipif(__import__("shutil").which("nvidia-smi") is not None,
                    reason="a GPU may be present")
def test_compile_for_cuda_without_gpu_is_a_clear_runtime_error(monkeypatch):
    monkeypatch.delenv("USMOE_GPU_EMULATOR", raising=False)
    with pytest.raises(RuntimeError, match="CUDA driver not available"):
        usmoe.compile("func.func @f() { return }", target="cuda", entry="f")


def test_compile_for_cuda_matches_cpu(gpu_path):
    ir = """
func.func @layer(%l: tensor<?x?x16xf32>, %h: tensor<?x32xf32>, %init: tensor<?x32xf32>)
    -> (tensor<?x32xf32>, tensor<17xi32>, tensor<?xi32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x16xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x16xf32>
  %x = moe.dispatch %h, %i : tensor<?x32xf32>, tensor<?xi32>
  %y = moe.combine %x, %i, %w into %init offsets %o : tensor<?x32xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xf32>, tensor<17xi32>
  return %y, %o, %i : tensor<?x32xf32>, tensor<17xi32>, tensor<?xi32>
}
"""
    rng = np.random.default_rng(8)
    args = [rng.normal(size=(2, 50, 16)).astype(np.float32),
            rng.normal(size=(100, 32)).astype(np.float32),
            rng.normal(size=(100, 32)).astype(np.float32)]
    gpu = usmoe.compile(ir, target="cuda", entry="layer")(args)
    cpu = usmoe.compile(ir, target="cpu", entry="layer")(args)
    np.testing.assert_array_equal(gpu[1], cpu[1])
    np.testing.assert_array_equal(gpu[2], cpu[2])
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-5, atol=1e-5)


IR = """
func.func @scores(%l: tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
  %u = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<?x?x4xf32>
  %g, %m = moe.select_global %u n = 3 : tensor<?x?x4xf32>
  return %g : tensor<?x?x4xf32>
}
"""


def test_compile_to_mlir_fuses():
    text = usmoe.compile(IR, target="mlir")
    assert "moe.route #moe.unified<" in text and "moe.unified_score" not in text


def test_compile_to_llvm():
    assert "llvm.func @scores" in usmoe.compile(IR, target="llvm")


def test_compile_to_cpu_callable(worked_logits):
    fn = usmoe.compile(IR, target="cpu", entry="scores")
    (gates,) = fn([worked_logits[None]])
    want = reference.route(worked_logits, mode="unified", budget=3).gates
    np.testing.assert_allclose(gates, want, rtol=1e-6)


def test_compile_errors_carry_diagnostics():
    with pytest.raises(ValueError, match=r"expects k in \[1, 4\]"):
        usmoe.compile(IR.replace("moe.select_global %u n = 3", "moe.select_topk %u k = 7"),
                      target="mlir")
    with pytest.raises(ValueError, match="could not parse"):
        usmoe.compile("func.func @f(", target="mlir")
    with pytest.raises(ValueError, match="invalid pass pipeline"):
        usmoe.compile(IR, pipeline="no-such-pass", target="mlir")
    with pytest.raises(ValueError, match="entry"):
        usmoe.compile(IR, target="cpu")
    with pytest.raises(ValueError, match="no function named 'nope'"):
        usmoe.compile(IR, target="cpu", entry="nope")


def test_torch_tensors_in_f32_and_bf16():
    torch = pytest.importorskip("torch")
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    got = usmoe.route(x, mode="token", k=2)
    want = reference.route(x.numpy(), mode="token", k=2)
    np.testing.assert_array_equal(got.mask, want.mask)
    xb = x.to(torch.bfloat16)
    got = usmoe.route(xb, mode="unified", k=1.5)
    # The bf16 values, widened exactly to f32, are what the router scores.
    want = reference.route(xb.float().numpy(), mode="unified", k=1.5)
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_allclose(got.gates, want.gates, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opts", [dict(mode="expert", capacity=3), dict(mode="token", k=2),
                                  dict(mode="unified", k=2.0)])
def test_bf16_every_mode(opts):
    """bf16 logits in every mode (the JIT needs __truncsfbf2 for Expert Choice)."""
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 37, 8, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    got = usmoe.route(x, **opts)
    want = reference.route(x.float().numpy(), **opts)
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_allclose(got.gates, want.gates, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(not __import__("os").path.exists("/usr/local/cuda/bin/ptxas"),
                    reason="needs the CUDA toolkit")
@pytest.mark.parametrize("target, suffix", [("ptx", ".ptx"), ("cubin", ".cubin"),
                                            ("fatbin", ".fatbin")])
def test_compile_for_gpu(target, suffix):
    ir = """
func.func @router(%l: tensor<?x?x64xbf16>) -> (tensor<?x?x64xf32>, tensor<?x?x64xi1>) {
  %g, %m = moe.route #moe.token<k = 8, renormalize> %l : tensor<?x?x64xbf16>
  return %g, %m : tensor<?x?x64xf32>, tensor<?x?x64xi1>
}
"""
    art = usmoe.compile(ir, target=target)
    assert list(art.files) == ["usmoe_kernels" + suffix]
    assert len(art.image) > 1000
    kernel = art.kernels["route_token_0"]
    assert kernel["kind"] == "route_token" and kernel["k"] == 8 and kernel["block"] == [128, 1, 1]
    if target == "ptx":
        assert ".target sm_90" in art.ptx and "shfl.sync.bfly" in art.ptx


@pytest.mark.skipif(not __import__("os").path.exists("/usr/local/cuda/bin/ptxas"),
                    reason="needs the CUDA toolkit")
def test_compile_for_gpu_reports_unsupported_ops():
    ir = """
func.func @f(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %p = moe.token_softmax %l : tensor<?x?x8xf32>
  return %p : tensor<?x?x8xf32>
}
"""
    with pytest.raises(ValueError, match="not supported on the GPU path yet"):
        usmoe.compile(ir, target="ptx")


@pytest.mark.parametrize("opts", [dict(mode="token", k=2, renormalize=True),
                                  dict(mode="expert", capacity_factor=1.25, k=2),
                                  dict(mode="unified", k=1.5),
                                  dict(mode="unified", budget=7, expert_score="softmax_tokens")])
# B * T = 99 and 128: the plan in one block (one tile, E = 64: two warps; E =
# 40: two warps, partly idle); 200 and 700: count_scan (the tile done last
# scans) and fill over 2 and 6 tiles.
# (5, 1, 64): one-token sequences (unified: the decode kernel).
@pytest.mark.parametrize("shape", [(3, 33, 64), (1, 128, 40), (2, 100, 40), (4, 175, 8),
                                   (5, 1, 64)])
def test_cuda_matches_cpu(opts, shape, gpu_path):
    logits = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    assert_gpu_routes_like_cpu(logits, opts)


def assert_gpu_routes_like_cpu(logits, opts):
    """The GPU path's plan equals the CPU path's: selections, offsets and ids
    exactly, gates and weights within 1e-6."""
    gpu = usmoe.route(logits, device="cuda", **opts)
    cpu = usmoe.route(logits, device="cpu", **opts)
    np.testing.assert_array_equal(gpu.mask, cpu.mask)
    np.testing.assert_allclose(gpu.gates, cpu.gates, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(gpu.expert_offsets, cpu.expert_offsets)
    np.testing.assert_array_equal(gpu.token_ids, cpu.token_ids)
    np.testing.assert_allclose(gpu.weights, cpu.weights, rtol=1e-6, atol=1e-7)
    if opts["mode"] == "token":
        np.testing.assert_array_equal(gpu.topk_ids, cpu.topk_ids)
        np.testing.assert_allclose(gpu.topk_weights, cpu.topk_weights, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(torch_with_gpu() is None, reason="needs PyTorch with a GPU")
@pytest.mark.parametrize("opts", [dict(mode="token", k=8, renormalize=True),
                                  dict(mode="unified", k=1.5)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_torch_cuda_tensors_stay_on_the_gpu(opts, dtype):
    torch = torch_with_gpu()
    logits = torch.randn(2, 300, 64, device="cuda").to(getattr(torch, dtype))
    gpu = usmoe.route(logits, device="cuda", **opts)
    cpu = usmoe.route(logits.cpu(), device="cpu", **opts)
    for name in ("gates", "mask", "expert_offsets", "token_ids", "weights"):
        value = getattr(gpu, name)
        assert isinstance(value, torch.Tensor) and value.is_cuda, name
        host = value.cpu().numpy()
        if name in ("gates", "weights"):
            np.testing.assert_allclose(host, getattr(cpu, name), rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(host, getattr(cpu, name))
    if opts["mode"] == "token":
        np.testing.assert_array_equal(gpu.topk_ids.cpu().numpy(), cpu.topk_ids)


def test_bias_values_are_an_argument_not_a_recompile():
    logits = np.random.default_rng(2).normal(size=(1, 6, 8)).astype(np.float32)
    first = usmoe.route(logits, mode="token", k=2, bias=np.zeros(8, np.float32))
    before = usmoe.cache_info()["compilations"]
    # A large bias on expert 7 pulls it into every token's top-2.
    bias = np.zeros(8, np.float32)
    bias[7] = 10.0
    second = usmoe.route(logits, mode="token", k=2, bias=bias)
    assert usmoe.cache_info()["compilations"] == before
    assert second.mask[..., 7].all() and not first.mask[..., 7].all()
    # The gate is still sigmoid(L): the bias only moves the selection.
    sig = 1 / (1 + np.exp(-logits[..., 7].astype(np.float64)))
    np.testing.assert_allclose(second.gates[..., 7], sig, rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="unified", k=2, bias=np.zeros(8)), "'bias' does not apply to unified routing"),
    (dict(mode="token", k=2, bias=np.zeros(7)), r"one value per expert \(8\), got 7"),
    (dict(mode="token", k=2, bias=np.zeros((2, 8))), "must be a vector"),
    (dict(mode="token", k=2, bias=np.full(8, np.nan)), "bias must be finite"),
])
def test_bad_bias(kwargs, message):
    with pytest.raises(ValueError, match=message):
        usmoe.route(np.zeros((1, 4, 8), np.float32), **kwargs)


def test_another_interpreter_is_told_which_one_to_use():
    from usmoe import _build_info
    from usmoe._native_loader import wrong_interpreter_message
    message = wrong_interpreter_message("NumPy is missing")
    assert "NumPy is missing" in message
    assert f"PYTHONPATH=build/python_packages {_build_info.PYTHON}" in message
    assert __import__("os").path.exists(_build_info.PYTHON)


def test_compile_takes_a_module_object_or_text_only():
    class Module:
        """Stands in for mlir.ir.Module: it has .operation and prints as IR."""
        operation = None

        def __str__(self):
            return IR

    text = usmoe.compile(Module(), target="mlir")
    assert "moe.route #moe.unified<" in text
    with pytest.raises(ValueError, match="MLIR text or an MLIR module, got int"):
        usmoe.compile(42, target="mlir")


@pytest.mark.parametrize("device_setup", ["cpu", "emulator"])
def test_capacity_factor_overflow_clamps_to_t(device_setup, monkeypatch):
    """C = clamp(ceil(factor * T * k / E), 1, T): a product beyond int64 is
    T, at run time (dynamic T) and when folded."""
    device = "cpu"
    if device_setup == "emulator":
        monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
        device = "cuda"
    logits = np.random.default_rng(3).normal(size=(2, 5, 8)).astype(np.float32)
    plan = usmoe.route(logits, mode="expert", capacity_factor=1e300, k=2, device=device)
    assert plan.mask.all()
    assert plan.token_ids.size == 2 * 5 * 8


@pytest.mark.parametrize("chip, features, message", [
    ("", "+ptx80", "chip must be sm_XY"),
    ("sm_xyz", "+ptx80", "chip must be sm_XY"),
    ("sm_50", "+ptx80", "older than sm_75"),
    ("sm_90", "ptx80", r"features must be \+ptxNN"),
])
def test_bad_gpu_targets_are_value_errors(chip, features, message):
    """Caught before LLVM's NVPTX backend (which crashed or aborted on these)."""
    ir = ("func.func @f(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {\n"
          "  %g, %m = moe.route #moe.token<k = 2> %l : tensor<?x?x8xf32>\n"
          "  return %g : tensor<?x?x8xf32>\n}\n")
    with pytest.raises(ValueError, match=message):
        usmoe.compile(ir, target="ptx", chip=chip, features=features)


TOP1_IR = """
func.func @f(%l: tensor<?x?x4xf32>) -> tensor<?x?x4xi1> {
  %g, %m = moe.route #moe.token<k = 1> %l : tensor<?x?x4xf32>
  return %m : tensor<?x?x4xi1>
}
"""


@pytest.mark.parametrize("argument, error, message", [
    (None, TypeError, "argument 0 must be a NumPy array, got NoneType"),
    (1.5, TypeError, "argument 0 must be a NumPy array, got float"),
    (np.ones((1, 2, 4), np.int32), TypeError, "argument 0 must hold f32 elements, got int32"),
    (np.ones((1, 2, 4)), TypeError, "argument 0 must hold f32 elements, got float64"),
    (np.ones((1, 2, 4), ">f4"), ValueError, "not in the machine's byte order"),
])
def test_compiled_functions_check_their_arguments(argument, error, message):
    """Wrong arguments of a compiled function are exceptions (None and
    floats crashed the interpreter; int32 bits were read as floats)."""
    fn = usmoe.compile(TOP1_IR, target="cpu", entry="f")
    with pytest.raises(error, match=message):
        fn([argument])
    logits = np.array([[[0, 3, 1, 2], [5, 1, 1, 1]]], np.float32)
    np.testing.assert_array_equal(fn([logits])[0], logits == logits.max(-1, keepdims=True))


def test_argument_checks_hold_after_accepted_calls():
    """The binding remembers dtypes that passed (a decode step skips the
    check): other dtypes are still refused after many accepted calls,
    including a big-endian f32, which has the same kind and size."""
    fn = usmoe.compile(TOP1_IR, target="cpu", entry="f")
    logits = np.array([[[0, 3, 1, 2], [5, 1, 1, 1]]], np.float32)
    for _ in range(3):
        fn([logits])
    with pytest.raises(ValueError, match="not in the machine's byte order"):
        fn([logits.astype(">f4")])
    with pytest.raises(TypeError, match="argument 0 must hold f32 elements, got int32"):
        fn([logits.astype(np.int32)])
    with pytest.raises(TypeError, match="argument 0 must hold f32 elements, got float16"):
        fn([logits.astype(np.float16)])


def test_repeated_router_calls_take_the_short_path_safely():
    """A Router repeats its last CPU call's lookups for logits of the same
    dtype object and shape (a decode step): new values in the same array
    route anew, other dtypes, layouts and cleared caches take the full
    path, which converts or refuses as before."""
    rng = np.random.default_rng(11)
    router = usmoe.Router(mode="token", k=2)
    x = rng.normal(size=(1, 16)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(router(x).mask, usmoe.route(x, mode="token", k=2).mask)
        x[...] = rng.normal(size=x.shape)  # same array, new values
    assert router._last_host_call is not None
    big = x.astype(">f4")
    np.testing.assert_array_equal(router(big).gates, usmoe.route(x, mode="token", k=2).gates)
    wide = rng.normal(size=(16, 2)).astype(np.float32).T  # [2, 16], not C-contiguous
    router(np.ascontiguousarray(wide))
    with pytest.raises(ValueError, match="C-contiguous"):
        router(wide)
    usmoe.clear_cache()
    np.testing.assert_array_equal(router(x).mask, usmoe.route(x, mode="token", k=2).mask)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        router(x.astype(np.float64))


def test_big_endian_logits_are_read_by_value():
    logits = np.random.default_rng(5).normal(size=(2, 6, 8)).astype(np.float32)
    want = usmoe.route(logits, mode="token", k=2)
    got = usmoe.route(logits.astype(">f4"), mode="token", k=2)
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_array_equal(got.gates, want.gates)


@pytest.mark.parametrize("device_setup", ["cpu", "emulator"])
def test_failed_run_time_checks_are_value_errors(device_setup, monkeypatch):
    """A budget only the run time can check (dynamic T) used to abort the
    interpreter; now the call raises and the process goes on."""
    if device_setup == "emulator":
        monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    ir = ("func.func @f(%l: tensor<?x?x4xf32>) -> tensor<?x?x4xi1> {\n"
          "  %g, %m = moe.route #moe.unified<n = 9> %l : tensor<?x?x4xf32>\n"
          "  return %m : tensor<?x?x4xi1>\n}\n")
    fn = usmoe.compile(ir, target="cpu" if device_setup == "cpu" else "cuda", entry="f")
    with pytest.raises(ValueError, match="a run-time check of the compiled code failed: "
                                         r"moe: unified budget n exceeds T \* E of the input"):
        fn([np.ones((1, 2, 4), np.float32)])
    assert fn([np.ones((1, 3, 4), np.float32)])[0].sum() == 9


def test_deeply_nested_ir_is_a_value_error_not_a_stack_overflow():
    deep = "func.func @f() attributes {a = " + "[" * 20000 + "]" * 20000 + "} { return }"
    with pytest.raises(ValueError, match="nests brackets more than 1000 levels deep"):
        usmoe.compile(deep, target="mlir")
    fine = "func.func @f() attributes {a = " + "[" * 200 + "]" * 200 + "} { return }"
    assert "func.func @f()" in usmoe.compile(fine, target="mlir")


def test_plan_cost_report():
    logits = np.random.default_rng(5).normal(size=(2, 10, 8)).astype(np.float32)
    plan = usmoe.route(logits, mode="unified", k=1.5)
    assert plan.selected_pairs == 2 * 15 == int(plan.mask.sum())
    np.testing.assert_array_equal(plan.expert_load, plan.mask.sum(axis=(0, 1)))
    cost = plan.cost(hidden_size=64, ffn_size=128)
    assert cost["routed_flops"] == 30 * 6 * 64 * 128
    assert cost["expert_load"] == plan.expert_load.tolist()
    assert cost["imbalance"] == pytest.approx(plan.expert_load.max() / plan.expert_load.mean())
    half = usmoe.route(logits, mode="unified", k=0.75)  # floor(7.5) = 7 per sequence
    assert half.cost(64, 128)["routed_flops"] == 14 * 6 * 64 * 128


def test_results_are_owned_arrays_without_copies():
    """Results are NumPy arrays over the compiled code's own allocation
    (no copy): writable, independent between calls, alive as long as any
    array viewing them, their memory reused only after they are gone."""
    import gc
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(1, 4096, 64)).astype(np.float32)  # > 1 MB results
    router = usmoe.Router(mode="token", k=2)
    first, second = router(logits), router(logits)
    assert first.gates.flags["WRITEABLE"] and first.gates.flags["C_CONTIGUOUS"]
    assert not np.shares_memory(first.gates, second.gates)
    want = second.gates.copy()
    first.gates[:] = -1.0  # writing one result leaves the other alone
    np.testing.assert_array_equal(second.gates, want)
    view = second.gates[0, :3]
    del second
    gc.collect()
    for _ in range(3):  # reuse freed blocks; the view keeps its own alive
        router(logits)
    np.testing.assert_array_equal(view, want[0, :3])


@pytest.mark.parametrize("e", [1, 3, 8, 16])
def test_token_choice_routes_several_tokens_a_warp(e, gpu_path):
    """E <= 16: the GPU kernel routes 32 / E' tokens a warp (E' = E rounded
    up to a power of two lanes a token), the last warp partly past the rows
    (7 and 300 rows); selections, gates, plans and top-k lists equal the CPU
    path's, with renormalization, all E picked, and a bias."""
    rng = np.random.default_rng(e)
    bias = rng.normal(size=e).astype(np.float32)
    for shape in [(1, 7, e), (2, 150, e)]:
        logits = rng.normal(size=shape).astype(np.float32)
        for opts in (dict(mode="token", k=min(2, e), renormalize=True),
                     dict(mode="token", k=e), dict(mode="token", k=1, bias=bias)):
            assert_gpu_routes_like_cpu(logits, opts)
