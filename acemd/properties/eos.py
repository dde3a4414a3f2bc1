"""Equation of state: E(V) with relaxed ions, Birch-Murnaghan and Vinet fits with their errors.

The relaxed cell is scaled isotropically to ``points`` volumes in ``volume_range`` (fractions of
the relaxed volume); at each the atoms are relaxed in the fixed cell (``relax_ions``).  Both
four-parameter forms are fitted by least squares to E per atom against V per atom; the errors are
the standard errors of the fit (square roots of the covariance's diagonal, scaled by the residual).
The cohesive energy is the energy of the isolated atoms (each alone in a non-periodic box) minus E0.
"""
from __future__ import annotations

import numpy as np

from ..units import EV_PER_A3_TO_GPA
from .base import PropertyEntry, PropertyResult

ISOLATED_BOX_A = 30.0       # the box of an isolated atom (non-periodic: only its size matters)


def birch_murnaghan(v, e0, v0, b0, bp):
    """Third-order Birch-Murnaghan E(V) (B0 in eV/Å³)."""
    x = (v0 / v) ** (2.0 / 3.0) - 1.0
    return e0 + 9.0 * v0 * b0 / 16.0 * (x ** 3 * bp + x ** 2 * (6.0 - 4.0 * (v0 / v) ** (2.0 / 3.0)))


def vinet(v, e0, v0, b0, bp):
    """Vinet (Rose) E(V) (B0 in eV/Å³)."""
    eta = (v / v0) ** (1.0 / 3.0)
    c = 1.5 * (bp - 1.0)
    return e0 + 2.0 * b0 * v0 / (bp - 1.0) ** 2 * (2.0 - (5.0 + 3.0 * bp * (eta - 1.0) - 3.0 * eta)
                                                    * np.exp(-c * (eta - 1.0)))


FORMS = {"birch_murnaghan": birch_murnaghan, "vinet": vinet}


def fit_eos(volumes, energies, form="birch_murnaghan") -> dict:
    """Fit ``form`` to E(V) (per atom): {"E0", "V0", "B0" (GPa), "B0_prime", errors, rms residual}."""
    from scipy.optimize import curve_fit
    v = np.asarray(volumes, float)
    e = np.asarray(energies, float)
    a, b, c = np.polyfit(v, e, 2)
    v0 = -b / (2 * a) if a > 0 else v[np.argmin(e)]
    p0 = [float(np.polyval([a, b, c], v0)), float(v0), float(max(2 * a * v0, 1e-3)), 4.5]
    popt, pcov = curve_fit(FORMS[form], v, e, p0=p0, maxfev=20000)
    err = np.sqrt(np.clip(np.diag(pcov), 0.0, None)) if np.all(np.isfinite(pcov)) else np.full(4, np.nan)
    residual = e - FORMS[form](v, *popt)
    return {"E0": float(popt[0]), "V0": float(popt[1]), "B0": float(popt[2] * EV_PER_A3_TO_GPA),
            "B0_prime": float(popt[3]), "E0_error": float(err[0]), "V0_error": float(err[1]),
            "B0_error": float(err[2] * EV_PER_A3_TO_GPA), "B0_prime_error": float(err[3]),
            "rms_residual_eV": float(np.sqrt(np.mean(residual ** 2))), "parameters": popt.tolist()}


def isolated_atom_energies(ctx, symbols) -> dict:
    """{element: energy (eV) of one atom alone} with the context's model."""
    from ase import Atoms
    elements = sorted(set(symbols))
    boxes = [Atoms(el, positions=[[0.0, 0.0, 0.0]], cell=np.eye(3) * ISOLATED_BOX_A, pbc=False)
             for el in elements]
    return {el: r["energy"] for el, r in zip(elements, ctx.evaluate(boxes))}


def run_eos(ctx, settings) -> PropertyResult:
    atoms = ctx.atoms
    n = len(atoms)
    lo, hi = settings["volume_range"]
    scales = np.linspace(lo, hi, int(settings["points"]))
    structures = []
    for s in scales:
        a = atoms.copy()
        a.set_cell(atoms.cell.array * s ** (1.0 / 3.0), scale_atoms=True)
        structures.append(a)
    if settings["relax_ions"] and n > 1:
        relaxed = ctx.relax_many(structures, cell="fixed")
        structures = [r[0] for r in relaxed]
    results = ctx.evaluate(structures)
    volumes = np.array([a.get_volume() / n for a in structures])
    energies = np.array([r["energy"] / n for r in results])
    pressures_gpa = np.array([-np.mean(r["stress"][:3]) * EV_PER_A3_TO_GPA for r in results])
    for v, e, p in zip(volumes, energies, pressures_gpa):
        ctx.say(f"  eos  V = {v:9.4f} A^3/atom  E = {e:13.6f} eV/atom  P = {p:9.3f} GPa")
    fits = {form: fit_eos(volumes, energies, form) for form in FORMS}
    bm, vi = fits["birch_murnaghan"], fits["vinet"]
    e_atom = isolated_atom_energies(ctx, atoms.get_chemical_symbols())
    e_isolated = float(np.mean([e_atom[s] for s in atoms.get_chemical_symbols()]))
    entries = [PropertyEntry("eos.V0", bm["V0"], "A^3/atom", bm["V0_error"]),
               PropertyEntry("eos.E0", bm["E0"], "eV/atom", bm["E0_error"]),
               PropertyEntry("eos.B0", bm["B0"], "GPa", bm["B0_error"]),
               PropertyEntry("eos.B0_prime", bm["B0_prime"], "", bm["B0_prime_error"]),
               PropertyEntry("eos.E_coh", e_isolated - bm["E0"], "eV/atom", bm["E0_error"],
                             note="isolated atoms minus E0"),
               PropertyEntry("eos.vinet.V0", vi["V0"], "A^3/atom", vi["V0_error"]),
               PropertyEntry("eos.vinet.B0", vi["B0"], "GPa", vi["B0_error"]),
               PropertyEntry("eos.vinet.B0_prime", vi["B0_prime"], "", vi["B0_prime_error"])]
    lengths = atoms.cell.lengths()
    if np.allclose(atoms.cell.angles(), 90.0) and np.allclose(lengths, lengths[0], rtol=1e-6):
        a0 = lengths[0] * (bm["V0"] * n / atoms.get_volume()) ** (1.0 / 3.0)
        entries.insert(1, PropertyEntry("eos.a0", float(a0), "A", float(a0 * bm["V0_error"] / (3 * bm["V0"]))))
    return PropertyResult(
        "eos", entries,
        data={"volume": volumes, "energy": energies, "pressure": pressures_gpa, "scale": scales},
        units={"volume": "A^3/atom", "energy": "eV/atom", "pressure": "GPa", "scale": "V/V_relaxed"},
        info={"fits": fits, "isolated_atom_energy_eV": e_atom, "relax_ions": settings["relax_ions"],
              "n_atoms": n},
        structures=structures)
