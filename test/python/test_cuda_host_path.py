"""The host side of device="cuda" against a fake CUDA driver (no GPU).

build/test/fake-cuda/libcuda.so.1 (test/lib/FakeCudaDriver) stands in for the
driver: device memory is host memory and launches are recorded, not run. So
these tests check what usmoe launches, in which order, with which grids and
on which stream, how results are handed over (CudaArray,
__cuda_array_interface__, DLPack) and that a plan for device-resident
logits is made without a copy or a synchronization. Kernel results are
checked on a real GPU (test_cuda_matches_cpu, scripts/gpu-check.sh).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("USMOE_BUILD_DIR", os.path.join(ROOT, "build"))
FAKE_DRIVER_DIR = os.path.join(BUILD, "test", "fake-cuda")

pytestmark = [
    pytest.mark.skipif(not os.path.exists(os.path.join(FAKE_DRIVER_DIR, "libcuda.so.1")),
                       reason="the fake driver is not built"),
    pytest.mark.skipif(not os.path.exists("/usr/local/cuda/bin/ptxas")
                       and not os.environ.get("CUDA_ROOT"),
                       reason="compiling kernels needs the CUDA toolkit"),
]

PRELUDE = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    import usmoe
    from usmoe import _usmoe

    drv = ctypes.CDLL("libcuda.so.1")
    drv.fake_cuda_launch_kernel.restype = ctypes.c_char_p
    drv.fake_cuda_launch_stream.restype = ctypes.c_size_t
    drv.fake_cuda_async_memory_stream.restype = ctypes.c_ssize_t

    class OnDevice:
        # Logits 'on the GPU': the fake driver's device memory is host memory.
        def __init__(self, a, strides=None):
            self.a = a
            self.strides = strides or (None if a.flags.c_contiguous else a.strides)
        @property
        def __cuda_array_interface__(self):
            return {"shape": self.a.shape, "typestr": self.a.dtype.str, "version": 3,
                    "data": (self.a.ctypes.data, False), "strides": self.strides}

    class DLPackOnDevice:
        def __init__(self, a, code, bits, device=(2, 0)):
            self.a, self.code, self.bits, self.device = a, code, bits, device
        def __dlpack_device__(self):
            return self.device
        def __dlpack__(self, stream=None):
            result.setdefault("dlpack_streams", []).append(stream)
            return _usmoe.dlpack_capsule(self, self.a.ctypes.data, list(self.a.shape),
                                         self.code, self.bits, *self.device)

    def counters():
        return {c: drv.fake_cuda_counter(c.encode())
                for c in ("htod", "dtoh", "ctx_sync", "stream_sync", "memset", "launch")}

    def memory_counters():
        return {c: drv.fake_cuda_counter(c.encode())
                for c in ("alloc", "free", "alloc_async", "free_async")}

    def launches():
        return [(drv.fake_cuda_launch_kernel(i).decode(), drv.fake_cuda_launch_grid(i),
                 drv.fake_cuda_launch_block(i), drv.fake_cuda_launch_stream(i))
                for i in range(drv.fake_cuda_counter(b"launch"))]

    def describe(plan):
        out = {}
        for name in ("gates", "mask", "expert_offsets", "token_ids", "weights",
                     "topk_ids", "topk_weights"):
            x = getattr(plan, name)
            if x is None:
                continue
            cai = getattr(x, "__cuda_array_interface__", None)
            out[name] = {"type": type(x).__name__, "shape": list(x.shape),
                         "typestr": cai and cai["typestr"], "stream": cai and cai["stream"],
                         "version": cai and cai["version"],
                         "dlpack_device": list(x.__dlpack_device__())
                                          if hasattr(x, "__dlpack_device__") else None}
        return out

    def reset():
        drv.fake_cuda_reset()

    rng = np.random.default_rng(0)
    result = {}
""")


def run_fake(body: str, **env_vars) -> dict:
    """Runs `body` after PRELUDE in a Python whose libcuda.so.1 is the fake;
    returns the JSON of its `result` dict."""
    script = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(result))\n"
    env = dict(os.environ, **env_vars)
    env["LD_LIBRARY_PATH"] = FAKE_DRIVER_DIR + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    env["PYTHONPATH"] = os.path.join(BUILD, "python_packages")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_device_logits_give_a_device_plan_without_copies_or_syncs():
    r = run_fake("""
        x = rng.normal(size=(2, 5, 8)).astype(np.float32)
        router = usmoe.Router(mode="token", k=2, device="cuda")
        router(OnDevice(x))          # compiles and loads the module
        reset()
        plan = router(OnDevice(x))
        result["counters"] = counters()
        result["launches"] = launches()
        result["plan"] = describe(plan)
        reset()
        host = plan.token_ids.numpy()
        result["after_numpy"] = counters()
        result["numpy"] = [str(host.dtype), list(host.shape)]
    """)
    assert r["counters"] == {"htod": 0, "dtoh": 0, "ctx_sync": 0, "stream_sync": 0,
                             "memset": 0, "launch": 2}
    # route (writing the top-k lists too; E = 8: 8 lanes a token, 16 tokens
    # a block), then the plan's 10 rows as one tile: count, scan and fill on
    # one block (a thread per row of the tile); the legacy default stream (0).
    assert [(name.rsplit("_", 1)[0] if name.startswith(("route", "topk")) else name, grid, block,
             stream) for name, grid, block, stream in r["launches"]] == [
        ("route_token", 1, 128, 0), ("plan_1_single", 1, 128, 0)]
    plan = r["plan"]
    assert {k: v["shape"] for k, v in plan.items()} == {
        "gates": [2, 5, 8], "mask": [2, 5, 8], "expert_offsets": [9], "token_ids": [20],
        "weights": [20], "topk_ids": [10, 2], "topk_weights": [10, 2]}
    assert {k: v["typestr"] for k, v in plan.items()} == {
        "gates": "<f4", "mask": "|b1", "expert_offsets": "<i4", "token_ids": "<i4",
        "weights": "<f4", "topk_ids": "<i4", "topk_weights": "<f4"}
    for value in plan.values():
        assert value["type"] == "CudaArray" and value["version"] == 3
        assert value["stream"] == 1 and value["dlpack_device"] == [2, 0]
    # .numpy() waits for the work and copies once.
    assert r["after_numpy"]["dtoh"] == 1 and r["after_numpy"]["ctx_sync"] == 1
    assert r["numpy"] == ["int32", [20]]


