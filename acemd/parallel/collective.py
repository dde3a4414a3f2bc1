"""Collective control flow and reductions: work done on one rank whose errors reach every rank."""
from __future__ import annotations

import numpy as np
from mpi4py import MPI


def agree(comm, local_error: str | None, exc_type=ValueError):
    """Collective check: raise ``exc_type`` on every rank if any rank reported an error."""
    errors = comm.allgather(local_error)
    bad = [(r, e) for r, e in enumerate(errors) if e]
    if bad:
        if comm.Get_size() == 1:
            raise exc_type(bad[0][1])
        raise exc_type("; ".join(f"rank {r}: {e}" for r, e in bad))


def global_max(comm, local_values) -> float:
    """Largest of all ranks' values (collective); -inf when no rank has any."""
    a = np.asarray(local_values, dtype=np.float64)
    return float(comm.allreduce(float(a.max()) if a.size else -np.inf, op=MPI.MAX))


class RemoteError(RuntimeError):
    """Raised on the ranks that did not run the failing work, with the root's message."""


def on_root(comm, fn, root=0):
    """Run ``fn()`` on ``root`` only; if it raises, every rank raises the same error.

    Returns fn's result on root and None elsewhere.  Keeps ranks from waiting
    forever for a rank that failed while reading a file.
    """
    result, error = None, None
    if comm.Get_rank() == root:
        try:
            result = fn()
        except Exception as exc:       # noqa: BLE001 - re-raised on every rank below
            error = exc
    err = comm.bcast((type(error), str(error)) if error is not None else None, root=root)
    if err is not None:
        if error is not None:
            raise error
        etype, message = err
        try:
            raise etype(message)
        except TypeError:
            raise RemoteError(message) from None
    return result
