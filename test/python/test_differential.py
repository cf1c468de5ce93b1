"""Randomized differential test: the compiled routers against the NumPy
reference, on many shapes, seeds, alphas, budgets and element types, on the
CPU and on the GPU path (the GPU emulator in order and under a schedule
seed, and a real GPU where there is one: the `route_device` fixture).

Selections (mask, CSR, top-k lists) must agree exactly, gates to 1e-6
relative (about 8 ulp: the GPU sums a row in butterfly order).
"""

import numpy as np
import pytest

import usmoe
from usmoe import reference

SEEDS = range(24)


def random_logits(rng, b, t, e, dtype, kind):
    if kind == "normal":
        x = rng.normal(0.0, 2.0, size=(b, t, e))
    elif kind == "ties":  # few distinct values: exact ties everywhere
        x = rng.integers(-2, 3, size=(b, t, e)) * 0.5
    else:  # special values sprinkled in
        x = rng.normal(0.0, 1.0, size=(b, t, e))
        x[rng.random(x.shape) < 0.1] = -np.inf
        x[rng.random(x.shape) < 0.05] = np.nan
        if t > 1:
            x[0, 0, :] = -np.inf  # a dead row
    return x.astype(dtype)


def case(seed):
    rng = np.random.default_rng(seed)
    b = int(rng.choice([1, 2, 3]))
    t = int(rng.choice([1, 2, 5, 16, 33, 64]))
    e = int(rng.choice([1, 2, 3, 6, 8, 60, 64, 128]))
    dtype = rng.choice([np.float32, np.float16])
    kind = rng.choice(["normal", "ties", "special"])
    return rng, random_logits(rng, b, t, e, dtype, kind)


def assert_same_plan(got, want):
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_allclose(got.gates, want.gates, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got.expert_offsets, want.expert_offsets)
    np.testing.assert_array_equal(got.token_ids, want.token_ids)
    np.testing.assert_allclose(got.weights, want.weights, rtol=1e-6, atol=1e-7)
    assert not np.isnan(got.gates).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_token_choice(seed, route_device):
    rng, logits = case(seed)
    e = logits.shape[-1]
    k = int(rng.integers(1, min(e, 8) + 1))
    renorm = bool(rng.integers(0, 2))
    got = usmoe.route(logits, mode="token", k=k, renormalize=renorm, device=route_device)
    want = reference.route(logits, mode="token", k=k, renormalize=renorm)
    assert_same_plan(got, want)
    np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
    np.testing.assert_allclose(got.topk_weights, want.topk_weights, rtol=1e-6, atol=1e-7)
    assert (got.mask.sum(axis=-1) == k).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_expert_choice(seed, route_device):
    rng, logits = case(seed)
    _, t, e = logits.shape
    if rng.integers(0, 2):
        opts = dict(capacity=int(rng.integers(1, t + 1)))
    else:
        opts = dict(capacity_factor=float(rng.choice([0.5, 1.0, 1.25, 2.0])),
                    k=int(rng.integers(1, e + 1)))
    got = usmoe.route(logits, mode="expert", device=route_device, **opts)
    want = reference.route(logits, mode="expert", **opts)
    assert_same_plan(got, want)
    c = reference.expert_capacity(t, e, opts.get("capacity"), opts.get("capacity_factor"),
                                  opts.get("k"))
    assert (got.mask.sum(axis=1) == c).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_unified(seed, route_device):
    rng, logits = case(seed)
    b, t, e = logits.shape
    alpha = float(rng.choice([0.0, 0.25, 0.5, 0.9, 1.0]))
    kind = str(rng.choice(["sigmoid", "softmax_tokens"]))
    if rng.integers(0, 2):
        opts = dict(k=float(rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 2.75])) if e >= 3
                    else float(rng.choice([0.0, 0.5, 1.0])))
    else:
        opts = dict(budget=int(rng.integers(0, t * e + 1)))
    got = usmoe.route(logits, mode="unified", alpha=alpha, expert_score=kind,
                      device=route_device, **opts)
    want = reference.route(logits, mode="unified", alpha=alpha, expert_score_kind=kind, **opts)
    assert_same_plan(got, want)
    n = reference.unified_budget(t, opts.get("budget"), opts.get("k"))
    assert (got.mask.reshape(b, -1).sum(axis=1) == n).all()
    # Every selected U >= every unselected U of the same sequence.
    u = reference.unified_score(logits, alpha, kind)
    for bi in range(b):
        sel, rest = u[bi][got.mask[bi]], u[bi][~got.mask[bi]]
        if sel.size and rest.size:
            assert sel.min() >= rest.max()