@pytest.mark.parametrize("options, rows, kernels", [
    # Unified: N = floor(1.5 * 5) = 7 pairs per sequence; one select block per sequence.
    (dict(mode="unified", k=1.5), 2 * 7,
     [("scores_unified_sigmoid", 3), ("select_sequence", 2)]),
    (dict(mode="unified", budget=3, expert_score="softmax_tokens"), 2 * 3,
     [("scores_softmax", 3), ("mix_softmax_tokens", 16), ("select_sequence", 2)]),
    # Expert Choice: C = ceil(1.25 * 5 * 2 / 8) = 2 per (sequence, expert).
    (dict(mode="expert", capacity_factor=1.25, k=2), 2 * 8 * 2,
     [("scores_softmax", 3), ("select_column", 16)]),
])
def test_plan_size_is_known_on_the_host(options, rows, kernels):
    r = run_fake(f"""
        x = rng.normal(size=(2, 5, 8)).astype(np.float32)
        router = usmoe.Router(device="cuda", **{options!r})
        router(OnDevice(x))
        reset()
        plan = router(OnDevice(x))
        result["counters"] = counters()
        result["launches"] = launches()
        result["plan"] = describe(plan)
        mod = router.compiled("f32", 8)
        result["kinds"] = {{name: meta["kind"] for name, meta in mod.kernels.items()}}
    """)
    assert r["counters"]["dtoh"] == 0 and r["counters"]["ctx_sync"] == 0
    assert r["plan"]["token_ids"]["shape"] == [rows]
    assert r["plan"]["weights"]["shape"] == [rows]
    assert "topk_ids" not in r["plan"]
    routed = [(r["kinds"][name], grid) for name, grid, _, _ in r["launches"]
              if not r["kinds"][name].startswith("plan")]
    assert routed == kernels


@pytest.mark.parametrize("options, shape, kernels", [
    # One sequence of 4096 x 8 = 32768 pairs: 8 chunks of 4096, the
    # workspace zeroed by the score kernel, a histogram launch per digit,
    # the marking launch.
    (dict(mode="unified", k=1.5), (1, 4096, 8),
     [("scores_unified_sigmoid", 1024)]
     + [("select_sequence_histogram", 8)] * 4 + [("select_sequence_mark", 8)]),
    # Expert Choice columns of 17000 tokens: 5 chunks per (sequence, expert).
    (dict(mode="expert", capacity=8), (1, 17000, 8),
     [("scores_softmax", 4250)]
     + [("select_column_histogram", 40)] * 4 + [("select_column_mark", 40)]),
    # 16 x 8 = 128 columns of 17000 tokens fill the chip with a block each.
    (dict(mode="expert", capacity=8), (16, 17000, 8),
     [("scores_softmax", 68000), ("select_column", 128)]),
    # 8192 pairs fit the one-block select's shared memory (each score
    # computed once): not worth four more launches; 8200 are.
    (dict(mode="unified", k=1.5), (1, 1024, 8),
     [("scores_unified_sigmoid", 256), ("select_sequence", 1)]),
    (dict(mode="unified", k=1.5), (1, 1025, 8),
     [("scores_unified_sigmoid", 257)]
     + [("select_sequence_histogram", 3)] * 4 + [("select_sequence_mark", 3)]),
])
def test_long_sets_spread_over_blocks(options, shape, kernels):
    r = run_fake(f"""
        x = np.zeros({shape!r}, np.float32)
        router = usmoe.Router(device="cuda", **{options!r})
        router(OnDevice(x))
        reset()
        router(OnDevice(x))
        result["counters"] = counters()
        result["launches"] = launches()
        mod = router.compiled("f32", {shape[2]})
        result["kinds"] = {{name: meta["kind"] for name, meta in mod.kernels.items()}}
    """)
    assert r["counters"]["dtoh"] == 0 and r["counters"]["ctx_sync"] == 0
    routed = [(r["kinds"][name], grid) for name, grid, _, _ in r["launches"]
              if not r["kinds"][name].startswith("plan")]
    assert routed == kernels


