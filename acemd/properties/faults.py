"""Planar faults: the generalized stacking-fault (GSF) curve and the intrinsic stacking fault.

The crystal (a cubic lattice: fcc, bcc, diamond, lattice constant from the relaxed input) is built
with x = direction x plane, y = the slip ``direction``, z = the ``plane`` normal, ``layers`` atomic
planes along z (rounded up to whole periods).  A fault at u (a fraction of the period P along y, the
shortest translation of the crystal along the slip direction) is the same cell with its third
vector tilted by u P along y: one fault per cell, at the cell boundary, every cell periodic.

GSF points: the atoms relax along z only (ASE's FixCartesian on x and y with the context's
calculator; each rank takes some of the points), so the slip stays at u.  The intrinsic fault
(u = ``intrinsic``, 1/3 of a <112> period in fcc) is a metastable state: its atoms relax fully,
with the context's minimiser.  Energies per fault area, mJ/m²:  gamma(u) = (E(u) - E(0)) / A.
"""
from __future__ import annotations

import math

import numpy as np

from ..units import ELECTRON_VOLT_J
from .base import PropertyEntry, PropertyResult, RelaxationError

EV_PER_A2_TO_MJ_PER_M2 = ELECTRON_VOLT_J / 1e-20 * 1e3      # eV/Å² -> mJ/m², 16021.77
ATOMS_PER_CUBIC_CELL = {"fcc": 4, "bcc": 2, "diamond": 8}