@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
def test_expert_choice_of_long_sequences(kind):
    """Sequences of at least 2^18 scores (T * E) select their Expert Choice
    columns from a transposed copy (the CPU lowering): the same selection as
    the reference every way a column is selected (insertion, radix select),
    ties and special values included, T not a multiple of the transposes'
    row blocks."""
    rng = np.random.default_rng(1100)
    logits = random_logits(rng, 2, 1100, 256, np.float32, kind)
    for opts in (dict(capacity=1), dict(capacity=6), dict(capacity=37),
                 dict(capacity_factor=1.0, k=2)):
        assert_same_plan(usmoe.route(logits, mode="expert", **opts),
                         reference.route(logits, mode="expert", **opts))


@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
def test_unified_of_one_long_sequence(kind):
    """One sequence (B = 1) of at least 2^16 pairs runs its radix passes on
    8 token ranges in parallel, each listing its keys of the chosen top-byte
    bin at its own offset (the CPU lowering): the same selection as the
    reference, ties across the ranges included (T = 1100 is not a multiple
    of 8), and as two sequences that select one after the other."""
    rng = np.random.default_rng(1101)
    logits = random_logits(rng, 1, 1100, 64, np.float32, kind)
    for opts in (dict(k=1.5), dict(budget=9), dict(budget=1100 * 64 - 5), dict(k=0.25)):
        assert_same_plan(usmoe.route(logits, mode="unified", **opts),
                         reference.route(logits, mode="unified", **opts))
    both = np.concatenate([logits, logits[:, ::-1]])
    assert_same_plan(usmoe.route(both, mode="unified", k=1.5),
                     reference.route(both, mode="unified", k=1.5))


@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
def test_expert_choice_on_both_sides_of_each_slot_count(kind):
    """Capacities up to 32 are selected token by token with running top-C
    slots per expert, blocks of 16 experts side by side (the CPU lowering:
    a fixed capacity takes the next power of two of slots, one known at
    run time 1, 8 or 32), larger ones column by column: the same selection
    as the reference at every boundary, with E = 20 (a full block and a
    partial one) and B = 3."""
    rng = np.random.default_rng(20)
    logits = random_logits(rng, 3, 70, 20, np.float32, kind)
    for capacity in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 70):
        assert_same_plan(usmoe.route(logits, mode="expert", capacity=capacity),
                         reference.route(logits, mode="expert", capacity=capacity))
        # The same capacity known only at run time (ceil(cf * T * k / E)
        # with k = E): the 1, 8 or 32-slot variant, or the columns.
        opts = dict(capacity_factor=(capacity - 0.5) / 70, k=20)
        assert reference.expert_capacity(70, 20, None, opts["capacity_factor"], 20) == capacity
        assert_same_plan(usmoe.route(logits, mode="expert", **opts),
                         reference.route(logits, mode="expert", **opts))


@pytest.mark.parametrize("t", [31, 32, 33])
@pytest.mark.parametrize("kind", ["ties", "special"])
def test_small_sets_on_both_sides_of_the_rank_select(t, kind):
    """Sets of up to 32 elements are selected by ranks, larger ones by the
    radix select (the CPU lowering): the same selection either way, ties
    and special values included, for Expert Choice columns of T tokens and
    Unified sequences of T x 1 pairs."""
    rng = np.random.default_rng(t)
    for e, mode, opts in [(4, "expert", dict(capacity=7)), (1, "unified", dict(budget=9))]:
        logits = random_logits(rng, 2, t, e, np.float32, kind)
        assert_same_plan(usmoe.route(logits, mode=mode, **opts),
                         reference.route(logits, mode=mode, **opts))