@pytest.mark.parametrize("options, shape", [
    (dict(mode="token", k=2), (2, 5, 8)),
    (dict(mode="token", k=8), (3, 300, 64)),
    (dict(mode="unified", k=1.5), (2, 64, 8)),
    (dict(mode="unified", k=1.5), (1, 4096, 8)),
    (dict(mode="unified", budget=5, expert_score="softmax_tokens"), (2, 700, 16)),
    (dict(mode="expert", capacity=8), (1, 17000, 8)),
    (dict(mode="expert", capacity=3), (4, 40, 8)),
    # Decode: one-token sequences take the unified decode kernel up to 128
    # of them, the score and select kernels beyond.
    (dict(mode="unified", k=2.5), (3, 1, 8)),
    (dict(mode="unified", k=2.5), (200, 1, 8)),
])
def test_kernel_table_grids_and_launches_match_the_launches(options, shape):
    """The kernel table states each kernel's grid and launches per call as
    shape expressions (the cost model evaluates them): they agree with what
    is launched, kernel by kernel."""
    r = run_fake(f"""
        x = np.zeros({shape!r}, np.float32)
        router = usmoe.Router(device="cuda", **{options!r})
        router(OnDevice(x))
        reset()
        plan = router(OnDevice(x))
        result["launches"] = launches()
        result["m"] = int(plan.token_ids.__cuda_array_interface__["shape"][0])
        mod = router.compiled("f32", {shape[2]})
        result["table"] = {{name: meta for name, meta in mod.kernels.items()}}
    """)
    from usmoe import _usmoe
    b, t, e = shape
    symbols = dict(B=b, T=t, E=e, M=r["m"], K=int(options.get("k", 0)))
    launched = {}
    for name, grid, block, _ in r["launches"]:
        meta = r["table"][name]
        assert grid == _usmoe.evaluate_shape_expr(meta["grid"], symbols), (name, meta["grid"])
        assert block == meta["block"][0]
        launched[name] = launched.get(name, 0) + 1
    for name, meta in r["table"].items():
        assert launched.get(name, 0) == _usmoe.evaluate_shape_expr(meta["launches"], symbols), name


def test_unified_decode_is_one_route_launch():
    """Sequences of one token select their top floor(k) experts by U (the
    spec: Token Choice's selection): the Token Choice kernel ranking U, then
    the plan on one block."""
    r = run_fake("""
        x = np.zeros((6, 1, 16), np.float32)
        router = usmoe.Router(device="cuda", mode="unified", k=2.5)
        router(OnDevice(x))
        reset()
        router(OnDevice(x))
        result["launches"] = [(name, grid, block) for name, grid, block, _ in launches()]
    """)
    # E = 16: 16 lanes a token, 8 tokens a 128-thread block.
    assert r["launches"] == [["route_unified_0_decode", 1, 128], ["plan_1_single", 1, 128]]


def test_host_logits_on_cuda_come_back_as_numpy():
    r = run_fake("""
        x = rng.normal(size=(1, 4, 8)).astype(np.float16)
        plan = usmoe.route(x, mode="token", k=2, renormalize=True, device="cuda")
        result["types"] = sorted({type(getattr(plan, n)).__name__ for n in
                                  ("gates", "mask", "expert_offsets", "token_ids", "weights",
                                   "topk_ids", "topk_weights")})
        result["shapes"] = [list(plan.gates.shape), list(plan.topk_ids.shape)]
        result["counters"] = counters()
    """)
    assert r["types"] == ["ndarray"]
    assert r["shapes"] == [[1, 4, 8], [4, 2]]
    # Logits up, one synchronization, the seven outputs down.
    assert r["counters"]["htod"] == 1 and r["counters"]["ctx_sync"] == 1
    assert r["counters"]["dtoh"] == 7


def test_kernels_run_on_the_given_stream():
    r = run_fake("""
        x = rng.normal(size=(1, 6, 16)).astype(np.float32)
        plan = usmoe.route(OnDevice(x), mode="unified", k=1.0, device="cuda", stream=0x5150)
        result["streams"] = sorted({s for _, _, _, s in launches()})
        result["cai_stream"] = plan.gates.__cuda_array_interface__["stream"]
        reset()
        plan.gates.__dlpack__(stream=0x5150)   # the producing stream: no wait
        result["same_stream"] = counters()["stream_sync"]
        plan.gates.__dlpack__(stream=7)        # another stream: wait for ours
        result["other_stream"] = counters()["stream_sync"]
        plan.weights.numpy()
        result["numpy"] = counters()["stream_sync"]
    """)
    assert r["streams"] == [0x5150] and r["cai_stream"] == 0x5150
    assert r["same_stream"] == 0 and r["other_stream"] == 1 and r["numpy"] == 2


def test_dlpack_logits_are_read_in_place():
    r = run_fake("""
        x = rng.normal(size=(3, 16)).astype(np.float32)
        plan = usmoe.route(DLPackOnDevice(x, 2, 32), mode="token", k=4, device="cuda")
        result["counters"] = counters()
        result["shape"] = list(plan.gates.shape)
        # bf16 logits through DLPack select the bf16 kernels.
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)
        usmoe.route(DLPackOnDevice(bits, 4, 16), mode="token", k=4, device="cuda")
        result["bf16"] = usmoe.Router(mode="token", k=4, device="cuda").compiled("bf16", 16) \\
            is not None
        usmoe.route(DLPackOnDevice(x, 2, 32), mode="token", k=4, device="cuda", stream=99)
    """)
    assert r["counters"]["htod"] == 0 and r["counters"]["dtoh"] == 0
    assert r["shape"] == [1, 3, 16] and r["bf16"]
    # The producer is asked to have the data ready on the stream usmoe reads
    # it on (1: the legacy default stream).
    assert r["dlpack_streams"] == [1, 1, 99]


