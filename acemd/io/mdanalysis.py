"""Reading acemd trajectories with MDAnalysis, forces included.

acemd writes forces with the H5MD unit string ``eV Angstrom-1``; MDAnalysis (up to
2.11 at least) knows no eV-based force unit and refuses the file when it converts
units.  :func:`register_units` teaches it that unit (1 eV/Å = 96.485 kJ/(mol Å),
from CODATA via :data:`acemd.units`) once per process; :func:`universe` opens a
trajectory without a topology::

    from acemd.io.mdanalysis import universe
    u = universe("trajectory.h5")                 # forces in kJ/(mol Å), MDAnalysis's base unit
    u = universe("trajectory.h5", convert_units=False)   # forces in eV/Å as stored
"""
from __future__ import annotations

from pathlib import Path

from ..units import ELECTRON_VOLT_J

AVOGADRO = 6.02214076e23
FORCE_UNIT = "eV Angstrom-1"                      # as written by acemd.io.h5md
MDA_FORCE_UNIT = "eV/Angstrom"
KJMOL_PER_EV = ELECTRON_VOLT_J * AVOGADRO / 1000.0  # 96.485 kJ/mol per eV


def register_units():
    """Add eV/Å to MDAnalysis's force units and the H5MD reader's unit names (idempotent)."""
    from MDAnalysis import units
    from MDAnalysis.coordinates.H5MD import H5MDReader
    units.forceUnit_factor.setdefault(MDA_FORCE_UNIT, 1.0 / KJMOL_PER_EV)
    units.unit_types.setdefault(MDA_FORCE_UNIT, "force")
    H5MDReader._unit_translation["force"].setdefault(FORCE_UNIT, MDA_FORCE_UNIT)


def universe(path, **kwargs):
    """An MDAnalysis Universe of an acemd H5MD trajectory (empty topology with the file's atom count)."""
    import h5py
    import MDAnalysis as mda
    register_units()
    with h5py.File(Path(path), "r") as f:
        first = next(name for name in ("position", "velocity", "force") if name in f["particles/all"])
        n_atoms = int(f[f"particles/all/{first}/value"].shape[1])
    u = mda.Universe.empty(n_atoms, trajectory=False)
    u.load_new(str(path), format="H5MD", **kwargs)
    return u
