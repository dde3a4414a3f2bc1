"""Structures of the loop: the starting cells (a lattice, strained and rattled copies), labelled frames
as extxyz (what ``acemd fit`` reads), and atomic file writes.

Every structure goes through a file before it is used (the dataset, the candidates, the selection),
so a restarted loop reads exactly what the uninterrupted one used.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["generate_start", "labelled_atoms", "write_frames", "read_frames", "has_label", "atomic_write_text"]


def atomic_write_text(path, text: str):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def generate_start(spec: dict) -> list:
    """``count`` cubic cells of ``lattice`` (``repeat`` unit cells), each strained by a random symmetric
    strain (components uniform in [-strain, strain]) and rattled (Gaussian, ``rattle`` Å), from ``seed``.
    The first cell is unstrained (only rattled), so the dataset contains the equilibrium lattice."""
    from ase.build import bulk
    rng = np.random.default_rng(spec["seed"])
    base = bulk(spec["element"], spec["lattice"], a=float(spec["a"]), cubic=spec["lattice"] != "hcp")
    base = base.repeat(tuple(spec["repeat"]))
    out = []
    for k in range(spec["count"]):
        a = base.copy()
        if k > 0 and spec["strain"] > 0:
            e = rng.uniform(-spec["strain"], spec["strain"], (3, 3))
            e = 0.5 * (e + e.T)
            a.set_cell(a.cell.array @ (np.eye(3) + e), scale_atoms=True)
        if spec["rattle"] > 0:
            a.positions += rng.normal(0.0, spec["rattle"], a.positions.shape)
        a.info = {"config_type": "start"}
        out.append(a)
    return out


def has_label(atoms) -> bool:
    res = getattr(atoms.calc, "results", None) or {}
    return "energy" in res and "forces" in res


def labelled_atoms(atoms, label, name: str):
    """A copy of ``atoms`` carrying ``label`` (a SinglePointCalculator) and its name in info."""
    from ase.calculators.singlepoint import SinglePointCalculator
    a = atoms.copy()
    a.info = {"name": name}
    keep = {"numbers", "positions"}
    for k in list(a.arrays):
        if k not in keep:
            del a.arrays[k]
    results = {"energy": label.energy, "forces": np.asarray(label.forces)}
    if label.stress is not None:
        results["stress"] = np.asarray(label.stress)
    a.calc = SinglePointCalculator(a, **results)
    return a


def write_frames(path, frames):
    """Write frames to an extxyz atomically (an empty file for no frames)."""
    from ase.io import write
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if frames:
        write(tmp, list(frames), format="extxyz", parallel=False)
    else:
        tmp.write_text("")
    os.replace(tmp, path)


def read_frames(path) -> list:
    from ase.io import read
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    return read(path, index=":", format="extxyz", parallel=False)