def test_bias_is_uploaded_once_per_router():
    r = run_fake("""
        x = rng.normal(size=(1, 4, 8)).astype(np.float32)
        router = usmoe.Router(mode="token", k=2, bias=np.linspace(0, 1, 8), device="cuda")
        for _ in range(3):
            router(OnDevice(x))
        result["htod"] = counters()["htod"]
        result["kinds"] = sorted(meta["kind"] for meta in
                                 router.compiled("f32", 8).kernels.values())
    """)
    assert r["htod"] == 1
    assert "route_token_bias" in r["kinds"]


def test_empty_input_launches_nothing():
    r = run_fake("""
        plan = usmoe.route(OnDevice(np.zeros((2, 0, 8), np.float32)), mode="expert",
                           capacity=1, device="cuda")
        result["kernels"] = [name for name, *_ in launches()
                             if not name.startswith("plan")]
        result["rows"] = plan.token_ids.shape[0]
    """)
    assert r["kernels"] == [] and r["rows"] == 0


@pytest.mark.parametrize("snippet, message", [
    ("usmoe.route(OnDevice(np.zeros((2, 3, 4, 8), np.float32)), mode='token', k=2, "
     "device='cuda')", r"\[T, E\] or \[B, T, E\]"),
    ("usmoe.route(OnDevice(np.zeros((4, 8), np.int32)), mode='token', k=2, device='cuda')",
     "float32 or float16"),
    ("usmoe.route(OnDevice(np.zeros((8, 4), np.float32).T), mode='token', k=2, device='cuda')",
     "C-contiguous"),
    ("usmoe.route(OnDevice(np.zeros((4, 8), np.float32), strides=(4, 16)), mode='token', k=2, "
     "device='cuda')", "C-contiguous"),
    ("usmoe.route(OnDevice(np.zeros(40, np.float32)[1:33].reshape(4, 8)), mode='token', k=2, "
     "device='cuda')", "16-byte aligned"),
    ("usmoe.route(DLPackOnDevice(np.zeros((4, 8), np.float32), 2, 32, device=(2, 1)), "
     "mode='token', k=2, device='cuda')", "device 0"),
    ("usmoe.route(DLPackOnDevice(np.zeros((4, 8), np.int32), 0, 32), mode='token', k=2, "
     "device='cuda')", "DLPack dtype"),
    ("usmoe.route(OnDevice(np.zeros((4, 8), np.float32)), mode='token', k=9, device='cuda')",
     r"expects k in \[1, 8\] \(the number of experts\), got 9"),
    ("usmoe.route(OnDevice(np.zeros((4, 8), np.float32)), mode='token', k=2, device='cuda', "
     "stream='fast')", "stream must be"),
    ("usmoe.route(np.zeros((4, 8), np.float32), mode='token', k=2, stream=3)",
     "device='cuda' only"),
])
def test_bad_device_input_is_a_value_error(snippet, message):
    r = run_fake(f"""
        try:
            {snippet}
            result["error"] = None
        except ValueError as e:
            result["error"] = str(e)
        result["launches"] = counters()["launch"]
    """)
    assert r["error"] is not None, "no ValueError"
    import re
    assert re.search(message, r["error"]), r["error"]
    assert r["launches"] == 0


def test_device_layer_runs_without_copies_or_syncs():
    r = run_fake("""
        e, d, f, t = 8, 16, 32, 12
        w = [rng.normal(size=s).astype(np.float32) for s in ((e, d, f), (e, d, f), (e, f, d))]
        layer = usmoe.MoeLayer(*w, mode="unified", k=1.5, device="cuda")
        h = rng.normal(size=(t, d)).astype(np.float32)
        lg = rng.normal(size=(t, e)).astype(np.float32)
        layer(OnDevice(h), OnDevice(lg))     # compiles, uploads the weights
        result["first"] = counters()
        reset()
        y = layer(OnDevice(h), OnDevice(lg))
        result["second"] = counters()
        mod = layer.compiled("f32")
        kinds = {name: meta["kind"] for name, meta in mod.kernels.items()}
        result["launches"] = [(kinds[name], grid) for name, grid, _, _ in launches()]
        result["y"] = [type(y).__name__, list(y.shape), y.__cuda_array_interface__["typestr"]]
        reset()
        layer(OnDevice(h), OnDevice(lg), init=OnDevice(h))
        result["with_init"] = counters()
    """)
    assert r["first"]["htod"] == 3  # the three weight tensors, once
    assert r["second"] == {"htod": 0, "dtoh": 0, "ctx_sync": 0, "stream_sync": 0,
                           "memset": 1, "launch": 6}
    # N = floor(1.5 * 12) = 18 rows for dispatch and the experts, a block per
    # token for combine; the plan's 12 rows are one tile: one plan launch.
    assert [tuple(x) for x in r["launches"]] == [
        ("scores_unified_sigmoid", 3), ("select_sequence", 1), ("plan_single", 1),
        ("dispatch", 18), ("expert_ffn", 18), ("combine", 12)]
    assert r["y"] == ["CudaArray", [12, 16], "<f4"]
    assert r["with_init"]["memset"] == 0 and r["with_init"]["htod"] == 0


