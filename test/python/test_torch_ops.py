"""usmoe.torch: the router as a torch.library custom op (PyTorch >= 2.4:
the NumPy-2 venv tier of scripts/test.sh installs it from PyPI; Debian's
1.13 skips these tests)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.library, "custom_op"):
    pytest.skip("usmoe.torch needs PyTorch >= 2.4", allow_module_level=True)

import usmoe  # noqa: E402
import usmoe.torch as ut  # noqa: E402

ROUTERS = [
    dict(mode="token", k=2),
    dict(mode="token", k=3, renormalize=True, routed_scaling_factor=2.5),
    dict(mode="token", k=2, softcap=3.0),
    dict(mode="expert", capacity=3),
    dict(mode="expert", capacity_factor=1.25, k=2, softcap=2.0),
    dict(mode="unified", k=1.5),
    dict(mode="unified", k=2.0, alpha=0.3, expert_score="softmax_tokens"),
    dict(mode="unified", k=1.0, alpha=0.8, routed_scaling_factor=0.5, softcap=4.0),
]


def logits_for(seed, shape=(2, 9, 8), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 2).to(dtype)


@pytest.mark.parametrize("options", ROUTERS)
def test_forward_is_the_compiled_router(options):
    x = logits_for(1)
    gates, mask = ut.route(x, **options)
    plan = usmoe.route(x.numpy(), **options)
    np.testing.assert_array_equal(mask.numpy(), plan.mask)
    np.testing.assert_array_equal(gates.numpy(), plan.gates)
    assert gates.dtype == torch.float32 and mask.dtype == torch.bool


@pytest.mark.parametrize("options", ROUTERS)
def test_gate_function_is_the_compiled_gates(options):
    """The function the backward differentiates gives the compiled gates."""
    x = logits_for(2)
    gates, mask = ut.route(x, **options)
    again = ut.gate_function(x, mask, options)
    torch.testing.assert_close(again, gates, rtol=1e-6, atol=1e-7)


def test_gate_function_with_bias_is_the_compiled_gates():
    x, bias = logits_for(3, (1, 7, 16)), torch.randn(16) * 0.1
    options = dict(mode="token", k=4, renormalize=True, n_group=4, topk_group=2,
                   routed_scaling_factor=2.5)
    gates, mask = ut.route(x, bias=bias, **options)
    torch.testing.assert_close(ut.gate_function(x, mask, options, biased=True), gates,
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options", ROUTERS)
def test_gradcheck_on_the_f64_reference_path(options):
    x = logits_for(4, (1, 5, 6), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ut.route(t, **options)[0], (x,))


@pytest.mark.parametrize("options", ROUTERS)
def test_f32_gradient_matches_the_f64_one(options):
    x = logits_for(5)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    grads = []
    for dtype in (torch.float32, torch.float64):
        t = x.detach().to(dtype).clone().requires_grad_()
        (ut.route(t, **options)[0] * weights.to(dtype)).sum().backward()
        grads.append(t.grad.to(torch.float64))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_unselected_pairs_get_no_gradient_through_token_choice():
    """Token Choice without renormalization: gate = P at selected pairs, so
    d(sum of gates)/dL is P-weighted but a token's gradient comes only from
    its own selected experts' softmax terms."""
    x = logits_for(6).requires_grad_()
    gates, mask = ut.route(x, mode="token", k=1)
    gates.sum().backward()
    p = torch.softmax(x.detach(), -1)
    chosen = (p * mask).sum(-1, keepdim=True)
    want = torch.where(mask, chosen * (1 - p), -chosen * p)
    torch.testing.assert_close(x.grad, want, rtol=1e-5, atol=1e-6)


def test_torch_compile_fullgraph():
    x = logits_for(7)

    @torch.compile(fullgraph=True, backend="eager")
    def loss(t):
        gates, mask = ut.route(t, mode="unified", k=1.5)
        return (gates * 2).sum() + mask.sum()

    eager_gates, eager_mask = ut.route(x, mode="unified", k=1.5)
    torch.testing.assert_close(loss(x), (eager_gates * 2).sum() + eager_mask.sum())
    explanation = torch._dynamo.explain(lambda t: ut.route(t, mode="token", k=2)[0].sum())(x)
    assert explanation.graph_break_count == 0


def test_the_op_is_registered():
    gates, mask = torch.ops.usmoe.route(logits_for(8), None, '{"k": 2, "mode": "token"}')
    assert gates.shape == mask.shape == (2, 9, 8)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ut.route(np.zeros((2, 4), np.float32), mode="token", k=1), TypeError,
     "logits must be a torch.Tensor"),
    (lambda: ut.route(torch.zeros(2, 4), mode="token", kk=1), TypeError,
     "unknown router options"),
    (lambda: ut.route(torch.zeros(2, 4), mode="token", k=2, alpha=0.5), ValueError,
     "'alpha' does not apply to token routing"),
    (lambda: ut.route(torch.zeros(2, 4), bias=[0.0] * 4, mode="token", k=2), TypeError,
     "bias must be a torch.Tensor"),
    (lambda: ut.route(torch.zeros(2, 4, dtype=torch.int32), mode="token", k=2), ValueError,
     "float32, float16 or bfloat16"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