@pytest.mark.parametrize("t", [9, 40, 300])
@pytest.mark.parametrize("kind", ["ties", "special", "normal"])
def test_small_budgets_on_both_sides_of_the_insertion_select(t, kind):
    """Budgets of up to 8 elements are selected by a running top-8 and a
    threshold pass, larger ones by ranks or the radix select (the CPU
    lowering): the same selection every way, ties and special values
    included, for Expert Choice columns and Unified sequences."""
    rng = np.random.default_rng(t)
    # Exact ties through E = 1 (every finite P is 1): a permuted row's
    # softmax may round differently from the reference's by an ulp, which
    # "ties" logits over several experts would turn into a different pick.
    cases = [(1, "expert"), (1, "unified")] + ([(4, "expert"), (3, "unified")]
                                               if kind == "normal" else [])
    for budget in range(0, 10):
        for e, mode in cases:
            opts = dict(capacity=max(budget, 1)) if mode == "expert" else dict(budget=budget)
            logits = random_logits(rng, 2, t, e, np.float32, kind)
            assert_same_plan(usmoe.route(logits, mode=mode, **opts),
                             reference.route(logits, mode=mode, **opts))


@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
def test_sets_longer_than_a_select_chunk(kind, route_device):
    """On the GPU a set of more than 8192 elements (a unified sequence's
    T x E pairs, an Expert Choice column's T tokens; fewer than 128 sets)
    is selected by blocks of 4096 whose histograms the set's last block
    merges; sets of 8192 stay on one block. Both agree with the reference,
    exact ties straddling the budget included (the last block's index-order
    scan)."""
    rng = np.random.default_rng(4096)
    for b, t, e, mode, opts in [
            (2, 1024, 8, "unified", dict(k=1.5)),     # 8192 pairs: one block
            (1, 2049, 8, "unified", dict(k=1.5)),     # 16392: five blocks
            (2, 1100, 16, "unified", dict(budget=333)),
            # softmax_tokens: a block per column, 128 threads over 1100 tokens
            (2, 1100, 16, "unified", dict(budget=333, expert_score="softmax_tokens")),
            (1, 16385, 2, "expert", dict(capacity=1500))]:
        logits = random_logits(rng, b, t, e, np.float32, kind)
        want_opts = dict(opts)
        if "expert_score" in want_opts:
            want_opts["expert_score_kind"] = want_opts.pop("expert_score")
        assert_same_plan(usmoe.route(logits, mode=mode, device=route_device, **opts),
                         reference.route(logits, mode=mode, **want_opts))


def test_spread_select_with_model_options(route_device):
    """The GPU select kernels recompute each score from the logit and its
    row's softmax statistics, with the model's softcap and scaling: spread
    sets (Unified 2049 x 8, Expert Choice 16385 tokens) agree with the
    reference on normal logits, and with the CPU path on tied ones too
    (scores that tie across rows select alike only where both paths compute
    the same bits: the shared exp and the order-free sum)."""
    rng = np.random.default_rng(2049)
    for b, t, e, mode, opts in [
            (1, 2049, 8, "unified", dict(k=1.5, softcap=3.0, routed_scaling_factor=2.5)),
            (1, 16385, 2, "expert", dict(capacity=1500, softcap=2.0))]:
        logits = random_logits(rng, b, t, e, np.float32, "normal")
        assert_same_plan(usmoe.route(logits, mode=mode, device=route_device, **opts),
                         reference.route(logits, mode=mode, **opts))
        tied = random_logits(rng, b, t, e, np.float32, "ties")
        assert_same_plan(usmoe.route(tied, mode=mode, device=route_device, **opts),
                         usmoe.route(tied, mode=mode, device="cpu", **opts))