def test_device_weights_are_read_in_place_in_their_layout():
    """Weights already on the GPU (here nn.Linear's out_in layout, gate/up
    fused as HF's gate_up_proj) are never copied: the host code reads them
    where they are."""
    r = run_fake("""
        e, d, f, t = 8, 16, 32, 12
        gate_up = rng.normal(size=(e, 2 * f, d)).astype(np.float32)
        down = rng.normal(size=(e, d, f)).astype(np.float32)
        layer = usmoe.MoeLayer(OnDevice(gate_up), None, OnDevice(down), mode="token", k=2,
                               device="cuda", weight_layout="out_in")
        h = rng.normal(size=(t, d)).astype(np.float32)
        lg = rng.normal(size=(t, e)).astype(np.float32)
        reset()
        y = layer(OnDevice(h), OnDevice(lg))
        result["counters"] = counters()
        result["y"] = list(y.shape)
        try:
            usmoe.MoeLayer(OnDevice(gate_up), None, down, mode="token", k=2, device="cuda",
                           weight_layout="out_in")
        except ValueError as error:
            result["mixed"] = str(error)
    """)
    assert r["counters"]["htod"] == 0 and r["counters"]["launch"] > 0
    assert r["y"] == [12, 16]
    assert "all be on the GPU or all on the host" in r["mixed"]


def test_device_layer_bad_input():
    r = run_fake("""
        w = [np.zeros(s, np.float32) for s in ((4, 8, 8), (4, 8, 8), (4, 8, 8))]
        layer = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")
        errors = []
        for call in (lambda: layer(OnDevice(np.zeros((3, 8), np.float32)), np.zeros((3, 4), np.float32)),
                     lambda: layer(OnDevice(np.zeros((3, 8), np.float16)), OnDevice(np.zeros((3, 4), np.float32))),
                     lambda: layer(OnDevice(np.zeros((2, 8), np.float32)), OnDevice(np.zeros((3, 4), np.float32)))):
            try:
                call()
                errors.append(None)
            except ValueError as e:
                errors.append(str(e))
        result["errors"] = errors
        result["launches"] = counters()["launch"]
    """)
    assert "both be on the GPU or both on the host" in r["errors"][0]
    assert "weights' dtype" in r["errors"][1]
    assert "hidden must be [B*T, D]" in r["errors"][2]
    assert r["launches"] == 0


@pytest.mark.parametrize("cc, target", [("9.0", ["sm_90", "+ptx80"]),
                                        ("8.6", ["sm_86", "+ptx80"]),
                                        ("12.0", ["sm_120", "+ptx88"])])
def test_kernels_are_compiled_for_the_device_at_hand(cc, target):
    r = run_fake("""
        from usmoe import cuda
        result["target"] = list(cuda.target_for_device())
        plan = usmoe.route(OnDevice(rng.normal(size=(4, 64)).astype(np.float32)), mode="token",
                           k=2, device="cuda")
        result["rows"] = plan.token_ids.shape[0]
    """, FAKE_CUDA_CC=cc)
    assert r["target"] == target and r["rows"] == 8


def test_too_old_a_gpu_is_a_clear_runtime_error():
    r = run_fake("""
        try:
            usmoe.route(OnDevice(np.zeros((4, 8), np.float32)), mode="token", k=2, device="cuda")
            result["error"] = None
        except RuntimeError as e:
            result["error"] = str(e)
    """, FAKE_CUDA_CC="7.0")
    assert "compute capability 7.0 is not supported" in r["error"]


TORCH_STANDIN = """
    import torch
    # PyTorch without a GPU: torch.empty(device="cuda") gives host memory,
    # which is what the fake driver's "device" memory is anyway.
    _empty = torch.empty
    torch.empty = lambda *a, device=None, **k: _empty(*a, **k)
    class _Stream:
        cuda_stream = 0
    torch.cuda.current_stream = lambda *a: _Stream()

    # torch.as_tensor(device="cuda") of a CUDA-array-interface object: a
    # tensor over the same memory that keeps the object alive.
    _as_tensor = torch.as_tensor
    def _as_cuda_tensor(obj, device=None, **kwargs):
        if device != "cuda" or not hasattr(obj, "__cuda_array_interface__"):
            return _as_tensor(obj, device=device, **kwargs)
        cai = obj.__cuda_array_interface__
        dtype, n = np.dtype(cai["typestr"]), int(np.prod(cai["shape"]))
        memory = (ctypes.c_char * max(n * dtype.itemsize, 1)).from_address(cai["data"][0] or 16)
        t = torch.from_numpy(np.frombuffer(memory, dtype, n).reshape(cai["shape"]))
        t.cuda_array_owner = obj
        return t
    torch.as_tensor = _as_cuda_tensor

    class TorchOnDevice:
        # Duck-types a CUDA torch.Tensor over a CPU one.
        is_cuda = True
        def __init__(self, t):
            self.t, self.dtype, self.shape = t, t.dtype, t.shape
            self.device = type("D", (), {"index": 0})()
        def data_ptr(self):
            return self.t.data_ptr()
        def is_contiguous(self):
            return self.t.is_contiguous()
"""


