"""Streaming reader of acemd's H5MD trajectories (see :mod:`acemd.io.h5md` for the layout).

Frames are read one at a time (``/particles/all/<field>/value[i]``), so memory
does not grow with the trajectory's length.  The number of frames is
``len(box/edges/step)``, which counts complete frames only (a run killed in a
frame leaves trailing ``value`` rows that are ignored), and a trajectory
appended across restarts is one continuous file, so nothing special is needed
for it.  Files are opened without HDF5 locking, so a running simulation's
trajectory can be analysed.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from .errors import AnalysisInputError

PARTICLES = "particles/all"


@dataclass
class Frame:
    """One frame: its index in the file, step, time (ps), cell (rows, Å) and requested fields."""

    index: int
    step: int
    time: float
    cell: np.ndarray
    data: dict

    def __getitem__(self, name):
        return self.data[name]


def parse_frames(spec: str | None, n_frames: int, every: int = 1) -> np.ndarray:
    """Frame indices from ``--frames`` (``"10:"``, ``"0:100:5"``, ``"0,5,-1"``) and ``--every``.

    Negative indices count from the end, as in Python; ``every`` thins the selection.
    """
    if every < 1:
        raise AnalysisInputError(f"--every must be >= 1, got {every}")
    idx = np.arange(n_frames)
    if spec is not None and str(spec).strip():
        spec = str(spec).strip()
        try:
            if ":" in spec:
                parts = [int(p) if p.strip() else None for p in spec.split(":")]
                if len(parts) > 3:
                    raise ValueError
                idx = idx[slice(*parts)]
            else:
                picked = [int(p) for p in spec.split(",") if p.strip()]
                bad = [p for p in picked if not -n_frames <= p < n_frames]
                if bad:
                    raise AnalysisInputError(f"--frames {spec!r}: frame(s) {bad} outside the "
                                             f"trajectory's {n_frames} frames")
                idx = idx[picked]
        except ValueError:
            raise AnalysisInputError(f"--frames {spec!r}: expected start:stop[:step] or a "
                                     "comma-separated list of frame indices") from None
    idx = idx[::every]
    if len(idx) == 0:
        raise AnalysisInputError(f"--frames {spec!r} --every {every}: no frame selected "
                                 f"(the trajectory has {n_frames})")
    return idx


class Trajectory:
    """An acemd H5MD trajectory opened for reading (use as a context manager)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise AnalysisInputError(f"{self.path}: file not found")
        try:
            self.file = _open_read_only(self.path)
        except OSError:
            raise AnalysisInputError(f"{self.path}: not an HDF5 file, so not an acemd H5MD "
                                     f"trajectory ([trajectory].file of a run){_what_else(self.path)}") from None
        f = self.file
        if "h5md" not in f or f"{PARTICLES}/box/edges/step" not in f:
            self.close()
            raise AnalysisInputError(f"{self.path}: not an acemd H5MD trajectory (no /h5md group or "
                                     f"no /{PARTICLES}/box/edges){_what_else(self.path)}")
        self.particles = f[PARTICLES]
        edges = self.particles["box/edges"]
        self._steps = edges["step"]
        self._times = edges["time"]
        self._edges = edges["value"]
        self.n_frames = int(len(self._steps))
        self.fields = tuple(k for k in self.particles if k != "box" and "value" in self.particles[k])
        if not self.fields:
            self.close()
            raise AnalysisInputError(f"{self.path}: trajectory has no per-atom field under /{PARTICLES}")
        self.n_atoms = int(self.particles[self.fields[0]]["value"].shape[1])
        self.pbc = np.array([b in (b"periodic", "periodic")
                             for b in self.particles["box"].attrs.get("boundary", [b"periodic"] * 3)])
        self.species_names = self._species_names()

    # ------------------------------------------------------------------ metadata
    def _species_names(self) -> list[str]:
        for obj in (self.particles.get("species"), self.file.get("parameters/acemd")):
            if obj is not None and "species_names" in obj.attrs:
                return [s.decode() if isinstance(s, bytes) else str(s) for s in obj.attrs["species_names"]]
        return []

    def step(self, i: int) -> int:
        return int(self._steps[i])

    def times(self) -> np.ndarray:
        """Time (ps) of every complete frame."""
        return np.asarray(self._times[: self.n_frames], dtype=float)

    def steps(self) -> np.ndarray:
        return np.asarray(self._steps[: self.n_frames], dtype=np.int64)

    def cell(self, i: int) -> np.ndarray:
        return np.asarray(self._edges[i], dtype=float)

    def require(self, fields: Iterable[str], purpose: str):
        """Raise a one-line error naming the file and the first missing per-atom field."""
        for name in fields:
            if name not in self.fields:
                raise AnalysisInputError(
                    f"{self.path}: trajectory has no '{name}' field (/{PARTICLES}/{name}), which "
                    f"{purpose} needs; add \"{name}\" to [trajectory].fields of the run "
                    f"(present: {', '.join(self.fields)})")
        if self.n_frames == 0:
            raise AnalysisInputError(f"{self.path}: trajectory has no complete frame")

    def read(self, name: str, i: int) -> np.ndarray:
        """Per-atom field ``name`` of frame ``i`` (atoms ordered by id)."""
        return self.particles[name]["value"][i]

    def read_atoms(self, name: str, frames: np.ndarray, atoms: slice) -> np.ndarray:
        """``name`` of a block of atoms over the given frames: shape (n_frames, n_block, ...)."""
        ds = self.particles[name]["value"]
        frames = np.asarray(frames)
        if len(frames) > 1 and np.all(np.diff(frames) == frames[1] - frames[0]) and frames[1] > frames[0]:
            return ds[int(frames[0]):int(frames[-1]) + 1:int(frames[1] - frames[0]), atoms]
        return np.stack([ds[int(i), atoms] for i in frames])

    def species(self, i: int = 0) -> np.ndarray:
        """Species index of every atom (acemd's species never change during a run)."""
        if "species" not in self.fields:
            raise AnalysisInputError(f"{self.path}: trajectory has no 'species' field "
                                     f"(/{PARTICLES}/species); add \"species\" to [trajectory].fields")
        return np.asarray(self.read("species", i), dtype=np.int64)

    def symbols(self) -> list[str]:
        sp = self.species()
        names = self.species_names or [f"X{k}" for k in range(int(sp.max()) + 1)]
        return [names[k] for k in sp]

    def input_text(self) -> str | None:
        ds = self.file.get("parameters/acemd/input_text")
        if ds is None:
            return None
        v = ds[()]
        return v.decode() if isinstance(v, bytes) else str(v)

    def masses_by_species(self) -> np.ndarray:
        """amu of each species: the run's ``[masses]`` overrides, else ASE's standard masses."""
        from ase.data import atomic_masses, atomic_numbers
        overrides = {}
        text = self.input_text()
        if text:
            try:
                overrides = dict(tomllib.loads(text).get("masses", {}))
            except tomllib.TOMLDecodeError:
                overrides = {}
        out = []
        for name in self.species_names:
            if name in overrides:
                out.append(float(overrides[name]))
            elif name in atomic_numbers:
                out.append(float(atomic_masses[atomic_numbers[name]]))
            else:
                raise AnalysisInputError(f"{self.path}: no mass for species '{name}'")
        return np.array(out)

    def observable(self, name: str):
        """``(time_ps, values, unit)`` of ``/observables/<name>`` (complete frames only)."""
        grp = self.file.get(f"observables/{name}")
        if grp is None:
            raise AnalysisInputError(f"{self.path}: no observable '{name}' (/observables/{name})")
        n = len(grp["step"])
        unit = grp["value"].attrs.get("unit")
        unit = unit.decode() if isinstance(unit, bytes) else unit
        return np.asarray(grp["time"][:n], float), np.asarray(grp["value"][:n], float), unit

    def observables(self) -> list[str]:
        return list(self.file.get("observables", {}))

    # ------------------------------------------------------------------ frames
    def frames(self, fields: Sequence[str], indices=None) -> Iterator[Frame]:
        """Yield the selected frames one at a time with the requested per-atom fields."""
        self.require(fields, "this analysis")
        indices = np.arange(self.n_frames) if indices is None else np.asarray(indices)
        for i in indices:
            i = int(i)
            yield Frame(i, int(self._steps[i]), float(self._times[i]), self.cell(i),
                        {name: self.read(name, i) for name in fields})

    def close(self):
        if getattr(self, "file", None) is not None:
            self.file.close()
            self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _open_read_only(path):
    """Open without HDF5 file locking (a running simulation's file), or, when this process has the
    file open already with other access flags (an MDAnalysis reader), as it was opened."""
    try:
        return h5py.File(path, "r", locking=False)
    except OSError:
        if not h5py.is_hdf5(str(path)):
            raise
        return h5py.File(path, "r")


def _what_else(path) -> str:
    """``"; this is ... (read it with ...)"`` when the file is another acemd output, else ``""``."""
    from .filekind import FOREIGN, describe, kind
    try:
        got = kind(path)
    except AnalysisInputError:
        return ""
    return "" if got in FOREIGN else f"; this is {describe(got)}"


def is_hdf5(path) -> bool:
    try:
        return h5py.is_hdf5(str(path))
    except OSError:
        return False
