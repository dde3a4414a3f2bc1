"""Replace an output file atomically: write beside it, then rename over it.

A kill or a full disk during the write leaves the previous file (or none), never
half of a new one.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path):
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
