"""Elastic constants at 0 K: acemd's ``[elastic]`` driver on the relaxed phase, and the same strain
protocol for a reference calculator.

For acemd the driver (:mod:`acemd.drivers.properties`) runs :class:`acemd.drivers.elastic.ElasticRun`
itself (the 0 K ``[elastic]`` code path) and :func:`entries_from_report` turns its report into
entries.  :func:`run_elastic_strains` is that protocol through a property context (the reference):
each Voigt strain at +-e for every magnitude, atoms relaxed in the strained cell, C the
least-squares slope of stress against strain (:func:`acemd.elasticity.fit_columns`).
"""
from __future__ import annotations

import numpy as np

from ..elasticity import (central_difference_columns, crystal_class, fit_columns, independent_constants,
                          voigt_strain_tensor, vrh_moduli)
from ..units import EV_PER_A3_TO_GPA
from .base import PropertyEntry, PropertyResult


def entries_from_tensor(c_sym, c_error=None, kind=None) -> list[PropertyEntry]:
    kind = kind or crystal_class(c_sym)
    ind = independent_constants(c_sym, kind)
    out = []
    for name, value in ind.items():
        i, j = int(name[1]) - 1, int(name[2]) - 1
        err = None if c_error is None else float(np.asarray(c_error)[i, j])
        out.append(PropertyEntry(f"elastic.{name}", float(value), "GPa", err))
    m = vrh_moduli(c_sym)
    out.append(PropertyEntry("elastic.B", float(m["bulk_voigt"]), "GPa", note="Voigt: (C11 + 2 C12)/3 for cubic"))
    out.append(PropertyEntry("elastic.G", float(m["shear_hill"]), "GPa", note="Hill"))
    return out


def entries_from_report(report) -> PropertyResult:
    """A PropertyResult of the [elastic] driver's report (its C, errors, crystal class)."""
    c = np.array(report["C_symmetrized_GPa"])
    return PropertyResult("elastic", entries_from_tensor(c, report["C_error_GPa"], report["crystal_class"]),
                          data={"C": c, "C_error": np.array(report["C_error_GPa"])},
                          units={"C": "GPa", "C_error": "GPa"},
                          info={k: report[k] for k in ("crystal_class", "moduli_GPa", "born_stable",
                                                       "eigenvalues_GPa", "strains", "relax_ions")})


def run_elastic_strains(ctx, settings) -> PropertyResult:
    atoms = ctx.atoms
    strains = sorted(float(e) for e in settings["strains"])
    plan = [(j, s * e) for j in range(6) for e in strains for s in (1.0, -1.0)]
    structures = []
    for j, e in plan:
        a = atoms.copy()
        f = np.eye(3) + voigt_strain_tensor(j, e)
        a.set_cell(atoms.cell.array @ f.T, scale_atoms=True)
        structures.append(a)
    if settings["relax_ions"] and len(atoms) > 1:
        structures = [r[0] for r in ctx.relax_many(structures, cell="fixed")]
    results = ctx.evaluate(structures + [atoms])
    stress0 = results[-1]["stress"] * EV_PER_A3_TO_GPA
    values = [[0.0] for _ in range(6)]
    stresses = [[stress0] for _ in range(6)]
    by_magnitude = {e: [[None, None] for _ in range(6)] for e in strains}
    for (j, e), r in zip(plan, results):
        s = r["stress"] * EV_PER_A3_TO_GPA
        values[j].append(e)
        stresses[j].append(s)
        by_magnitude[abs(e)][j][0 if e > 0 else 1] = s
    c = fit_columns(values, stresses)
    c_sym = 0.5 * (c + c.T)
    spread = np.max([np.abs(cm - c) for cm in central_difference_columns(by_magnitude).values()], axis=0)
    kind = crystal_class(c_sym)
    return PropertyResult("elastic", entries_from_tensor(c_sym, spread, kind),
                          data={"C": c_sym, "C_error": spread}, units={"C": "GPa", "C_error": "GPa"},
                          info={"crystal_class": kind, "moduli_GPa": vrh_moduli(c_sym), "strains": strains,
                                "relax_ions": settings["relax_ions"]},
                          structures=structures)
