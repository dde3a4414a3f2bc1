"""Surface energies: relaxed slabs of given Miller indices, in J/m².

ASE's ``surface(bulk, miller, layers, vacuum)`` cuts the relaxed input cell (any lattice, Miller
indices of its lattice vectors) into a slab with ``layers`` repeats of the surface cell along the
normal and ``vacuum`` Å on each side (periodic in all three directions: the vacuum separates the
images).  The atoms are relaxed in the fixed cell, and

    gamma = (E_slab - N_slab E_bulk/atom) / (2 A)

with A the area of the surface cell.  Exact for elemental crystals; for a compound it is the energy
of the stoichiometric-average slab (a non-stoichiometric slab needs chemical potentials).
"""
from __future__ import annotations

import numpy as np

from ..units import ELECTRON_VOLT_J
from .base import PropertyEntry, PropertyResult

EV_PER_A2_TO_J_PER_M2 = ELECTRON_VOLT_J / 1e-20          # eV/Å² -> J/m², 16.02176634


def slab(atoms, miller, layers, vacuum):
    """The slab of ``miller`` (periodic, vacuum along z) and its surface area (Å²)."""
    from ase.build import surface
    s = surface(atoms, tuple(int(i) for i in miller), int(layers), vacuum=float(vacuum), periodic=True)
    s.pbc = True
    s.wrap()
    area = float(np.linalg.norm(np.cross(s.cell[0], s.cell[1])))
    return s, area


def label(miller) -> str:
    return "".join(str(i) if i >= 0 else f"-{-i}" for i in miller)


def run_surfaces(ctx, settings) -> PropertyResult:
    e_bulk = ctx.evaluate([ctx.atoms])[0]["energy"] / len(ctx.atoms)
    cases = [slab(ctx.atoms, m, settings["layers"], settings["vacuum"]) for m in settings["miller"]]
    done = dict(ctx.saved)
    energies = list(done.get("energies", []))
    unrelaxed = ctx.evaluate([c[0] for c in cases])
    structures = [c[0] for c in cases]
    for k in range(len(energies), len(cases)):
        if settings["relax"]:
            structures[k], e = ctx.relax(cases[k][0], cell="fixed")
        else:
            e = unrelaxed[k]["energy"]
        energies.append(float(e))
        ctx.checkpoint_or_stop({"energies": energies})
    entries, gammas, gammas_unrelaxed = [], [], []
    for (s, area), m, e, u in zip(cases, settings["miller"], energies, unrelaxed):
        g = (e - len(s) * e_bulk) / (2.0 * area) * EV_PER_A2_TO_J_PER_M2
        gu = (u["energy"] - len(s) * e_bulk) / (2.0 * area) * EV_PER_A2_TO_J_PER_M2
        gammas.append(g)
        gammas_unrelaxed.append(gu)
        ctx.say(f"  surface ({label(m)}): {len(s)} atoms, area {area:.3f} A^2, gamma = {g:.4f} J/m^2 "
                f"(unrelaxed {gu:.4f})")
        entries.append(PropertyEntry(f"surface.{label(m)}", g, "J/m^2",
                                     note=f"{len(s)} atoms, {settings['layers']} layers"))
    return PropertyResult(
        "surfaces", entries,
        data={"miller": np.array(settings["miller"], dtype=np.int64), "surface_energy": np.array(gammas),
              "surface_energy_unrelaxed": np.array(gammas_unrelaxed),
              "slab_energy": np.array(energies), "n_atoms": np.array([len(c[0]) for c in cases]),
              "area": np.array([c[1] for c in cases])},
        units={"surface_energy": "J/m^2", "surface_energy_unrelaxed": "J/m^2", "slab_energy": "eV", "area": "A^2"},
        info={"bulk_energy_per_atom_eV": e_bulk, "layers": settings["layers"], "vacuum_A": settings["vacuum"]},
        structures=structures)
