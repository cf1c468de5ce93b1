"""usmoe.torch.moe_layer and usmoe.nn.MoE (PyTorch >= 2.4, the venv tier)."""

import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.library, "custom_op"):
    pytest.skip("usmoe.torch needs PyTorch >= 2.4", allow_module_level=True)

import usmoe.nn  # noqa: E402
import usmoe.torch as ut  # noqa: E402

ROUTERS = [
    dict(mode="token", k=2, renormalize=True),
    dict(mode="expert", capacity=3),
    dict(mode="unified", k=1.5, routed_scaling_factor=2.0),
    dict(mode="unified", k=1.0, alpha=0.3, expert_score="softmax_tokens", softcap=3.0),
]


def tensors(seed, b=2, t=5, e=4, d=6, f=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    return (rand(b * t, d), rand(b, t, e, scale=2.0), rand(e, d, f, scale=0.4),
            rand(e, d, f, scale=0.4), rand(e, f, d, scale=0.4))


@pytest.mark.parametrize("options", ROUTERS)
def test_forward_is_the_spec_layer(options):
    hidden, logits, w1, w3, w2 = tensors(1)
    y = ut.moe_layer(hidden, logits, w1, w3, w2, **options)
    _, mask = ut.route(logits, **options)
    want = ut.layer_function(hidden, logits, mask, w1, w3, w2, options)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", ROUTERS)
def test_gradcheck_on_the_f64_reference_path(options):
    inputs = [t.requires_grad_() for t in tensors(2, b=1, t=4, e=3, d=3, f=4,
                                                   dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda *a: ut.moe_layer(*a, **options), inputs)


@pytest.mark.parametrize("options", ROUTERS)
def test_f32_gradients_match_f64(options):
    base = tensors(3)
    grads = []
    for dtype in (torch.float32, torch.float64):
        inputs = [t.detach().to(dtype).clone().requires_grad_() for t in base]
        y = ut.moe_layer(*inputs, **options)
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape)).sum().backward()
        grads.append([t.grad.double() for t in inputs])
    for g32, g64 in zip(*grads):
        torch.testing.assert_close(g32, g64, rtol=1e-3, atol=1e-5)


def test_module_trains():
    torch.manual_seed(0)
    moe = usmoe.nn.MoE(8, 16, 4, mode="token", k=2, renormalize=True)
    x = torch.randn(2, 10, 8)
    target = torch.randn(2, 10, 8)
    optimizer = torch.optim.SGD(moe.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = ((moe(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in moe.parameters())
    assert losses[-1] < 0.9 * losses[0]


def test_module_is_the_spec_layer_on_sequences():
    torch.manual_seed(1)
    moe = usmoe.nn.MoE(6, 8, 4, mode="unified", k=1.5)
    x = torch.randn(3, 7, 6)
    logits = x @ moe.gate.t()
    _, mask = ut.route(logits, mode="unified", k=1.5)
    want = ut.layer_function(x.reshape(-1, 6), logits, mask, moe.w1, moe.w3, moe.w2,
                             dict(mode="unified", k=1.5))
    torch.testing.assert_close(moe(x), want.reshape(3, 7, 6), rtol=1e-5, atol=1e-5)


def test_module_compiles_without_graph_breaks():
    moe = usmoe.nn.MoE(6, 8, 4, mode="token", k=2)
    x = torch.randn(5, 6)
    compiled = torch.compile(moe, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), moe(x))


@pytest.mark.parametrize("make, error, message", [
    (lambda: usmoe.nn.MoE(6, 8, 4, mode="token", k=9), ValueError,
     r"expects k in \[1, 4\]"),
    (lambda: usmoe.nn.MoE(0, 8, 4, mode="token", k=1), ValueError, "sizes must be >= 1"),
    (lambda: usmoe.nn.MoE(6, 8, 4, mode="token", k=1)(torch.randn(5, 7)), ValueError,
     r"hidden must be \[T, 6\]"),
    (lambda: usmoe.nn.MoE(6, 8, 4, mode="token", k=1)(torch.randn(5, 6, dtype=torch.float64)),
     ValueError, "the weights' dtype"),
])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
