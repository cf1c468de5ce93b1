"""An on-disk cache of compiled GPU functions: the compiler's host code
with its kernels embedded, as a shared library plus its signature (JSON).

Compiling a router for the GPU (usmoe-to-nvvm, ptxas, LLVM for the host
code) takes about a second; the in-memory cache of usmoe.api saves it
within a process, this one across processes and on machines that can run
the libraries but not build them (a GPU server without LLVM/MLIR, given a
cache filled elsewhere for its architecture and CPU).

Location: $USMOE_CACHE_DIR, else ~/.cache/usmoe/kernels; USMOE_CACHE_DIR=""
turns it off. Entries are keyed by the IR, the entry function, the target
(chip, PTX features, the host's CPU architecture) and the compiler itself (a hash of the native module's
file), so a rebuilt compiler never reuses stale code. Writes are atomic; an
unreadable entry is ignored and rebuilt.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import tempfile
from typing import Callable, Optional, Tuple

_compiler_id: Optional[str] = None
# Lookups this process answered from disk / had to compile.
hits = 0
misses = 0


def cache_dir() -> Optional[str]:
    """The cache directory, or None when caching is off."""
    configured = os.environ.get("USMOE_CACHE_DIR")
    if configured is not None:
        return configured or None
    return os.path.join(os.path.expanduser("~"), ".cache", "usmoe", "kernels")


def compiler_id() -> Optional[str]:
    """A hash of the native module (the compiler), None if it is absent."""
    global _compiler_id
    if _compiler_id is None:
        here = os.path.dirname(os.path.abspath(__file__))
        candidates = sorted(glob.glob(os.path.join(here, "_usmoe*.so")))
        if not candidates:
            return None
        digest = hashlib.sha256()
        with open(candidates[0], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _compiler_id = digest.hexdigest()
    return _compiler_id


def _key(*parts: str) -> Optional[str]:
    compiler = compiler_id()
    if compiler is None:
        return None
    return hashlib.sha256("\0".join([compiler, *parts]).encode()).hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def host_library(ir: str, entry: str, chip: str, features: str,
                 build: Callable[[str], dict]) -> Tuple[str, dict]:
    """(path of the shared library, its metadata) for function `entry` of
    `ir` on (chip, features): from the cache, else `build(path)` links the
    library at `path` and returns the metadata (then both are stored; with
    the cache off, `path` is in a fresh temporary directory)."""
    global hits, misses
    directory = cache_dir()
    # The library's CPU architecture too: a cache may travel between machines.
    key = _key(ir, entry, chip, features, platform.machine()) if directory else None
    if key is not None:
        base = os.path.join(directory, key)
        try:
            with open(base + ".json") as f:
                metadata = json.load(f)  # a torn or foreign file is a miss
            if os.path.getsize(base + ".so") and metadata.get("packed"):
                hits += 1
                return base + ".so", metadata
        except (OSError, ValueError, AttributeError):
            pass
    misses += 1
    if key is None:
        path = os.path.join(tempfile.mkdtemp(prefix="usmoe-"), "host.so")
        return path, build(path)
    try:
        os.makedirs(directory, exist_ok=True)
        scratch = tempfile.mkdtemp(dir=directory, prefix=".tmp-")
    except OSError:  # a read-only disk only costs the next build
        path = os.path.join(tempfile.mkdtemp(prefix="usmoe-"), "host.so")
        return path, build(path)
    try:
        metadata = build(os.path.join(scratch, "host.so"))
        # Metadata last: an entry counts once both files are there.
        os.replace(os.path.join(scratch, "host.so"), base + ".so")
        _write_atomic(base + ".json", json.dumps(metadata).encode())
    finally:
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        os.rmdir(scratch)
    return base + ".so", metadata
