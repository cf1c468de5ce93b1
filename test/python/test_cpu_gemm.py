"""The CPU expert GEMMs on oneDNN (libusmoe_cpu_runtime.so,
expert-gemm=onednn): against the generated loops and the reference, with
any thread count, in both layouts, on empty plans; and their settings."""

import numpy as np
import pytest

import usmoe
from usmoe import cpu, reference

pytestmark = pytest.mark.skipif(cpu.runtime_path() is None,
                                reason="usmoe was built without oneDNN")


def _layer_inputs(rng, e, d, f, t):
    w = [rng.normal(0, 0.05, shape).astype(np.float32)
         for shape in ((e, d, f), (e, d, f), (e, f, d))]
    return w, rng.normal(size=(t, d)).astype(np.float32), \
        rng.normal(size=(t, e)).astype(np.float32)


def _bf16(arrays):
    torch = pytest.importorskip("torch")
    return [torch.from_numpy(a).bfloat16() for a in arrays]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_results_do_not_depend_on_the_thread_count(dtype):
    """Small expert segments and a long K: where oneDNN's own threading
    would split the sum over K, the runtime's blocks keep every output one
    GEMM's full sum."""
    rng = np.random.default_rng(1)
    w, hidden, logits = _layer_inputs(rng, 16, 1024, 320, 24)
    if dtype == "bfloat16":
        w, (hidden,) = _bf16(w), _bf16([hidden])
    layer = usmoe.MoeLayer(*w, mode="token", k=2)
    outputs = []
    try:
        for threads in (1, 2, 3):
            cpu.set_num_threads(threads)
            assert cpu.get_num_threads() == threads
            y = layer(hidden, logits)
            outputs.append(y.float().numpy() if dtype == "bfloat16" else y)
    finally:
        cpu.set_num_threads(0)
    for y in outputs[1:]:
        np.testing.assert_array_equal(y, outputs[0])


@pytest.mark.parametrize("options", [dict(mode="token", k=2, renormalize=True),
                                     dict(mode="unified", k=1.5),
                                     dict(mode="expert", capacity_factor=1.0, k=2)])
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_onednn_matches_the_loops_and_the_reference(options, dtype, tolerance, monkeypatch):
    rng = np.random.default_rng(2)
    w, hidden, logits = _layer_inputs(rng, 8, 96, 200, 300)  # D, F not multiples of blocks
    want = reference.moe_layer(hidden, reference.route(logits, **options), *w)
    if dtype == "bfloat16":
        w, (hidden,) = _bf16(w), _bf16([hidden])
    results = {}
    for gemm in ("loops", "onednn"):
        monkeypatch.setenv(cpu.ENV, gemm)
        y = usmoe.MoeLayer(*w, **options)(hidden, logits)
        results[gemm] = y.float().numpy() if dtype == "bfloat16" else y
    np.testing.assert_allclose(results["onednn"], results["loops"], rtol=tolerance,
                               atol=tolerance)
    np.testing.assert_allclose(results["onednn"], want, rtol=max(tolerance, 1e-4),
                               atol=max(tolerance, 1e-4))


def test_an_empty_plan_gives_init(monkeypatch):
    """k = 0 selects nothing (M = 0): the runtime runs no GEMM and the
    layer returns init."""
    monkeypatch.setenv(cpu.ENV, "onednn")
    rng = np.random.default_rng(3)
    w, hidden, logits = _layer_inputs(rng, 4, 16, 24, 5)
    init = rng.normal(size=hidden.shape).astype(np.float32)
    y = usmoe.MoeLayer(*w, mode="unified", k=0.0)(hidden, logits, init=init)
    np.testing.assert_array_equal(y, init)


