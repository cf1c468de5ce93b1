"""A seeded random driver of usmoe's Python API (run by test_fuzz_api.py in
a subprocess, so that a crash is seen as one): random router options and
arrays, valid and invalid; every call must return or raise ValueError,
TypeError or RuntimeError. Prints one line per unexpected exception."""

import os
import sys

import numpy as np

import usmoe

ALLOWED = (ValueError, TypeError, RuntimeError)

NUMBERS = [None, 0, 1, 2, 3, 8, 9, -1, 1.5, 0.5, 2.75, 1e300, -1e300, float("nan"),
           float("inf"), 2**63, 2**70, True, "2", [1], np.float32(1.5), np.int64(2)]
MODES = ["token", "expert", "unified", "shared", None, 3]
SCORES = [None, "sigmoid", "softmax_tokens", "tanh", 1]


def random_logits(rng):
    kind = rng.integers(0, 10)
    b, t, e = int(rng.integers(0, 3)), int(rng.integers(0, 6)), int(rng.integers(1, 10))
    if kind == 0:
        return None
    if kind == 1:
        return rng.normal(size=(t, e)).astype(rng.choice(["float64", "int32", "float16"]))
    if kind == 2:
        return rng.normal(size=(b, t, e, 2)).astype(np.float32)
    if kind == 3:
        return rng.normal(size=(e, t)).astype(np.float32).T  # not contiguous
    if kind == 4:
        return rng.normal(size=(b, t, e)).astype(">f4")
    if kind == 5:
        return [[1.0, "x"], [2.0, 3.0]]
    if kind == 6:
        x = rng.normal(size=(b, t, e)).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = rng.choice([np.nan, np.inf, -np.inf])
        return x
    return rng.normal(0, 3, size=(b, t, e)).astype(rng.choice(["float32", "float16"]))


def plausible_options(rng, mode):
    """Options that are often valid, so that calls reach the compiler."""
    if mode == "token":
        return dict(k=int(rng.integers(1, 4)), renormalize=bool(rng.integers(0, 2)))
    if mode == "expert":
        if rng.random() < 0.5:
            return dict(capacity=int(rng.integers(1, 4)))
        return dict(capacity_factor=float(rng.choice([0.5, 1.0, 1e300])), k=int(rng.integers(1, 3)))
    return dict(k=float(rng.choice([0.0, 0.5, 1.5])), alpha=float(rng.random()),
                expert_score=str(rng.choice(["sigmoid", "softmax_tokens"])))


def random_options(rng):
    options = {}
    for name in ("k", "alpha", "capacity", "capacity_factor", "budget"):
        if rng.random() < 0.4:
            options[name] = NUMBERS[int(rng.integers(0, len(NUMBERS)))]
    if rng.random() < 0.3:
        options["expert_score"] = SCORES[int(rng.integers(0, len(SCORES)))]
    if rng.random() < 0.2:
        options["renormalize"] = [True, False, "yes", 1][int(rng.integers(0, 4))]
    if rng.random() < 0.15:
        options["bias"] = [np.zeros(8, np.float32), np.full(3, np.nan), "b", [0.1] * 4][
            int(rng.integers(0, 4))]
    return options


def main(seed, calls):
    rng = np.random.default_rng(seed)
    bad = returned = 0
    for i in range(calls):
        mode = MODES[int(rng.integers(0, len(MODES)))]
        logits = random_logits(rng)
        options = (plausible_options(rng, mode) if rng.random() < 0.5 and mode in MODES[:3]
                   else random_options(rng))
        device = "cuda" if rng.random() < 0.3 else "cpu"
        try:
            if rng.random() < 0.8:
                usmoe.route(logits, mode=mode, device=device, **options)
            else:
                e = 4
                w = [rng.normal(size=s).astype(np.float32) for s in ((e, 3, 5), (e, 3, 5),
                                                                     (e, 5, 3))]
                layer = usmoe.MoeLayer(*w, mode=mode, device=device, **options)
                layer(rng.normal(size=(6, 3)).astype(np.float32), logits)
            returned += 1
        except ALLOWED:
            pass
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            bad += 1
            print(f"call {i}: {type(error).__name__}: {error} | mode={mode!r} "
                  f"device={device} options={options!r}")
    print(f"{calls} calls: {returned} returned, {bad} unexpected exceptions")
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ["USMOE_GPU_EMULATOR"] = "1"  # device="cuda" on the emulator
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
