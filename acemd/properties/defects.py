"""Point defects: vacancy and interstitial formation energies, relaxed, at several cell sizes.

For each supercell ``sizes`` of the relaxed input cell (N atoms, energy E_bulk): remove the atom
``site`` (vacancy) or add an atom at the fractional ``position`` of the input cell (interstitial),
relax the atoms (cell fixed at the bulk cell: constant volume; ``relax_cell``: at the target
pressure), and take

    E_f(vacancy)      = E(N - 1) - (N - 1)/N E_bulk
    E_f(interstitial) = E(N + 1) - (N + 1)/N E_bulk      (elemental; compounds: per-atom bulk energy)

The entry is the largest cell's value; every size's value is printed and kept (convergence).
"""
from __future__ import annotations

import numpy as np

from .base import PropertyEntry, PropertyResult


def _repeat(size):
    return (size, size, size) if isinstance(size, int) else tuple(size)


def defect_structures(atoms, kind, settings):
    """[(repeat, perfect supercell, defective supercell)] for each size."""
    out = []
    for size in settings["sizes"]:
        rep = _repeat(size)
        bulk = atoms.repeat(rep)
        if kind == "vacancy":
            if settings["site"] >= len(atoms):
                raise ValueError(f"[properties.vacancy].site = {settings['site']}: the input cell has only "
                                 f"{len(atoms)} atoms")
            defect = bulk.copy()
            del defect[settings["site"]]
        else:
            from ase import Atom
            element = settings.get("element") or atoms.get_chemical_symbols()[0]
            frac = np.asarray(settings["position"], float) / np.asarray(rep, float)
            defect = bulk.copy()
            defect.append(Atom(element, position=frac @ bulk.cell.array))
        out.append((rep, bulk, defect))
    return out


def run_point_defect(ctx, settings, kind) -> PropertyResult:
    cases = defect_structures(ctx.atoms, kind, settings)
    cell = "iso" if settings["relax_cell"] else "fixed"
    e_bulk_per_atom = None
    saved = dict(ctx.saved)
    energies = list(saved.get("energies", []))
    relaxed = [c[2] for c in cases]            # relaxed in place below (unrelaxed: done before a restart)
    for k in range(len(energies), len(cases)):
        rep, bulk, defect = cases[k]
        if e_bulk_per_atom is None:
            e_bulk_per_atom = ctx.evaluate([ctx.atoms])[0]["energy"] / len(ctx.atoms)
        relaxed[k], e_def = ctx.relax(defect, cell=cell)
        energies.append(float(e_def))
        ctx.checkpoint_or_stop({"energies": energies})
    if e_bulk_per_atom is None:
        e_bulk_per_atom = ctx.evaluate([ctx.atoms])[0]["energy"] / len(ctx.atoms)
    n_atoms = np.array([len(c[2]) for c in cases])
    n_bulk = np.array([len(c[1]) for c in cases])
    e_f = np.array(energies) - n_atoms * e_bulk_per_atom
    unrelaxed = ctx.evaluate([c[2] for c in cases])
    e_f_unrelaxed = np.array([r["energy"] for r in unrelaxed]) - n_atoms * e_bulk_per_atom
    for (rep, bulk, _), ef, eu in zip(cases, e_f, e_f_unrelaxed):
        ctx.say(f"  {kind:12s} {rep[0]}x{rep[1]}x{rep[2]} ({len(bulk)} sites): E_f = {ef:.4f} eV "
                f"(unrelaxed {eu:.4f} eV)")
    change = float(e_f[-1] - e_f[-2]) if len(e_f) > 1 else None
    name = f"{kind}.E_f"
    entries = [PropertyEntry(name, float(e_f[-1]), "eV", None if change is None else abs(change),
                             note=f"{n_bulk[-1]}-site cell; error: change from the next smaller cell"),
               PropertyEntry(f"{kind}.E_f_unrelaxed", float(e_f_unrelaxed[-1]), "eV")]
    return PropertyResult(kind, entries,
                          data={"n_sites": n_bulk, "formation_energy": e_f,
                                "formation_energy_unrelaxed": e_f_unrelaxed, "defect_energy": np.array(energies)},
                          units={"formation_energy": "eV", "formation_energy_unrelaxed": "eV", "defect_energy": "eV"},
                          info={"sizes": [list(c[0]) for c in cases], "bulk_energy_per_atom_eV": e_bulk_per_atom,
                                "relax_cell": settings["relax_cell"],
                                "convergence_eV": change},
                          structures=relaxed)


def run_vacancy(ctx, settings) -> PropertyResult:
    return run_point_defect(ctx, settings, "vacancy")


def run_interstitial(ctx, settings) -> PropertyResult:
    return run_point_defect(ctx, settings, "interstitial")