def test_torch_results_are_stream_ordered_device_memory_as_tensors():
    torch = pytest.importorskip("torch")
    del torch
    r = run_fake(textwrap.dedent(TORCH_STANDIN) + textwrap.dedent("""
        x = torch.randn(2, 5, 8)
        router = usmoe.Router(mode="token", k=2, device="cuda")
        router(TorchOnDevice(x))
        reset()
        plan = router(TorchOnDevice(x))
        result["memory"] = memory_counters()
        result["counters"] = counters()
        result["plan"] = {n: [type(v).__name__, str(v.dtype), list(v.shape)]
                          for n, v in vars(plan).items()}
        result["owner"] = type(plan.gates.cuda_array_owner).__name__
        w = [torch.randn(*s) for s in ((8, 16, 32), (8, 16, 32), (8, 32, 16))]
        layer = usmoe.MoeLayer(*w, mode="unified", k=1.5, device="cuda")
        layer(TorchOnDevice(torch.randn(10, 16)), TorchOnDevice(torch.randn(10, 8)))
        reset()
        y = layer(TorchOnDevice(torch.randn(10, 16)), TorchOnDevice(torch.randn(10, 8)))
        result["layer_memory"] = memory_counters()
        result["y"] = [type(y).__name__, str(y.dtype), list(y.shape)]
        del plan, y
        import gc; gc.collect()
        result["freed"] = memory_counters()
    """))
    # Every allocation is a cuMemAllocAsync ("alloc" counts all): the host
    # code allocates its results and temporaries on the stream, and the
    # layer's init zeros come from torch.
    assert r["memory"]["alloc"] == r["memory"]["alloc_async"] > 0
    assert r["layer_memory"]["alloc"] == r["layer_memory"]["alloc_async"] > 0
    assert r["counters"]["dtoh"] == 0 and r["counters"]["ctx_sync"] == 0
    assert r["plan"] == {
        "gates": ["Tensor", "torch.float32", [2, 5, 8]],
        "mask": ["Tensor", "torch.bool", [2, 5, 8]],
        "expert_offsets": ["Tensor", "torch.int32", [9]],
        "token_ids": ["Tensor", "torch.int32", [20]],
        "weights": ["Tensor", "torch.float32", [20]],
        "topk_ids": ["Tensor", "torch.int32", [10, 2]],
        "topk_weights": ["Tensor", "torch.float32", [10, 2]]}
    assert r["owner"] == "CudaArray"
    assert r["y"] == ["Tensor", "torch.float32", [10, 16]]
    # Dropping the tensors frees every allocation the two calls made.
    assert r["freed"]["free_async"] >= r["layer_memory"]["alloc_async"]


GPU_FUNCTION = """
func.func @router(%l: tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<9xi32>, tensor<?xi32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l : tensor<?x?x8xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  return %g, %o, %i : tensor<?x?x8xf32>, tensor<9xi32>, tensor<?xi32>
}
"""


def test_compile_for_cuda_runs_the_lowered_host_code():
    r = run_fake(f"""
        fn = usmoe.compile({GPU_FUNCTION!r}, target="cuda", entry="router")
        out = fn([rng.normal(size=(2, 6, 8)).astype(np.float32)])
        result["shapes"] = [list(o.shape) for o in out]
        result["types"] = [str(o.dtype) for o in out]
        result["kernels"] = [name for name, *_ in launches()]
        for _ in range(3):
            fn([rng.normal(size=(1, 5, 8)).astype(np.float32)])
        # Staged arguments, temporaries and results are all freed.
        result["alloc"] = drv.fake_cuda_counter(b"alloc")
        result["free"] = drv.fake_cuda_counter(b"free")
    """)
    # The fake runs no kernel, but the plan's size is known on the host from
    # the budget (2 sequences x floor(1.5 * 6)), not read back.
    assert r["shapes"] == [[2, 6, 8], [9], [18]]
    assert r["types"] == ["float32", "int32", "int32"]
    assert r["kernels"] == ["route_unified_0_scores", "route_unified_0_select", "plan_1_single"]
    assert r["alloc"] == r["free"] > 0


def test_compile_for_cuda_reports_a_failed_launch():
    r = run_fake(f"""
        fn = usmoe.compile({GPU_FUNCTION!r}, target="cuda", entry="router")
        try:
            fn([np.zeros((1, 4, 8), np.float32)])
            result["error"] = None
        except RuntimeError as e:
            result["error"] = str(e)
    """, FAKE_CUDA_FAIL_KERNEL="select")
    assert "the GPU function failed" in r["error"]
    assert "CUDA_ERROR_LAUNCH_FAILED" in r["error"]


ROUTE_ONCE = """
    x = rng.normal(size=(4, 64)).astype(np.float32)
    plan = usmoe.route(OnDevice(x), mode="token", k=2, device="cuda")
    result["rows"] = plan.token_ids.shape[0]
    result["cache"] = usmoe.cache_info()["kernel_cache"]
"""


