"""Energy differences between phases: other lattices of the element, or given structure files.

Each lattice of ``lattices`` is built by ASE (``bulk``) for the element of an elemental input, at the
input's volume per atom, and relaxed with its cell (``cell = "auto"``: iso for the cubic lattices,
so that bcc and sc stay cubic even where they are unstable to shear; aniso for hcp, which relaxes
c/a; triclinic for files).  Entries: dE = E/atom(phase) - E/atom(input phase) in eV/atom and the
relaxed volume per atom.  A lattice the input already is gives dE = 0 (a check).
"""
from __future__ import annotations

import numpy as np

from .base import PropertyEntry, PropertyResult

VOLUME_PER_ATOM_IN_A3 = {"fcc": 1 / 4, "bcc": 1 / 2, "sc": 1.0, "diamond": 1 / 8, "hcp": 1 / np.sqrt(2.0)}


def lattice_phase(element, lattice, volume_per_atom):
    from ase.build import bulk
    a = (volume_per_atom / VOLUME_PER_ATOM_IN_A3[lattice]) ** (1.0 / 3.0)
    if lattice == "hcp":
        return bulk(element, "hcp", a=a, c=a * np.sqrt(8.0 / 3.0))
    return bulk(element, lattice, a=a)


def run_phases(ctx, settings) -> PropertyResult:
    from ase.io import read
    from pathlib import Path
    atoms = ctx.atoms
    elements = sorted(set(atoms.get_chemical_symbols()))
    v_atom = atoms.get_volume() / len(atoms)
    phases = []                      # (name, atoms, cell mode)
    if len(elements) == 1:
        for lat in settings["lattices"]:
            mode = settings["cell"] if settings["cell"] != "auto" else ("aniso" if lat == "hcp" else "iso")
            phases.append((lat, lattice_phase(elements[0], lat, v_atom), mode))
    else:
        ctx.say(f"  phases: {atoms.get_chemical_formula()} is not elemental: lattices skipped, files only")
    for f in settings["files"]:
        mode = "triclinic" if settings["cell"] == "auto" else settings["cell"]
        phases.append((Path(f).stem, read(f, parallel=False), mode))   # every rank reads
    e_ref = ctx.evaluate([atoms])[0]["energy"] / len(atoms)
    relaxed = [None] * len(phases)
    for mode in dict.fromkeys(p[2] for p in phases):
        idx = [i for i, p in enumerate(phases) if p[2] == mode]
        for i, r in zip(idx, ctx.relax_many([phases[i][1] for i in idx], cell=mode)):
            relaxed[i] = r
    entries, de, vol = [], [], []
    for (name, _, mode), (a, e) in zip(phases, relaxed):
        d = e / len(a) - e_ref
        v = a.get_volume() / len(a)
        de.append(d)
        vol.append(v)
        ctx.say(f"  phase {name:10s} ({mode:9s}): E - E_input = {d:9.5f} eV/atom, V = {v:8.4f} A^3/atom")
        entries.append(PropertyEntry(f"phases.{name}.dE", float(d), "eV/atom"))
        entries.append(PropertyEntry(f"phases.{name}.V", float(v), "A^3/atom"))
    return PropertyResult("phases", entries,
                          data={"energy_difference": np.array(de), "volume": np.array(vol)},
                          units={"energy_difference": "eV/atom", "volume": "A^3/atom"},
                          info={"phases": [p[0] for p in phases], "cell": [p[2] for p in phases],
                                "input_energy_per_atom_eV": e_ref},
                          structures=[r[0] for r in relaxed])
