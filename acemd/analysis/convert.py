"""H5MD trajectory -> extended XYZ (ASE, OVITO) and -> ASE ``.traj``.

Extended XYZ is written here, not by ``ase.io.write``, because ASE formats
per-atom floats with 8 decimals and a conversion must give back the
trajectory's positions to 1e-10 Å: every float is written with 17 significant
digits (``repr`` precision), so reading the file with ASE returns the stored
doubles exactly.  The comment line carries ``Lattice``, ``Properties``,
``pbc``, ``step``, ``time`` (ps) and, when the trajectory has the observable,
``energy`` (potential energy, eV); per-atom columns are ``species``, ``pos``
(Å), ``id`` and, when present, ``vel`` (Å/ps, acemd units), ``forces``
(eV/Å), ``energies`` (eV) and ``gamma``.  ASE reads ``forces``/``energies``/
``energy`` as calculator results.

The ``.traj`` file is written by ``ase.io.Trajectory`` (binary, full
precision): positions, cell, pbc, masses, momenta (velocities converted to
ASE units), forces and energy as a single-point calculator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import AnalysisInputError

#: trajectory field -> (extxyz property name, type letter, columns)
_COLUMNS = {"id": ("id", "I", 1), "velocity": ("vel", "R", 3), "force": ("forces", "R", 3),
            "energy": ("energies", "R", 1), "gamma": ("gamma", "R", 1)}


def _fmt(x) -> str:
    return repr(float(x))


def _potential_energy(traj):
    try:
        return traj.observable("potential_energy")[1]
    except AnalysisInputError:
        return None


def write_extxyz(traj, frames, path) -> int:
    """Write the selected frames to ``path``; returns the number of frames."""
    traj.require(["position", "species"], "the conversion")
    symbols = np.array(traj.symbols())
    extra = [f for f in _COLUMNS if f in traj.fields]
    props = "species:S:1:pos:R:3" + "".join(f":{_COLUMNS[f][0]}:{_COLUMNS[f][1]}:{_COLUMNS[f][2]}"
                                            for f in extra)
    pbc = " ".join("T" if p else "F" for p in traj.pbc)
    epot = _potential_energy(traj)
    n = 0
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for fr in traj.frames(["position"] + extra, frames):
            lattice = " ".join(_fmt(x) for x in fr.cell.reshape(-1))
            info = f'Lattice="{lattice}" Properties={props} pbc="{pbc}" step={fr.step} time={_fmt(fr.time)}'
            if epot is not None and np.isfinite(epot[fr.index]):
                info += f" energy={_fmt(epot[fr.index])}"
            cols = [symbols[:, None], fr["position"]]
            for f in extra:
                a = np.asarray(fr[f])
                cols.append(a.reshape(len(a), -1))
            lines = [f"{traj.n_atoms}", info]
            for i in range(traj.n_atoms):
                cells = [str(symbols[i])]
                for c in cols[1:]:
                    cells += [str(int(x)) if c.dtype.kind in "iu" else _fmt(x) for x in c[i]]
                lines.append(" ".join(cells))
            out.write("\n".join(lines) + "\n")
            n += 1
    return n


def frame_atoms(traj, fr, symbols, masses, epot):
    """An ``ase.Atoms`` of one frame with momenta and a single-point calculator."""
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator
    atoms = Atoms(symbols=symbols, positions=fr["position"], cell=fr.cell, pbc=traj.pbc)
    atoms.set_masses(masses)
    if "velocity" in fr.data:
        atoms.set_velocities(np.asarray(fr["velocity"]) / (1000.0 * units.fs))   # Å/ps -> ASE
    results = {}
    if "force" in fr.data:
        results["forces"] = np.asarray(fr["force"], float)
    if epot is not None and np.isfinite(epot[fr.index]):
        results["energy"] = float(epot[fr.index])
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(step=fr.step, time=fr.time)
    return atoms


def write_ase_traj(traj, frames, path) -> int:
    from ase.io.trajectory import Trajectory as AseTrajectory
    traj.require(["position", "species"], "the conversion")
    symbols = traj.symbols()
    masses = traj.masses_by_species()[traj.species()]
    extra = [f for f in ("velocity", "force") if f in traj.fields]
    epot = _potential_energy(traj)
    n = 0
    with AseTrajectory(str(path), "w") as out:
        for fr in traj.frames(["position"] + extra, frames):
            out.write(frame_atoms(traj, fr, symbols, masses, epot))
            n += 1
    return n


def check_format(path) -> str:
    """The writer's name for ``path``'s extension, or an error naming the ones there are."""
    suffix = Path(path).suffix.lower()
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if suffix == ".traj":
        return "traj"
    raise AnalysisInputError(f"{path}: unknown output format '{suffix}'; use .extxyz, .xyz or .traj")


def convert(traj, frames, path) -> int:
    """Write ``path`` by its extension: ``.xyz``/``.extxyz`` or ``.traj``; atomically (a failure
    or a kill leaves the previous file, never part of a new one)."""
    from ..io.atomic import replaced_atomically
    writer = {"extxyz": write_extxyz, "traj": write_ase_traj}[check_format(path)]
    with replaced_atomically(path) as tmp:
        return writer(traj, frames, tmp)
