"""Loads the native module, or says which interpreter it was built for."""

from __future__ import annotations

import sys


def wrong_interpreter_message(what: str) -> str:
    try:
        from . import _build_info
    except ImportError:  # a source tree, not a build
        return f"usmoe cannot load here: {what}"
    return (f"usmoe cannot load in {sys.executable} (Python "
            f"{sys.version_info[0]}.{sys.version_info[1]}): {what}. Its native module was "
            f"built for {_build_info.PYTHON} (Python {_build_info.PYTHON_VERSION}): run "
            f"PYTHONPATH=build/python_packages {_build_info.PYTHON} ...")


def native():
    """usmoe._usmoe (ImportError with the interpreter to use otherwise)."""
    try:
        from . import _usmoe
    except ImportError as error:
        raise ImportError(wrong_interpreter_message(str(error))) from error
    return _usmoe
