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


def _with(values, index, change):
    """`values` with values[index] replaced by change(values[index])."""
    values = list(values)
    values[index] = change(values[index])
    return values


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
    # A transposed view is refused, not silently copied on every call.
    (lambda: ut.moe_layer(*_with(tensors(5), 2, lambda w: w.transpose(1, 2).contiguous()
                                 .transpose(1, 2)), mode="token", k=1),
     ValueError, r"w1 must be contiguous \(call .contiguous\(\); a transposed expert weight "
                 r"is weight_layout='out_in'\)"),
    (lambda: ut.moe_layer(*_with(tensors(5), 3, lambda w: w.half()), mode="token", k=1),
     ValueError, "w1, w3, w2 must have the same dtype"),
    (lambda: ut.moe_layer(*_with(tensors(5), 0, lambda h: h.half()), mode="token", k=1),
     ValueError, "hidden must have the weights' dtype"),
    (lambda: ut.moe_layer(*_with(tensors(5), 3, lambda w: w[:, :-1].contiguous()),
                          mode="token", k=1),
     ValueError, r"w3 must be \[E, D, F\] = \(4, 6, 8\)"),
    (lambda: ut.moe_layer(*_with(tensors(5), 0, lambda h: h[:-1]), mode="token", k=1),
     ValueError, r"hidden must be \[B\*T, D\]"),
    (lambda: ut.moe_layer(*tensors(5)[:2], torch.randn(4, 12, 6), None, tensors(5)[4],
                          weight_layout="out_in", mode="token", k=1),
     ValueError, r"fused gate/up w1 must be \[E, 2F, D\] = \(4, 12, 8\)"),
])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()


def _layouts(w1, w3, w2):
    """The same experts as (w1, w3, w2, weight_layout) in each layout the op
    reads: separate or fused gate/up (w3=None), in_out or out_in."""
    t1, t3, t2 = (w.transpose(1, 2).contiguous() for w in (w1, w3, w2))
    return [(w1, w3, w2, "in_out"), (torch.cat([w1, w3], 2), None, w2, "in_out"),
            (t1, t3, t2, "out_in"), (torch.cat([t1, t3], 1), None, t2, "out_in")]


@pytest.mark.parametrize("options", ROUTERS[::2])
def test_weight_layouts_forward_and_backward_alike(options):
    """Every layout gives the same output (bitwise on the generated loops,
    test_moe_layer.py; within f32 round-off on oneDNN, whose kernels differ
    by layout), and the gradients of a fused or transposed weight are those
    of the separate in_out weights, laid out the same way."""
    hidden, logits, w1, w3, w2 = tensors(7)
    outputs, grads = [], []
    for a, b, c, layout in _layouts(w1, w3, w2):
        weights = [None if w is None else w.detach().clone().requires_grad_() for w in (a, b, c)]
        y = ut.moe_layer(hidden, logits, *weights, weight_layout=layout, **options)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        outputs.append(y.detach())
        grads.append(ut.expert_views(*[None if w is None else w.grad for w in weights],
                                     weight_layout=layout))
    for y, g in zip(outputs[1:], grads[1:]):
        torch.testing.assert_close(y, outputs[0], rtol=1e-5, atol=1e-6)  # oneDNN: per-layout kernels
        # The weight gradients are PyTorch GEMMs on each layout, whose
        # kernels (and so roundings) differ by layout and by CPU: f32
        # round-off, not a bitwise match (2e-7 apart on an Intel Xeon with
        # PyTorch 2.15); a wrong layout mapping is off by O(1).
        for mine, want in zip(g, grads[0]):
            torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6)


def test_gradcheck_fused_out_in():
    hidden, logits, w1, w3, w2 = tensors(8, b=1, t=4, e=3, d=3, f=4, dtype=torch.float64)
    w13, _, down, _ = _layouts(w1, w3, w2)[3]
    inputs = [t.detach().clone().requires_grad_() for t in (hidden, logits, w13, down)]
    assert torch.autograd.gradcheck(
        lambda h, lg, gu, dn: ut.moe_layer(h, lg, gu, None, dn, weight_layout="out_in",
                                           mode="unified", k=1.5), inputs)


def test_weights_are_read_in_place(built_layers):
    """The compiled layer gets views of the parameters, not copies."""
    import numpy as np
    moe = usmoe.nn.MoE(6, 8, 4, weight_layout="out_in", fused_gate_up=True, mode="token", k=2)
    moe(torch.randn(5, 6))
    (compiled,) = built_layers
    assert compiled.fused and compiled.weight_layout == "out_in"
    for mine, param in zip(compiled._weights, (moe.w13, moe.w2)):
        assert np.shares_memory(mine, param.detach().numpy())


@pytest.mark.parametrize("layout, fused", [("in_out", True), ("out_in", False),
                                           ("out_in", True)])
def test_module_layouts_load_the_same_experts(layout, fused):
    """An in_out module's experts loaded into a module of another layout
    (transposed / concatenated state dict) give the same outputs, and it
    trains: gradients reach its own parameters."""
    torch.manual_seed(4)
    base = usmoe.nn.MoE(6, 8, 4, mode="unified", k=1.5)
    other = usmoe.nn.MoE(6, 8, 4, mode="unified", k=1.5, weight_layout=layout,
                         fused_gate_up=fused)
    w1, w3, w2, _ = _layouts(base.w1, base.w3, base.w2)[(layout == "out_in") * 2 + fused]
    state = dict(gate=base.gate, w2=w2)
    state.update(dict(w13=w1) if fused else dict(w1=w1, w3=w3))
    other.load_state_dict({k: v.detach() for k, v in state.items()})
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(other(x), base(x), rtol=1e-5, atol=1e-6)  # oneDNN: per-layout kernels
    other(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in other.parameters())


def test_module_rejects_an_unknown_layout():
    with pytest.raises(ValueError, match="weight_layout must be one of in_out, out_in"):
        usmoe.nn.MoE(6, 8, 4, weight_layout="columns", mode="token", k=1)
    with pytest.raises(ValueError, match="weight_layout must be one of"):
        ut.moe_layer(*tensors(9), weight_layout="x", mode="token", k=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (gpu-check runs it)")
@pytest.mark.parametrize("options", ROUTERS[:3])
def test_cuda_tensors_match_the_cpu(options):
    """CUDA tensors in, CUDA tensors out: the GPU path's layer and its
    gradients against the CPU's, fused out_in weights as HF has them."""
    hidden, logits, w1, w3, w2 = tensors(10)
    w13, _, down, _ = _layouts(w1, w3, w2)[3]
    results = []
    for device in ("cpu", "cuda"):
        inputs = [t.detach().to(device).requires_grad_() for t in (hidden, logits, w13, down)]
        y = ut.moe_layer(inputs[0], inputs[1], inputs[2], None, inputs[3],
                         weight_layout="out_in", **options)
        assert y.device.type == device
        y.sum().backward()
        results.append([y.detach().cpu()] + [t.grad.cpu() for t in inputs])
    for mine, want in zip(*results[::-1]):
        torch.testing.assert_close(mine, want, rtol=1e-4, atol=1e-5)