def test_gpu_kernels_are_cached_on_disk_across_processes(tmp_path):
    cache = str(tmp_path / "kernels")
    first = run_fake(ROUTE_ONCE, USMOE_CACHE_DIR=cache)
    assert (first["cache"]["hits"], first["cache"]["misses"]) == (0, 1)
    assert sorted(p.suffix for p in (tmp_path / "kernels").iterdir()) == [".json", ".so"]
    # A second process loads the host library without compiling: it works
    # even with the compiler taken away (a GPU machine without LLVM/MLIR).
    second = run_fake(textwrap.dedent("""
        import usmoe._native_loader
        def no_compiler():
            raise ImportError("no compiler here")
        usmoe._native_loader.native = no_compiler
    """) + textwrap.dedent(ROUTE_ONCE), USMOE_CACHE_DIR=cache)
    assert (second["cache"]["hits"], second["cache"]["misses"]) == (1, 0)
    assert second["rows"] == first["rows"] == 8
    # Another architecture is another entry.
    other = run_fake(ROUTE_ONCE, USMOE_CACHE_DIR=cache, FAKE_CUDA_CC="8.0")
    assert other["cache"]["misses"] == 1
    assert len(list((tmp_path / "kernels").iterdir())) == 4


def test_a_broken_cache_entry_is_recompiled(tmp_path):
    cache = tmp_path / "kernels"
    run_fake(ROUTE_ONCE, USMOE_CACHE_DIR=str(cache))
    (metadata,) = cache.glob("*.json")
    metadata.write_text("{ torn")
    again = run_fake(ROUTE_ONCE, USMOE_CACHE_DIR=str(cache))
    assert again["cache"]["misses"] == 1 and again["rows"] == 8
    json.loads(metadata.read_text())  # rewritten whole


def test_the_kernel_cache_can_be_turned_off(tmp_path):
    r = run_fake(ROUTE_ONCE, USMOE_CACHE_DIR="", HOME=str(tmp_path))
    assert r["cache"]["dir"] is None and r["cache"]["misses"] == 1
    assert not any(tmp_path.rglob("*.so"))


def test_compiled_function_on_device_arrays_runs_the_host_code_on_the_stream():
    """compile(target="cuda") on arrays already on the GPU: the compiler's
    host code launches its kernels on the given stream without any
    synchronization or copy, allocates its temporaries and results on that
    stream (cuMemAllocAsync) and frees the temporaries there; the results
    stay on the GPU and are freed on the stream when dropped."""
    r = run_fake(f"""
        fn = usmoe.compile({GPU_FUNCTION!r}, target="cuda", entry="router")
        x = rng.normal(size=(2, 6, 8)).astype(np.float32)
        reset()
        out = fn([OnDevice(x)], stream=0x5150)
        result["counters"] = counters()
        result["memory"] = memory_counters()
        result["launches"] = launches()
        result["results"] = [[type(o).__name__, list(o.shape), o._dtype_name] for o in out]
        result["memory_streams"] = sorted({{drv.fake_cuda_async_memory_stream(i)
                                           for i in range(200)}} - {{-1}})
        del out
        result["after_del"] = memory_counters()
        try:
            fn([OnDevice(x), x])
        except (ValueError, TypeError) as e:
            result["mixed"] = str(e)
        try:
            fn([x], stream=5)
        except ValueError as e:
            result["host_stream"] = str(e)
    """)
    assert r["counters"] == {"htod": 0, "dtoh": 0, "ctx_sync": 0, "stream_sync": 0,
                             "memset": 0, "launch": 3}
    assert [(name, stream) for name, _, _, stream in r["launches"]] == [
        ("route_unified_0_scores", 0x5150), ("route_unified_0_select", 0x5150),
        ("plan_1_single", 0x5150)]
    # gates, mask, the plan's counts, the select workspace and candidate
    # buffer (a word each when the select is not spread), the rows'
    # softmax statistics, plan starts, offsets, ids, weights; the seven not
    # returned freed on the stream.
    assert r["memory"] == {"alloc": 10, "free": 7, "alloc_async": 10, "free_async": 7}
    assert r["memory_streams"] == [0x5150]
    # M = 2 x floor(1.5 * 6) from the budget, known without a read-back.
    assert r["results"] == [["CudaArray", [2, 6, 8], "float32"], ["CudaArray", [9], "int32"],
                            ["CudaArray", [18], "int32"]]
    # Dropping the three results frees them too: all ten allocations.
    assert r["after_del"]["free_async"] == 10
    assert "must all be on the GPU or all on the host" in r["mixed"]
    assert "stream applies to arguments on the GPU" in r["host_stream"]


PLAN_OF_ARGUMENTS = """
func.func @plan(%g: tensor<1x?x8xf32>, %m: tensor<1x?x8xi1>) -> tensor<?xi32> {
  %o, %i, %w = moe.plan %g, %m : tensor<1x?x8xf32>
  return %i : tensor<?xi32>
}
"""


def test_host_code_that_reads_device_memory_refuses_a_stream_call():
    """A plan of a selection passed in (not a route's) reads its row count
    back on the host: such host code refuses device arrays with a clear
    error instead of reading device memory on the host."""
    r = run_fake(f"""
        fn = usmoe.compile({PLAN_OF_ARGUMENTS!r}, target="cuda", entry="plan")
        g = np.zeros((1, 4, 8), np.float32)
        try:
            fn([OnDevice(g), OnDevice(g)])
        except ValueError as e:
            result["error"] = str(e)
    """)
    assert "reads device memory on the host" in r["error"]



