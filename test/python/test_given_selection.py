"""Bring-your-own router: moe.select_given through usmoe.plan_from_topk and
MoeLayer.forward_topk, against usmoe.reference, on the CPU and on the GPU
path (emulator, and a real GPU where there is one)."""

import numpy as np
import pytest

import usmoe
from usmoe import reference


def given(rng, rows, k, experts):
    ids = np.stack([rng.permutation(experts)[:k] for _ in range(rows)]) if rows else \
        np.zeros((0, k), np.int64)
    return ids, rng.normal(size=(rows, k)).astype(np.float32)


def assert_plan_matches(ids, weights, experts, device):
    """plan_from_topk on `device` equals the reference's, field by field."""
    got = usmoe.plan_from_topk(ids, weights, experts, device=device)
    want = reference.plan_from_topk(ids, weights, experts)
    for field in ("mask", "gates", "expert_offsets", "token_ids", "weights"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@pytest.mark.parametrize("seed", range(6))
def test_plan_matches_reference(seed, route_device):
    if route_device == "cuda" and not usmoe.emulator.enabled():
        pytest.skip("plan_from_topk is not wired to a real GPU yet")
    rng = np.random.default_rng(seed)
    experts = int(rng.choice([1, 4, 8, 64]))
    k = int(rng.integers(1, min(experts, 8) + 1))
    rows = int(rng.choice([0, 1, 7, 100]))
    assert_plan_matches(*given(rng, rows, k, experts), experts, route_device)


def test_plan_of_many_chunks(route_device):
    """A plan of a given selection counts tiles of 128 rows, sums them per
    chunk of 16 tiles and scans those on one block: 2100 rows are 17 tiles
    (a second chunk of one tile), 4500 rows 36 (a partial last tile)."""
    if route_device == "cuda" and not usmoe.emulator.enabled():
        pytest.skip("plan_from_topk is not wired to a real GPU yet")
    rng = np.random.default_rng(17)
    for rows, k, experts in [(2100, 2, 8), (4500, 3, 64)]:
        assert_plan_matches(*given(rng, rows, k, experts), experts, route_device)


def test_a_router_plan_round_trips():
    """A Token Choice plan's [B*T, k] lists give back the same plan."""
    logits = np.random.default_rng(3).normal(size=(40, 16)).astype(np.float32)
    routed = usmoe.route(logits, mode="token", k=4, renormalize=True)
    again = usmoe.plan_from_topk(routed.topk_ids, routed.topk_weights, 16)
    np.testing.assert_array_equal(again.token_ids, routed.token_ids)
    np.testing.assert_array_equal(again.expert_offsets, routed.expert_offsets)
    np.testing.assert_array_equal(again.weights, routed.weights)


@pytest.mark.parametrize("ids, message", [
    ([[0, 0]], "an expert id repeats in a row"),
    ([[1, 4]], r"an expert id is outside \[0, E\)"),
    ([[-1, 2]], r"an expert id is outside \[0, E\)"),
])
def test_bad_ids_raise_value_error(ids, message, route_device):
    if route_device != "cpu":
        pytest.skip("the GPU kernels skip bad ids; the CPU path checks them")
    with pytest.raises(ValueError, match=message):
        usmoe.plan_from_topk(np.array(ids), np.ones((1, 2), np.float32), 4)


@pytest.mark.parametrize("args, error, message", [
    ((np.zeros((2, 2)), np.ones((2, 2)), 4), TypeError, "topk_ids must be integers"),
    ((np.zeros((2, 2), int), np.ones((2, 3)), 4), ValueError, "must have the shape of topk_ids"),
    ((np.zeros(2, int), np.ones(2), 4), ValueError, r"must be \[R, k\]"),
    ((np.zeros((2, 2), int), np.ones((2, 2)), 0), ValueError, "num_experts must be >= 1"),
    ((np.zeros((2, 2), int), np.ones((2, 2)), 2.5), TypeError, "num_experts must be an integer"),
    (("ids", np.ones((2, 2)), 4), TypeError, "topk_ids must be an array"),
    ((np.array([[2**40, 1]]), np.ones((1, 2)), 4), ValueError, "must fit in int32"),
])
def test_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        usmoe.plan_from_topk(*args)


@pytest.mark.parametrize("element", [np.float32, np.float16])
def test_layer_on_a_given_selection(element, route_device):
    rng = np.random.default_rng(11)
    e, d, f, rows, k = 8, 16, 24, 30, 3
    w1, w3 = (rng.normal(0, 0.3, (e, d, f)).astype(element) for _ in range(2))
    w2 = rng.normal(0, 0.3, (e, f, d)).astype(element)
    ids, weights = given(rng, rows, k, e)
    hidden = rng.normal(size=(rows, d)).astype(element)
    init = rng.normal(size=(rows, d)).astype(element)
    layer = usmoe.MoeLayer(w1, w3, w2, mode="token", k=2, device=route_device)
    y = layer.forward_topk(hidden, ids, weights, init=init)
    want = reference.moe_layer(hidden, reference.plan_from_topk(ids, weights, e), w1, w3, w2,
                               init=init)
    tol = 1e-5 if element == np.float32 else 2e-2
    np.testing.assert_allclose(y.astype(np.float32), want, rtol=tol, atol=tol)


def test_docs_example():
    """docs/Dialect.md, "A selection made elsewhere"."""
    plan = usmoe.plan_from_topk([[0, 2], [1, 0], [3, 2]],
                                [[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]], 4)
    np.testing.assert_array_equal(plan.expert_offsets, [0, 2, 3, 5, 6])
    np.testing.assert_array_equal(plan.token_ids, [0, 1, 1, 0, 2, 2])
    np.testing.assert_allclose(plan.weights, [0.6, 0.5, 0.5, 0.4, 0.1, 0.9])