def _reduced(v):
    v = np.asarray(v, dtype=np.int64)
    g = math.gcd(*[int(abs(x)) for x in v])
    return (v // g).tolist()


def fault_cell(atoms, settings):
    """The perfect cell (x, y = slip direction, z = plane normal), its slip period P (Å) and area (Å²)."""
    from ase.lattice.cubic import BodyCenteredCubic, Diamond, FaceCenteredCubic
    lattice = settings["lattice"]
    builder = {"fcc": FaceCenteredCubic, "bcc": BodyCenteredCubic, "diamond": Diamond}[lattice]
    a = (atoms.get_volume() / len(atoms) * ATOMS_PER_CUBIC_CELL[lattice]) ** (1.0 / 3.0)
    element = atoms.get_chemical_symbols()[0]
    plane, direction = _reduced(settings["plane"]), _reduced(settings["direction"])
    x = _reduced(np.cross(direction, plane))
    unit = builder(directions=[x, direction, plane], size=(1, 1, 1), symbol=element, latticeconstant=a,
                   pbc=True)
    planes = len(np.unique(np.round(unit.positions[:, 2], 4)))
    nz = max(1, math.ceil(settings["layers"] / planes))
    cell = builder(directions=[x, direction, plane], size=(1, 1, nz), symbol=element, latticeconstant=a,
                   pbc=True)
    period = slip_period(unit)
    area = float(np.linalg.norm(np.cross(cell.cell[0], cell.cell[1])))
    return cell, period, area, a


def slip_period(unit) -> float:
    """The shortest translation of the crystal along y (Å): Ly/m for the largest m that maps it."""
    ly = unit.cell[1, 1]
    frac = unit.get_scaled_positions()
    for m in range(12, 0, -1):
        shifted = frac + np.array([0.0, 1.0 / m, 0.0])
        d = shifted[:, None, :] - frac[None, :, :]
        d -= np.round(d)
        if np.all(np.min(np.linalg.norm(d @ unit.cell.array, axis=2), axis=1) < 1e-6):
            return ly / m
    return ly


def faulted(cell, period, u):
    """The perfect ``cell`` with its third vector tilted by u * period along y."""
    a = cell.copy()
    c = a.cell.array.copy()
    c[2] = c[2] + np.array([0.0, u * period, 0.0])
    a.set_cell(c, scale_atoms=False)
    a.wrap()
    return a


def _relax_z(atoms, calc, fmax, max_steps):
    """Relax the atoms along z only (ASE FIRE with FixCartesian on x and y): energy (eV), atoms."""
    from ase.constraints import FixCartesian
    from ase.optimize import FIRE
    a = atoms.copy()
    a.set_constraint(FixCartesian(range(len(a)), mask=(True, True, False)))
    a.calc = calc
    opt = FIRE(a, logfile=None, maxstep=0.1)
    if not opt.run(fmax=fmax, steps=max_steps):
        raise RelaxationError(f"GSF relaxation along z did not reach fmax {fmax} eV/Å in {max_steps} steps")
    e = float(a.get_potential_energy())
    a.calc = None
    a.set_constraint()
    return e, a


def run_faults(ctx, settings) -> PropertyResult:
    cell, period, area, a0 = fault_cell(ctx.atoms, settings)
    points = [float(u) for u in settings["points"]]
    comm = ctx.comm
    saved = dict(ctx.saved)
    if "gsf" in saved:
        gsf_energy = np.asarray(saved["gsf"], float)
    else:
        calc = ctx.calculator()
        mine = {}
        for i in range(comm.Get_rank(), len(points), comm.Get_size()):
            s = faulted(cell, period, points[i])
            if settings["relax"]:
                mine[i] = _relax_z(s, calc, max(ctx.fmax, 1e-4), 5000)[0]
            else:
                mine[i] = ctx_single(calc, s)
        merged = {}
        for part in comm.allgather(mine):
            merged.update(part)
        gsf_energy = np.array([merged[i] for i in range(len(points))])
        ctx.checkpoint_or_stop({"gsf": gsf_energy})
    e_perfect = ctx.evaluate([cell])[0]["energy"]
    gsf = (gsf_energy - e_perfect) / area * EV_PER_A2_TO_MJ_PER_M2
    for u, g in zip(points, gsf):
        ctx.say(f"  GSF u = {u:6.4f} ({u * period:7.4f} A): {g:9.3f} mJ/m^2")
    u_isf = float(settings["intrinsic"])
    isf_atoms = faulted(cell, period, u_isf)
    if settings["relax"]:
        isf_atoms, e_isf = ctx.relax(isf_atoms, cell="fixed")
    else:
        e_isf = ctx.evaluate([isf_atoms])[0]["energy"]
    isf = (e_isf - e_perfect) / area * EV_PER_A2_TO_MJ_PER_M2
    before = [g for u, g in zip(points, gsf) if 0.0 < u < u_isf]
    usf = max(before) if before else None
    ctx.say(f"  intrinsic stacking fault (u = {u_isf:.4f}): {isf:.3f} mJ/m^2, {len(cell)} atoms, "
            f"area {area:.3f} A^2" + ("" if usf is None else f"; unstable fault {usf:.3f} mJ/m^2"))
    entries = [PropertyEntry("stacking_fault.isf", float(isf), "mJ/m^2",
                             note=f"{settings['lattice']} {settings['plane']}{settings['direction']}, "
                                  f"{len(cell)} atoms")]
    if usf is not None:
        entries.append(PropertyEntry("stacking_fault.usf", float(usf), "mJ/m^2",
                                     note="largest GSF point before the intrinsic fault"))
    return PropertyResult(
        "stacking_fault", entries,
        data={"u": np.array(points), "displacement": np.array(points) * period, "gsf": gsf,
              "energy": gsf_energy},
        units={"u": "fraction of the slip period", "displacement": "A", "gsf": "mJ/m^2", "energy": "eV"},
        info={"lattice": settings["lattice"], "plane": settings["plane"], "direction": settings["direction"],
              "lattice_constant_A": a0, "period_A": period, "area_A2": area, "n_atoms": len(cell),
              "perfect_energy_eV": e_perfect, "isf_energy_eV": e_isf, "intrinsic_fraction": u_isf,
              "relax": settings["relax"]},
        structures=[cell, isf_atoms])


def ctx_single(calc, atoms) -> float:
    a = atoms.copy()
    a.calc = calc
    return float(a.get_potential_energy())