def test_a_failed_check_of_the_host_library_is_a_value_error():
    """The host library's cf.assert ends the call (the runtime's guard), not
    the process: logits of T * E >= 2^31 are refused before the kernels
    that would overflow."""
    r = run_fake("""
        class Huge:
            __cuda_array_interface__ = {"shape": (1, 2**26, 64), "typestr": "<f4",
                                        "version": 3, "data": (1 << 20, False),
                                        "strides": None}
        result["errors"] = []
        for mode, options in (("token", dict(k=2)), ("unified", dict(k=1.5))):
            try:
                usmoe.route(Huge(), mode=mode, device="cuda", **options)
                result["errors"].append(None)
            except ValueError as e:
                result["errors"].append(str(e))
        result["library"] = type(usmoe.Router(mode="token", k=2, device="cuda")
                                 .compiled("f32", 64)).__name__
    """, USMOE_CACHE_DIR="")
    assert r["library"] == "HostFunction"
    assert "at most 2^31 - 1 (token, expert) pairs" in r["errors"][0]
    assert "at most 2^31 - 1 elements" in r["errors"][1]


def test_without_a_linker_the_host_code_is_jit_compiled(tmp_path):
    r = run_fake("""
        x = rng.normal(size=(4, 64)).astype(np.float32)
        plan = usmoe.route(OnDevice(x), mode="token", k=2, device="cuda")
        result["rows"] = plan.token_ids.shape[0]
        result["launches"] = drv.fake_cuda_counter(b"launch")
        result["function"] = type(usmoe.Router(mode="token", k=2, device="cuda")
                                  .compiled("f32", 64)).__name__
    """, USMOE_CACHE_DIR=str(tmp_path), CC="/nonexistent/cc")
    assert r["function"] == "JitFunction"
    assert r["rows"] == 8 and r["launches"] > 0
    assert not any(tmp_path.rglob("*.so"))


def test_result_descriptors_are_read_once_for_every_caller():
    """usmoe_rt_read_results (what HostFunction and the JIT's call_device
    both use): data = aligned + offset * element size, the sizes, and the
    allocation to free only once per buffer and never for an argument."""
    r = run_fake("""
        from usmoe import cuda
        A, P = 0x10000, 0x20000
        words = (ctypes.c_int64 * 18)(
            A, A, 2, 5, 1,                # f32 [5] at offset 2
            A, A + 64, 1, 2, 3, 3, 1,     # i32 [2, 3], the same buffer
            P, P, 0, 4, 1,                # bf16 [4]: an argument returned
            0)
        result["read"] = cuda.read_results(
            words, [("f32", [-1]), ("i32", [2, -1]), ("bf16", [-1])], [P])
    """)
    A, P = 0x10000, 0x20000
    assert r["read"] == [[A, A + 8, [5]], [0, A + 64 + 4, [2, 3]], [0, P, [4]]]


def test_host_code_that_reads_back_runs_waiting_on_host_arrays():
    """Packed sequences (the plan's size depends on the offsets) and a
    selection made elsewhere run their host code as compiled, not as a
    stream call: host arrays in, the call waits, host arrays out. With
    logits on the GPU, cu_seqlens is a clear NotImplementedError."""
    r = run_fake("""
        x = rng.normal(size=(10, 8)).astype(np.float32)
        reset()
        plan = usmoe.route(x, mode="unified", k=1.5, device="cuda", cu_seqlens=[0, 4, 10])
        result["plan"] = {n: [type(getattr(plan, n)).__name__, list(getattr(plan, n).shape)]
                          for n in ("gates", "mask", "expert_offsets")}
        result["waits"] = counters()["ctx_sync"] + counters()["stream_sync"]
        result["async"] = memory_counters()["alloc_async"]
        given = usmoe.plan_from_topk(np.array([[0, 1], [2, 3]]), np.ones((2, 2)), 8,
                                     device="cuda")
        result["given"] = list(given.expert_offsets.shape)
        w = [rng.normal(size=s).astype(np.float32) for s in ((8, 16, 32), (8, 16, 32),
                                                            (8, 32, 16))]
        layer = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")
        y = layer.forward_topk(rng.normal(size=(2, 16)).astype(np.float32),
                               np.array([[0, 1], [2, 3]]), np.ones((2, 2)))
        result["forward_topk"] = [type(y).__name__, list(y.shape)]
        y = layer(rng.normal(size=(10, 16)).astype(np.float32), x, cu_seqlens=[0, 4, 10])
        result["packed_layer"] = list(y.shape)
        try:
            usmoe.route(OnDevice(x), mode="unified", k=1.5, device="cuda", cu_seqlens=[0, 10])
        except NotImplementedError as error:
            result["device_packed"] = str(error)
    """)
    assert r["plan"] == {"gates": ["ndarray", [1, 10, 8]], "mask": ["ndarray", [1, 10, 8]],
                         "expert_offsets": ["ndarray", [9]]}
    assert r["waits"] > 0 and r["async"] == 0
    assert r["given"] == [9]
    assert r["forward_topk"] == ["ndarray", [2, 16]]
    assert r["packed_layer"] == [10, 16]
    assert "read back from the device" in r["device_packed"]


def test_the_default_memory_pool_keeps_freed_memory():
    """Stream calls allocate from the device's default pool: the runtime
    raises its release threshold so that a synchronization does not return
    the memory to the OS between calls."""
    r = run_fake("""
        drv.fake_cuda_pool_release_threshold.restype = ctypes.c_ulonglong
        usmoe.route(OnDevice(np.zeros((4, 8), np.float32)), mode="token", k=2, device="cuda")
        result["threshold"] = drv.fake_cuda_pool_release_threshold()
    """)
    assert r["threshold"] == 2**64 - 1
