"""The example scripts the README points at keep working."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(name):
    env = dict(os.environ, PYTHONPATH=os.environ.get(
        "USMOE_PYTHON_PACKAGES", os.path.join(ROOT, "build", "python_packages")))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_route_batch_prints_the_three_plans():
    out = run_example("route_batch.py")
    # 2 sequences x 6 tokens: k=2 -> 24 pairs; C = ceil(6*2/8) = 2 -> 2*8*2 = 32;
    # N = floor(1.5*6) = 9 per sequence -> 18.
    assert re.findall(r"selected pairs M = (\d+)", out) == ["24", "32", "18"]


def test_moe_layer_example_halves_the_routed_compute():
    out = run_example("moe_layer.py")
    assert re.findall(r"M = +(\d+)", out) == ["64", "64", "32"]


def test_hf_example_switches_routers_and_budgets():
    import pytest
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not hasattr(torch.library, "custom_op") or int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("needs PyTorch >= 2.4 and transformers >= 5")
    out = run_example("hf_switch_router.py")
    # 24 prompt tokens: k=4 -> 96 pairs; unified k = 4, 2, 1 -> 96, 48, 24;
    # Expert Choice C = ceil(1.0 * 24 * 4 / 16) = 6 -> 16 * 6 = 96.
    assert re.findall(r"routed pairs +(\d+)", out) == ["96", "96", "48", "24", "96"]
    assert "new tokens" in out
