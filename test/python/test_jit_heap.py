"""The JIT heap (python/src/JitHeap.cpp): compiled code's large buffers
(from 64 KB) are kept when freed and handed out again, so a repeated call
does not page in fresh memory (a 1 x 16384 x 8, k = 8 route took 480 page
faults a call when only blocks of 1 MB were kept)."""

import numpy as np

import usmoe
from usmoe._native_loader import native


def test_repeated_calls_reuse_freed_blocks():
    stats = native().jit_heap_stats
    logits = np.random.default_rng(0).normal(size=(1, 16384, 8)).astype(np.float32)
    router = usmoe.Router(mode="token", k=8)  # six results of 128-512 KB
    plan = router(logits)
    plan = router(logits)  # the caller holds one call's results while the next runs
    before = stats()
    for _ in range(4):
        plan = router(logits)
    after = stats()
    assert after["fresh_blocks"] == before["fresh_blocks"]
    assert after["reused_blocks"] >= before["reused_blocks"] + 4 * 6
    assert 0 < after["kept_bytes"] <= 512 << 20
    assert plan.token_ids.size == 16384 * 8


def test_stats_count_from_64_kb():
    """Buffers below 64 KB go to malloc directly: a decode call leaves the
    counts unchanged."""
    stats = native().jit_heap_stats
    router = usmoe.Router(mode="token", k=2)
    logits = np.random.default_rng(1).normal(size=(1, 64)).astype(np.float32)
    router(logits)
    before = stats()
    for _ in range(10):
        router(logits)
    after = stats()
    assert (after["fresh_blocks"], after["reused_blocks"]) == \
        (before["fresh_blocks"], before["reused_blocks"])