def compacting_pass(scores, budget, capacity=None):
    """The digit pass that keeps a set's keys by the GPU kernels' rule, to
    show which path a case takes: 0 when all fit `capacity` (the one-block
    select's shared memory), else the pass after the first whose prefix (8
    or 16 bits of the N-th best key) matches at most `capacity` keys (a
    quarter of the set by default: the spread select's buffer), or None.
    Scores are >= 0, so their bits order like their values."""
    keys = np.ascontiguousarray(scores, dtype=np.float32).ravel().view(np.uint32)
    if capacity is None:
        capacity = -(-keys.size // 4)
    elif keys.size <= capacity:
        return 0
    threshold = np.sort(keys)[::-1][budget - 1]
    for compacting, bits in ((1, 8), (2, 16)):
        prefix = np.uint32((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)
        if np.count_nonzero((keys & prefix) == (threshold & prefix)) <= capacity:
            return compacting
    return None


def test_spread_select_compacts_candidates(route_device):
    """Spread sets append the keys under the threshold's first digit (or
    first two) to a candidate buffer once they fit a quarter of the set,
    and the later digit passes read only those: compaction in the second
    pass (Unified E = 64), in the third (Unified E = 8, Expert Choice, few
    distinct scores), or never (all scores equal: the first N pairs); the
    selection agrees with the reference either way."""
    rng = np.random.default_rng(38400)
    for t, e, mode, opts, kind, compacting in [
            (600, 64, "unified", dict(k=1.5), "normal", 1),
            (2049, 8, "unified", dict(k=1.5), "normal", 2),
            (16385, 2, "expert", dict(capacity=1500), "normal", 2),
            (600, 64, "unified", dict(k=1.5), "ties", 2),
            (600, 64, "unified", dict(k=1.5), "equal", None)]:
        logits = (np.full((1, t, e), 0.25, np.float32) if kind == "equal"
                  else random_logits(rng, 1, t, e, np.float32, kind))
        if mode == "unified":
            sets = [reference.unified_score(logits)[0]]
            budget = reference.unified_budget(t, k=opts["k"])
        else:
            sets = reference.token_softmax(logits)[0].T
            budget = opts["capacity"]
        assert [compacting_pass(s, budget) for s in sets] == [compacting] * len(sets)
        assert_same_plan(usmoe.route(logits, mode=mode, device=route_device, **opts),
                         reference.route(logits, mode=mode, **opts))


def test_one_block_select_keeps_keys_in_shared_memory(route_device):
    """The one-block select computes each key once where the keys fit in
    shared memory (8192): all of a set of at most 8192 elements (only the
    selected recompute their scores, for the gates), or, for a larger set
    (on one block when there are 128 sets or more: 128 Expert Choice
    columns of 8200 tokens), those matching the prefix after the first
    digit, or the first two (a column's probabilities all near one value
    share the first digit; the passes before it read the whole set, as all
    do when nothing fits); the selection agrees with the
    reference (the CPU path for the near-equal ones) on every path."""
    rng = np.random.default_rng(8192)
    for b, t, e, mode, opts, kind, compacting in [
            (1, 1000, 8, "unified", dict(k=1.5), "normal", 0),
            (1, 1000, 8, "unified", dict(k=1.5), "ties", 0),
            (1, 8200, 128, "expert", dict(capacity=1500), "normal", 1),
            (1, 8200, 128, "expert", dict(capacity=1500), "near", 2)]:
        if kind == "near":
            # Expert 0 three logits up: its probabilities near 0.14, the
            # others' near 0.0068 (not at a power of two, where a digit
            # boundary would split them).
            logits = rng.normal(size=(b, t, e)) * 0.02
            logits[..., 0] += 3.0
            logits = logits.astype(np.float32)
        else:
            logits = random_logits(rng, b, t, e, np.float32, kind)
        if mode == "unified":
            sets = [reference.unified_score(logits)[i] for i in range(b)]
            budget = reference.unified_budget(t, k=opts["k"])
        else:
            sets = [column for i in range(b) for column in reference.token_softmax(logits)[i].T]
            budget = opts["capacity"]
        assert {compacting_pass(s, budget, 8192) for s in sets} == {compacting}
        # Near-equal probabilities select alike only where the paths compute
        # the same bits (the shared exp; NumPy's may differ by an ulp).
        want = (usmoe.route(logits, mode=mode, device="cpu", **opts) if kind == "near"
                else reference.route(logits, mode=mode, **opts))
        assert_same_plan(usmoe.route(logits, mode=mode, device=route_device, **opts), want)


def test_plan_of_many_tiles(route_device):
    """The GPU plan counts tiles of 128 rows and chunks of 16 tiles, scans
    the E x chunks counts in one block, and fills each tile from its chunk's
    start plus the chunk's earlier tiles. Token Choice (count_scan): 9000
    rows x 128 experts are 71 tiles in 5 chunks, the last chunk 7 tiles,
    the last tile partial. Unified and Expert Choice (counted by their
    select kernels): 4100 rows are 33 tiles (a chunk of one tile last),
    3 x 700 rows 17 tiles."""
    rng = np.random.default_rng(71)
    for b, t, e, mode, opts in [(1, 9000, 128, "token", dict(k=3)),
                                (1, 4100, 8, "unified", dict(k=1.5)),
                                (3, 700, 4, "expert", dict(capacity=200))]:
        logits = random_logits(rng, b, t, e, np.float32, "normal")
        assert_same_plan(usmoe.route(logits, mode=mode, device=route_device, **opts),
                         reference.route(logits, mode=mode, **opts))


def test_single_token_unified_equals_token_choice(route_device):
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(4, 1, 16)).astype(np.float32)
    for alpha in (0.0, 0.3, 1.0):
        unified = usmoe.route(logits, mode="unified", k=3, alpha=alpha, device=route_device)
        token = usmoe.route(logits, mode="token", k=3, device=route_device)
        np.testing.assert_array_equal(unified.mask, token.mask)


@pytest.mark.parametrize("k", [1, 16, 17, 40])
def test_token_choice_both_topk_algorithms(k, route_device):
    """k <= 16 keeps the best k in registers, larger k scans the row k times:
    both must give the reference's selection, ties included."""
    rng = np.random.default_rng(k)
    logits = (rng.integers(-3, 4, size=(2, 9, 64)) * 0.5).astype(np.float32)
    got = usmoe.route(logits, mode="token", k=k, renormalize=True, device=route_device)
    want = reference.route(logits, mode="token", k=k, renormalize=True)
    assert_same_plan(got, want)
    np.testing.assert_array_equal(got.topk_ids, want.topk_ids)


@pytest.mark.parametrize("e", [8, 64, 256])
def test_token_choice_decode_rows(e, route_device):
    """A group of one row (B * T = 1, a decode step) is selected by its own
    scan on the CPU, not in vector lanes: the reference's picks with ties,
    -inf, NaN, a bias (DeepSeek-V3's ranking) and renormalized gates, in the
    mask, the plan and the top-k lists."""
    rng = np.random.default_rng(e)
    for kind in ("ties", "special", "normal"):
        for k in (1, 2, 8):
            logits = random_logits(rng, 1, 1, e, np.float32, kind)
            bias = rng.normal(0.0, 0.1, size=e).astype(np.float32)
            for opts in (dict(renormalize=True), dict(bias=bias)):
                got = usmoe.route(logits, mode="token", k=k, device=route_device, **opts)
                want = reference.route(logits, mode="token", k=k, **opts)
                assert_same_plan(got, want)
                np.testing.assert_array_equal(got.topk_ids, want.topk_ids)


@pytest.mark.parametrize("k", [1, 2, 3, 8, 16])
def test_token_choice_rows_side_by_side(k, route_device):
    """For k <= 16 the CPU selects a group of 8 rows side by side (one per
    vector lane): the same picks as the reference for every row of full and
    partial groups (T = 1, 5, 8, 13), ties and special values included, in
    the mask, the top-k lists and the plan."""
    rng = np.random.default_rng(700 + k)
    for t, kind in [(1, "ties"), (5, "special"), (8, "normal"), (13, "ties")]:
        logits = random_logits(rng, 3, t, 24, np.float32, kind)
        for renorm in (False, True):
            got = usmoe.route(logits, mode="token", k=k, renormalize=renorm,
                              device=route_device)
            want = reference.route(logits, mode="token", k=k, renormalize=renorm)
            assert_same_plan(got, want)
            np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
            np.testing.assert_allclose(got.topk_weights, want.topk_weights,
                                       rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(8))
def test_token_choice_sigmoid_bias(seed, route_device):
    """DeepSeek-V3 scoring: ranked by sigmoid(L) + bias, gated by sigmoid(L)."""
    rng = np.random.default_rng(500 + seed)
    e = int(rng.choice([8, 60, 64, 256]))
    logits = random_logits(rng, 2, int(rng.integers(1, 40)), e, np.float32,
                           rng.choice(["normal", "ties", "special"]))
    bias = rng.normal(0, 0.05, size=e).astype(np.float32)
    k = int(rng.choice([1, 2, 8, 20]))
    k = min(k, e)
    renorm = bool(seed % 2)
    got = usmoe.route(logits, mode="token", k=k, renormalize=renorm, bias=bias,
                      device=route_device)
    want = reference.route(logits, mode="token", k=k, renormalize=renorm, bias=bias)
    assert_same_plan(got, want)
    np.testing.assert_array_equal(got.topk_ids, want.topk_ids)


def model_router(rng, e, t):
    """A random router of a random mode, with the options of real models."""
    mode = str(rng.choice(["token", "token_bias", "expert", "unified"]))
    opts = {}
    if mode.startswith("token"):
        opts = dict(mode="token", k=int(rng.integers(1, min(e, 8) + 1)),
                    renormalize=bool(rng.integers(0, 2)))
        if mode == "token_bias":
            opts["bias"] = rng.normal(0, 0.05, size=e).astype(np.float32)
    elif mode == "expert":
        opts = dict(mode="expert", capacity=int(rng.integers(1, t + 1)))
    else:
        opts = dict(mode="unified", k=float(rng.choice([0.5, 1.0, 1.5])),
                    alpha=float(rng.choice([0.0, 0.5, 1.0])),
                    expert_score=str(rng.choice(["sigmoid", "softmax_tokens"])))
    if rng.integers(0, 4):
        opts["softcap"] = float(rng.choice([0.5, 1.0, 5.0, 30.0]))
    if rng.integers(0, 4):
        opts["routed_scaling_factor"] = float(rng.choice([0.25, 1.0, 2.5, 16.0]))
    return opts


@pytest.mark.parametrize("seed", SEEDS)
def test_softcap_and_routed_scaling_factor(seed, route_device):
    """Soft-capped logits (saturation makes exact ties) and scaled gates, in
    every mode: the selection of the reference, gates times the factor."""
    rng, logits = case(1000 + seed)
    logits = (logits.astype(np.float32) * 4).astype(logits.dtype)
    opts = model_router(rng, logits.shape[-1], logits.shape[1])
    got = usmoe.route(logits, device=route_device, **opts)
    ref = dict(opts)
    if "expert_score" in ref:
        ref["expert_score_kind"] = ref.pop("expert_score")
    want = reference.route(logits, **ref)
    assert_same_plan(got, want)
    if opts["mode"] == "token":
        np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
    # The factor scales the gates and leaves the selection alone.
    plain = usmoe.route(logits, device=route_device,
                        **{k: v for k, v in opts.items() if k != "routed_scaling_factor"})
    np.testing.assert_array_equal(got.mask, plain.mask)
    scale = np.float32(opts.get("routed_scaling_factor", 1.0))
    np.testing.assert_array_equal(got.gates, (plain.gates * scale).astype(np.float32))


@pytest.mark.parametrize("seed", range(16))
def test_group_limited_token_choice(seed, route_device):
    """DeepSeek-V3 group-limited selection (n_group, topk_group), with and
    without the correction bias: the reference's selection, and no expert
    outside the kept groups."""
    rng = np.random.default_rng(2000 + seed)
    e = int(rng.choice([8, 16, 60, 64, 256]))
    n_group = int(rng.choice([g for g in (1, 2, 4, 5, 8) if e % g == 0]))
    topk_group = int(rng.integers(1, n_group + 1))
    k = int(rng.integers(1, min(8, topk_group * e // n_group) + 1))
    logits = random_logits(rng, 2, int(rng.integers(1, 24)), e, np.float32,
                           rng.choice(["normal", "ties", "special"]))
    opts = dict(mode="token", k=k, n_group=n_group, topk_group=topk_group,
                renormalize=bool(seed % 2))
    if seed % 4 < 2:
        opts["bias"] = rng.normal(0, 0.1, size=e).astype(np.float32)
    if seed % 3 == 0:
        opts["routed_scaling_factor"] = 2.5
    got = usmoe.route(logits, device=route_device, **opts)
    want = reference.route(logits, **opts)
    assert_same_plan(got, want)
    np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
    groups_used = got.mask.reshape(*got.mask.shape[:2], n_group, -1).any(-1).sum(-1)
    assert (groups_used <= topk_group).all()


@pytest.mark.parametrize("seed", range(12))
def test_packed_sequences(seed, route_device):
    """cu_seqlens: every sequence of a packed batch routed with its own T
    (the reference routes each slice alone), empty sequences included."""
    rng = np.random.default_rng(3000 + seed)
    e = int(rng.choice([4, 8, 60, 64]))
    lengths = rng.integers(0, 20, size=int(rng.integers(1, 6)))
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    logits = random_logits(rng, 1, int(cu[-1]), e, np.float32,
                           rng.choice(["normal", "ties", "special"]))[0]
    mode = str(rng.choice(["token", "expert", "unified"]))
    if mode == "token":
        opts = dict(mode="token", k=int(rng.integers(1, min(e, 4) + 1)))
    elif mode == "expert":
        opts = dict(mode="expert", capacity_factor=float(rng.choice([0.5, 1.0, 2.0])),
                    k=int(rng.integers(1, min(e, 4) + 1)))
    else:
        opts = dict(mode="unified", k=float(rng.choice([0.5, 1.0, 1.5, 2.0])),
                    alpha=float(rng.choice([0.0, 0.5, 1.0])),
                    expert_score=str(rng.choice(["sigmoid", "softmax_tokens"])))
    got = usmoe.route(logits, device=route_device, cu_seqlens=cu, **opts)
    ref = dict(opts)
    if "expert_score" in ref:
        ref["expert_score_kind"] = ref.pop("expert_score")
    want = reference.route(logits, cu_seqlens=cu, **ref)
    assert_same_plan(got, want)
    if mode == "unified":  # N_i = floor(k * T_i) pairs in sequence i
        for lo, hi in zip(cu[:-1], cu[1:]):
            assert got.mask[0, lo:hi].sum() == int(np.floor(opts["k"] * (hi - lo)))


SCORING_PATHS = [
    # (mode, options): every scoring path of the routers
    ("unified", dict(k=1.5)),
    ("unified", dict(k=1.5, softcap=3.0)),
    ("unified", dict(k=2, alpha=0.0)),
    ("unified", dict(k=1.5, expert_score="softmax_tokens")),
    ("expert", dict(capacity_factor=1.0, k=2)),
    ("expert", dict(capacity_factor=1.0, k=2, softcap=3.0)),
    ("token", dict(k=2)),
    ("token", dict(k=8, renormalize=True)),  # the k gates' sum
    ("token", dict(k=2, renormalize=True, bias="drawn")),  # DeepSeek-V3
]


@pytest.mark.parametrize("mode,opts", SCORING_PATHS)
@pytest.mark.parametrize("experts", [8, 60, 256])
def test_gpu_and_cpu_score_bit_for_bit_on_tied_logits(monkeypatch, mode, opts, experts):
    """The spec: selections are identical on CPU and GPU, ties included.
    Logits that are multiples of 0.5 give many rows with the same logits in
    another order, whose scores tie in exact arithmetic; a float sum rounds
    each order differently (a path's warp order against the other's index
    order), so cross-row ties broke differently on the two paths (10 of 8192
    picks at 1 x 1024 x 8 with a softcap). With one exp (usmoe-expand-exp)
    and one order-free sum (SoftmaxSum) the two paths' scores are the same
    bits, and so are the renormalized Token Choice gates (the k gates' sum
    is order-free too): gates equal, not close, and so the same picks (the
    rows of normal logits give many distinct exps: a different exp shows
    there). E = 8 takes several rows a warp, 60 a masked 4-wide load, 256
    full vectors."""
    monkeypatch.setenv("USMOE_GPU_EMULATOR", "1")
    tokens = 1024 if experts == 8 else 128
    rng = np.random.default_rng(experts)
    logits = np.concatenate([  # ties, then rows of distinct values
        random_logits(rng, 1, tokens // 2, experts, np.float32, "ties"),
        random_logits(rng, 1, tokens // 2, experts, np.float32, "normal")], axis=1)
    if opts.get("bias") == "drawn":
        opts = dict(opts, bias=rng.normal(0, 0.05, size=experts).astype(np.float32))
    gpu = usmoe.route(logits, mode=mode, device="cuda", **opts)
    cpu = usmoe.route(logits, mode=mode, device="cpu", **opts)
    np.testing.assert_array_equal(gpu.mask, cpu.mask)
    np.testing.assert_array_equal(gpu.gates.view(np.int32), cpu.gates.view(np.int32))
