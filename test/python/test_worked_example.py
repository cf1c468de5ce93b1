"""The spec's worked example through the compiled CPU router and the reference."""

import numpy as np
import pytest

import usmoe
from usmoe import reference

P = np.array([[0.568123, 0.076887, 0.344584, 0.010406],
              [0.288651, 0.261183, 0.236328, 0.213838],
              [0.306442, 0.374289, 0.250893, 0.068376],
              [0.051779, 0.085369, 0.232057, 0.630796]], np.float32)
U = np.array([[0.522205, 0.221208, 0.403328, 0.072438],
              [0.281784, 0.261836, 0.243164, 0.225674],
              [0.373420, 0.412207, 0.339984, 0.189803],
              [0.120275, 0.167684, 0.298793, 0.535597]], np.float32)


def experts_per_token(mask):
    return [sorted(np.nonzero(row)[0].tolist()) for row in mask.reshape(-1, mask.shape[-1])]


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_token_choice(impl, worked_logits):
    route = usmoe.route if impl == "compiled" else reference.route
    plan = route(worked_logits, mode="token", k=2, renormalize=True)
    assert experts_per_token(plan.gates != 0) == [[0, 2], [0, 1], [0, 1], [2, 3]]
    np.testing.assert_allclose(plan.gates[0, 0, [0, 2]], [0.622459, 0.377541], atol=1e-6)
    np.testing.assert_array_equal(plan.topk_ids, [[0, 2], [0, 1], [1, 0], [3, 2]])


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_expert_choice(impl, worked_logits):
    route = usmoe.route if impl == "compiled" else reference.route
    plan = route(worked_logits, mode="expert", capacity=2)
    assert experts_per_token(plan.mask) == [[0, 2], [1, 3], [0, 1, 2], [3]]
    np.testing.assert_array_equal(plan.expert_offsets, [0, 2, 4, 6, 8])
    # e0 <- {t0, t2}, e1 <- {t1, t2}, e2 <- {t0, t2}, e3 <- {t1, t3}, ascending ids.
    np.testing.assert_array_equal(plan.token_ids, [0, 2, 1, 2, 0, 2, 1, 3])
    np.testing.assert_allclose(plan.gates[0][plan.mask[0]], P[plan.mask[0]], atol=1e-6)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_unified(impl, worked_logits):
    route = usmoe.route if impl == "compiled" else reference.route
    plan = route(worked_logits, mode="unified", k=2, alpha=0.5)
    assert experts_per_token(plan.mask) == [[0, 2], [0], [0, 1, 2], [2, 3]]
    assert plan.mask.sum() == 8
    np.testing.assert_allclose(plan.gates[0], np.where(plan.mask[0], U, 0), atol=1e-6)
    np.testing.assert_array_equal(plan.expert_offsets, [0, 3, 4, 7, 8])
    np.testing.assert_array_equal(plan.token_ids, [0, 1, 2, 2, 0, 2, 3, 3])
    np.testing.assert_allclose(plan.weights, [0.522205, 0.281784, 0.373420, 0.412207,
                                              0.403328, 0.339984, 0.298793, 0.535597], atol=1e-6)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_decode(impl):
    route = usmoe.route if impl == "compiled" else reference.route
    logits = np.array([[0.5, 2.0, -1.0, 1.0]], np.float32)
    token = route(logits, mode="token", k=2)
    unified = route(logits, mode="unified", k=2)
    assert experts_per_token(token.mask) == [[1, 3]] == experts_per_token(unified.mask)
    np.testing.assert_allclose(unified.gates[0, 0, [1, 3]], [0.524929, 0.294869], atol=1e-6)


def test_issue_example_list_input():
    gates = usmoe.route([[3.0, 1.0, 2.5, -1.0], [0.2, 0.1, 0.0, -0.1]], mode="unified", k=2).gates
    assert gates.shape == (1, 2, 4) and gates.dtype == np.float32
    assert (gates != 0).sum() == 4


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_model_options_example(impl):
    """docs/Dialect.md, "Logit soft-capping" and "Routed scaling factor"."""
    route = usmoe.route if impl == "compiled" else reference.route
    row = np.array([[3.0, 1.0, 2.5, -1.0]], np.float32)
    capped = route(row, mode="token", k=2, softcap=1.0)
    assert experts_per_token(capped.mask) == [[0, 2]]
    np.testing.assert_allclose(capped.gates[0, 0, [0, 2]], [0.338294, 0.335451], atol=1e-6)
    scaled = route(row, mode="token", k=2, renormalize=True, routed_scaling_factor=2.5)
    np.testing.assert_allclose(scaled.gates[0, 0, [0, 2]], [1.556148, 0.943852], atol=1e-6)


def test_group_limited_example():
    """docs/Dialect.md, "Group-limited selection": groups 0 and 1 are kept,
    so expert 4 (0.8, group 2) loses to expert 2 (0.5, group 1)."""
    ranked = np.array([[[0.9, 0.1, 0.5, 0.45, 0.8, 0.0, 0.3, 0.3]]], np.float32)
    _, mask = reference.select_topk(ranked, 2, groups=(4, 2))
    assert experts_per_token(mask) == [[0, 2]]
    _, ungrouped = reference.select_topk(ranked, 2)
    assert experts_per_token(ungrouped) == [[0, 4]]
