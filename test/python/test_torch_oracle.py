"""PyTorch as a second, independent oracle: scores from torch.softmax /
torch.sigmoid, selections from torch.topk and a stable torch.sort (topk
promises no order among equal values, so ties are broken explicitly)."""

import numpy as np
import pytest

import usmoe

torch = pytest.importorskip("torch")


def torch_scores(logits, mode, alpha=0.5):
    x = torch.from_numpy(logits.astype(np.float32))
    p = torch.softmax(x, dim=-1)
    if mode != "unified":
        return p
    f = (2.0 / x.shape[-1]) * torch.sigmoid(x)
    return (1 - alpha) * p + alpha * f


def best_first(scores_1d):
    """Indices by descending score, lower index first among equals."""
    return torch.sort(scores_1d, descending=True, stable=True).indices


@pytest.mark.parametrize("seed", range(8))
def test_token_choice_against_torch_topk(seed):
    rng = np.random.default_rng(100 + seed)
    b, t, e, k = 2, int(rng.integers(1, 40)), int(rng.choice([8, 60, 64, 128])), 4
    logits = rng.normal(0, 2, size=(b, t, e)).astype(np.float32)
    plan = usmoe.route(logits, mode="token", k=k)
    p = torch_scores(logits, "token")
    values, indices = torch.topk(p, k, dim=-1)
    want_mask = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, indices, True)
    np.testing.assert_array_equal(plan.mask, want_mask.numpy())
    np.testing.assert_allclose(np.sort(plan.topk_weights.reshape(b, t, k), axis=-1),
                               np.sort(values.numpy(), axis=-1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(8))
def test_unified_against_torch(seed):
    rng = np.random.default_rng(200 + seed)
    b, t, e = 2, int(rng.integers(1, 40)), int(rng.choice([8, 60, 64]))
    ties = seed % 2 == 1
    logits = (rng.integers(-2, 3, size=(b, t, e)) * 0.5 if ties
              else rng.normal(0, 2, size=(b, t, e))).astype(np.float32)
    alpha, k = 0.5, 1.5
    plan = usmoe.route(logits, mode="unified", k=k, alpha=alpha)
    u = torch_scores(logits, "unified", alpha)
    n = int(np.floor(k * t))
    for bi in range(b):
        chosen = best_first(u[bi].reshape(-1))[:n]
        want = torch.zeros(t * e, dtype=torch.bool)
        want[chosen] = True
        np.testing.assert_array_equal(plan.mask[bi].reshape(-1), want.numpy())
    np.testing.assert_allclose(plan.gates, torch.where(torch.from_numpy(plan.mask), u, 0).numpy(),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_expert_choice_against_torch(seed):
    rng = np.random.default_rng(300 + seed)
    b, t, e, c = 1, int(rng.integers(2, 40)), 8, 2
    logits = rng.normal(0, 2, size=(b, t, e)).astype(np.float32)
    plan = usmoe.route(logits, mode="expert", capacity=c)
    p = torch_scores(logits, "expert")
    for ei in range(e):
        chosen = best_first(p[0, :, ei])[:c]
        assert sorted(np.nonzero(plan.mask[0, :, ei])[0].tolist()) == sorted(chosen.tolist())
