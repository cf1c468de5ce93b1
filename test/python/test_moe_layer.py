"""A whole MoE layer (route, plan, dispatch, expert_ffn, combine) compiled for
the CPU against the spec's formula in usmoe.reference.moe_layer."""

import numpy as np
import pytest

import usmoe
from usmoe import reference

LAYER = """
func.func @layer(%hidden: tensor<?x{D}xf32>, %logits: tensor<1x?x{E}xf32>,
                 %w1: tensor<{E}x{D}x{F}xf32>, %w3: tensor<{E}x{D}x{F}xf32>,
                 %w2: tensor<{E}x{F}x{D}xf32>, %init: tensor<?x{D}xf32>)
    -> (tensor<?x{D}xf32>, tensor<?xi32>) {{
  %g, %m = moe.route {ROUTE} %logits {OPTS} : tensor<1x?x{E}xf32>
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


@pytest.mark.parametrize("route, opts, ref_opts", [
    ("unified", "k = 1.5", dict(mode="unified", k=1.5)),
    ("token", "k = 2.0 renormalize", dict(mode="token", k=2, renormalize=True)),
    ("expert", "capacity = 3", dict(mode="expert", capacity=3)),
])
def test_layer_matches_reference(route, opts, ref_opts):
    d, f, e, t = 8, 12, 6, 10
    rng = np.random.default_rng(5)
    hidden = rng.normal(size=(t, d)).astype(np.float32)
    logits = rng.normal(size=(1, t, e)).astype(np.float32)
    w1 = rng.normal(0, 0.3, size=(e, d, f)).astype(np.float32)
    w3 = rng.normal(0, 0.3, size=(e, d, f)).astype(np.float32)
    w2 = rng.normal(0, 0.3, size=(e, f, d)).astype(np.float32)
    shared = rng.normal(size=(t, d)).astype(np.float32)  # e.g. a shared expert's output
    ir = LAYER.format(D=d, F=f, E=e, E1=e + 1, ROUTE=route, OPTS=opts)
    layer = usmoe.compile(ir, target="cpu", entry="layer")
    y, ids = layer([hidden, logits, w1, w3, w2, shared])
    plan = reference.route(logits, **ref_opts)
    np.testing.assert_array_equal(ids, plan.token_ids)
    want = reference.moe_layer(hidden, plan, w1, w3, w2, init=shared)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # Tokens that no expert took get exactly the unconditional part.
    untouched = np.setdiff1d(np.arange(t), ids)
    np.testing.assert_array_equal(y[untouched], shared[untouched])


def test_combine_is_deterministic_and_f16_accumulates_in_f32():
    ir = """
func.func @combine(%out: tensor<?x4xf16>, %ids: tensor<?xi32>, %w: tensor<?xf32>,
                   %init: tensor<?x4xf16>) -> tensor<?x4xf16> {
  %y = moe.combine %out, %ids, %w into %init
      : tensor<?x4xf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x4xf16>
  return %y : tensor<?x4xf16>
}
"""
    fn = usmoe.compile(ir, target="cpu", entry="combine")
    # 2048 small contributions to token 0: an f16 running sum would stall at
    # 0.5 + ... (f16 has 11 bits); an f32 accumulator rounds once at the end.
    m = 2048
    out = np.full((m, 4), 1.0, np.float16)
    ids = np.zeros(m, np.int32)
    w = np.full(m, 1e-3, np.float32)
    init = np.zeros((2, 4), np.float16)
    (y1,) = fn([out, ids, w, init])
    (y2,) = fn([out, ids, w, init])
    np.testing.assert_array_equal(y1, y2)
    assert y1.dtype == np.float16
    np.testing.assert_allclose(y1[0].astype(np.float32), 2.048, rtol=1e-3)
    np.testing.assert_array_equal(y1[1], 0)


def test_combine_with_offsets_gives_the_same_result():
    ir = """
func.func @both(%out: tensor<?x4xf32>, %ids: tensor<?xi32>, %w: tensor<?xf32>,
                %off: tensor<4xi32>, %init: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %a = moe.combine %out, %ids, %w into %init
      : tensor<?x4xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x4xf32>
  %b = moe.combine %out, %ids, %w into %init offsets %off
      : tensor<?x4xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x4xf32>, tensor<4xi32>
  return %a, %b : tensor<?x4xf32>, tensor<?x4xf32>
}
"""
    fn = usmoe.compile(ir, target="cpu", entry="both")
    rng = np.random.default_rng(9)
    plan = reference.route(rng.normal(size=(1, 6, 3)).astype(np.float32), mode="token", k=2)
    out = rng.normal(size=(plan.token_ids.size, 4)).astype(np.float32)
    init = rng.normal(size=(6, 4)).astype(np.float32)
    a, b = fn([out, plan.token_ids, plan.weights, plan.expert_offsets, init])
    np.testing.assert_array_equal(a, b)