def test_settings_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        cpu.set_num_threads(-1)
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        cpu.set_num_threads(True)
    monkeypatch.setenv(cpu.ENV, "blas")
    with pytest.raises(ValueError, match="USMOE_CPU_GEMM must be 'onednn' or 'loops', got 'blas'"):
        cpu.expert_gemm()
    monkeypatch.setenv(cpu.ENV, "loops")
    assert cpu.expert_gemm() == "loops"
    monkeypatch.delenv(cpu.ENV)
    assert cpu.expert_gemm() == "onednn"


def test_the_jit_rejects_an_unknown_gemm():
    from usmoe._native_loader import native
    with pytest.raises(ValueError, match="expert_gemm must be 'loops' or 'onednn'"):
        native().JitFunction.for_cpu("func.func @f() { return }", "f", "mkl", "")


def test_concurrent_callers_get_their_own_results():
    """Layers called from several Python threads at once (the JIT releases
    the GIL) share the runtime's worker pool and get what they get alone."""
    import threading
    cases = []
    for seed in range(4):
        w, hidden, logits = _layer_inputs(np.random.default_rng(seed), 8, 256, 384, 96)
        layer = usmoe.MoeLayer(*w, mode="token", k=2)
        cases.append((layer, hidden, logits, layer(hidden, logits)))
    results = [None] * len(cases)

    def work(i):
        layer, hidden, logits, _ = cases[i]
        for _ in range(3):
            results[i] = layer(hidden, logits)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (_, _, _, alone), together in zip(cases, results):
        np.testing.assert_array_equal(together, alone)


def _identity_layer(gates):
    """A layer whose expert FFN returns silu(g) for the gate values `gates`
    (x = e_0, W1 row 0 = gates, W3 row 0 = ones, W2 = identity), so the
    output shows the runtime's silu value by value."""
    n = len(gates)
    w1 = np.zeros((2, n, n), np.float32)
    w3 = np.zeros((2, n, n), np.float32)
    w1[:, 0] = gates
    w3[:, 0] = 1.0
    w2 = np.broadcast_to(np.eye(n, dtype=np.float32), (2, n, n)).copy()
    hidden = np.zeros((3, n), np.float32)
    hidden[:, 0] = 1.0
    return usmoe.MoeLayer(w1, w3, w2, mode="token", k=1, renormalize=True), hidden


def test_silu_at_extreme_gates(monkeypatch):
    """The runtime's vectorized exp: silu(g) = g / (1 + exp(-g)) within an
    ulp or two of the reference's (f32 expf) across the f32 range, where
    exp(-g) comes near overflow, overflows or underflows included."""
    gates = np.array([-1e30, -100, -88.8, -88.7, -88.5, -88.0, -87.5, -86.9, -50, -10, -1.5, -1e-3, 0.0,
                      1e-3, 0.7, 3.0, 30, 86.9, 87.5, 88.5, 100, 1e30], np.float32)
    monkeypatch.setenv(cpu.ENV, "onednn")
    layer, hidden = _identity_layer(gates)
    logits = np.zeros((3, 2), np.float32)
    y = layer(hidden, logits)
    with np.errstate(over="ignore"):
        want = reference.silu(gates)
    for row in y:
        np.testing.assert_allclose(row, want, rtol=3e-7, atol=0)


@pytest.mark.parametrize("gate, want", [(np.inf, np.inf), (-np.inf, np.nan), (np.nan, np.nan)])
def test_silu_of_special_gates_as_the_loops(gate, want, monkeypatch):
    """inf, -inf (inf / inf) and NaN gates give what the generated loops
    and the reference give (one gate: no 0 * inf in the identity GEMM)."""
    logits = np.zeros((3, 2), np.float32)
    results = {}
    for gemm in ("loops", "onednn"):
        monkeypatch.setenv(cpu.ENV, gemm)
        layer, hidden = _identity_layer(np.array([gate], np.float32))
        results[gemm] = layer(hidden, logits)
    np.testing.assert_array_equal(results["onednn"], results["loops"])
    np.testing.assert_array_equal(results["onednn"], np.full((3, 1), want, np.float32))
