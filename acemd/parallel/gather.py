"""Gather per-atom arrays of all ranks to one rank, ordered by global atom id."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .collective import agree, on_root


def _transport_dtype(a: np.ndarray) -> np.dtype:
    if a.dtype.kind == "f":
        return np.dtype(np.float64)
    if a.dtype.kind in "iub":
        return np.dtype(np.int64)
    raise TypeError(f"unsupported dtype {a.dtype} (numeric arrays only)")


def _mpi_type(dtype: np.dtype):
    from mpi4py.util.dtlib import from_numpy_dtype
    return from_numpy_dtype(dtype)


def gather_by_id(comm, ids_local, arrays: Mapping[str, Any], *, n_expected: int | None = None,
                 root: int = 0):
    """Gather per-atom arrays to ``root`` and order them by global id (collective).

    ``ids_local``: (n_local,) global ids owned by this rank (any order).
    ``arrays``: name -> array of shape (n_local, *trailing); trailing shape and
    dtype kind (float / integer) must agree across ranks.  Floats travel as
    float64 and integers/bools as int64 (``Gatherv`` of contiguous buffers).

    Returns ``(ids_sorted, {name: array ordered by id})`` on ``root`` and
    ``(None, None)`` elsewhere.  Shape mismatches, duplicate ids or a total
    different from ``n_expected`` raise ``ValueError`` on every rank.
    """
    rank = comm.Get_rank()
    err, signature = None, None
    try:
        ids = np.asarray(ids_local)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n_local = ids.size
        prepared = {}
        signature = []
        for name, arr in arrays.items():
            a = np.asarray(arr)
            if a.ndim == 0 or a.shape[0] != n_local:
                raise ValueError(f"'{name}' has shape {a.shape} but this rank owns {n_local} atoms")
            dt = _transport_dtype(a)
            prepared[name] = np.ascontiguousarray(a, dtype=dt)
            signature.append((name, a.shape[1:], dt.kind))
    except (TypeError, ValueError) as exc:
        err = str(exc)
    agree(comm, err, ValueError)
    signatures = comm.allgather(signature)
    if any(s != signatures[0] for s in signatures):
        raise ValueError("per-atom arrays differ between ranks in names, trailing shapes or kinds: "
                         + "; ".join(f"rank {r}: {s}" for r, s in enumerate(signatures)))

    counts = comm.gather(n_local, root=root)
    if rank == root:
        counts = np.asarray(counts, dtype=np.int64)
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        n_total = int(counts.sum())

    def gatherv(send: np.ndarray, per_atom: int):
        mtype = _mpi_type(send.dtype)
        if rank == root:
            recv = np.empty(n_total * per_atom, dtype=send.dtype)
            comm.Gatherv([send.reshape(-1), mtype],
                         [recv, (counts * per_atom, displs * per_atom), mtype], root=root)
            return recv
        comm.Gatherv([send.reshape(-1), mtype], None, root=root)
        return None

    all_ids = gatherv(ids, 1)
    gathered = {}
    for name, a in prepared.items():
        trailing = a.shape[1:]
        per_atom = int(np.prod(trailing, dtype=np.int64)) if trailing else 1
        buf = gatherv(a, per_atom)
        if rank == root:
            gathered[name] = buf.reshape((n_total,) + trailing)

    def order():
        if n_expected is not None and n_total != n_expected:
            raise ValueError(f"the ranks own {n_total} atoms in total, expected {n_expected}")
        perm = np.argsort(all_ids, kind="stable")
        sorted_ids = all_ids[perm]
        dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
        if dup.size:
            raise ValueError(f"duplicate atom ids, e.g. {sorted_ids[dup[0]]} is owned twice")
        return sorted_ids, {k: v[perm] for k, v in gathered.items()}

    out = on_root(comm, order, root=root)
    return (None, None) if out is None else out
