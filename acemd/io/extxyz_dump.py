"""Frames appended to an extended-XYZ file by rank 0, whole frames only.

Used for the extrapolative structures of a run (``[extrapolation].dump_file``),
the input of pacemaker's ``pace_select``.  Each frame's atoms are gathered by
global id (:func:`acemd.parallel.gather.gather_by_id`) and ordered by it; ASE's
extxyz writer formats the frame in memory (cell, pbc, species, positions,
per-atom arrays such as ``gamma`` and ``id``, and ``info`` such as step, time
and max_gamma on the comment line), and the text goes to the file in one
``write`` on an ``O_APPEND`` descriptor followed by ``fsync``.  A run killed in
the middle of that leaves at most a truncated last frame; reopening the file
for a restart removes it, together with the frames of steps after the restart
step (the continued run writes them again).  ASE stores per-atom floats with 8
decimals.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..parallel.collective import on_root
from ..parallel.gather import gather_by_id

_STEP = re.compile(rb"(?:^|\s)step=(-?\d+)(?:\s|$)")


def complete_frames_end(path, last_step: int | None = None) -> int:
    """Byte offset after the last complete frame (with ``step`` <= ``last_step`` if given)."""
    end = 0
    with open(path, "rb") as f:
        while True:
            head = f.readline()
            try:
                n = int(head)
            except ValueError:
                break
            comment = f.readline()
            if not comment.endswith(b"\n"):
                break
            lines = [f.readline() for _ in range(n)]
            if n and not lines[-1].endswith(b"\n"):
                break
            m = _STEP.search(comment)
            if last_step is not None and m is not None and int(m.group(1)) > last_step:
                break
            end = f.tell()
    return end


class ExtxyzDump:
    """Collective extxyz frame writer (rank 0 writes, all ranks call).

    A new run (``append=False``) starts an empty file; ``append=True`` keeps the
    complete frames of steps <= ``restart_step`` and appends after them.
    """

    def __init__(self, path, comm, n_atoms: int, species_names, pbc, *, append=False,
                 restart_step: int | None = None):
        self.path = Path(path)
        self.comm = comm
        self.n_atoms = int(n_atoms)
        self.species_names = np.array(list(species_names))
        self.pbc = np.asarray(pbc, dtype=bool)
        self.n_frames = 0

        def open_root():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if append and self.path.exists():
                end = complete_frames_end(self.path, restart_step)
                with open(self.path, "r+b") as f:
                    f.truncate(end)
            else:
                self.path.write_bytes(b"")
        on_root(comm, open_root)

    def write_frame(self, cell, ids_local, positions_local, species_local,
                    arrays_local: Mapping[str, Any], info: Mapping[str, Any]):
        """Append one frame (collective); ``cell`` and ``info`` are taken from rank 0."""
        local = {"positions": positions_local, "species": species_local, **arrays_local}
        ids, data = gather_by_id(self.comm, ids_local, local, n_expected=self.n_atoms)
        on_root(self.comm, lambda: self._append(self._format(cell, ids, data, info)))
        self.n_frames += 1

    def _format(self, cell, ids, data, info) -> bytes:
        from ase import Atoms
        from ase.io import write
        atoms = Atoms(symbols=self.species_names[data.pop("species")].tolist(),
                      positions=data.pop("positions"), cell=np.asarray(cell), pbc=self.pbc)
        atoms.arrays["id"] = ids
        for name, values in data.items():
            atoms.arrays[name] = values
        atoms.info.update(info)
        buf = io.StringIO()
        write(buf, atoms, format="extxyz", parallel=False)    # rank 0 alone: no ASE broadcast
        return buf.getvalue().encode("utf-8")

    def _append(self, text: bytes):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
