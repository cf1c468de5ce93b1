"""Runs usmoe-opt with each pipeline on every input in crashers/ (inputs
that once crashed usmoe-opt, the fuzz target or the Python extension):
each must end in output or a diagnostic (exit 0 or 1), never a signal."""

import pathlib
import subprocess
import sys

PIPELINES = ["-verify-diagnostics=false", "-usmoe-to-cpu", "-convert-moe-to-gpu",
             "-usmoe-to-gpu-emu"]


def main(opt: str, directory: str) -> int:
    failures = 0
    inputs = sorted(pathlib.Path(directory).glob("*.mlir"))
    for path in inputs:
        for pipeline in PIPELINES:
            args = [opt, str(path), "-o", "/dev/null"]
            if not pipeline.startswith("-verify"):
                args.append(pipeline)
            result = subprocess.run(args, capture_output=True, text=True, timeout=120)
            if result.returncode not in (0, 1):
                failures += 1
                print(f"FAIL {path.name} {pipeline}: exit {result.returncode}\n{result.stderr}")
    print(f"{len(inputs)} inputs x {len(PIPELINES)} runs, {failures} crashes")
    return 1 if failures or not inputs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
