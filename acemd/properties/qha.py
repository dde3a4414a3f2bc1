"""The quasi-harmonic approximation with phonopy, classical and quantum (docs/properties-phonons.md).

At each volume of a range (the relaxed cell scaled isotropically, ions relaxed when they are not
fixed by symmetry) the static energy and the phonons (:mod:`acemd.properties.phonons`; every
displaced supercell of every volume in one batch, spread over the ranks) give the harmonic free
energy F_vib(V, T); phonopy's QHA minimises E(V) + F_vib(V, T) + PV and gives G(T), V(T), the
thermal expansion, Cp and B(T).  Twice:

* quantum:   F_vib = Σ_modes [ħω/2 + k_B T ln(1 - exp(-ħω/k_B T))]  (zero-point energy included);
* classical: F_vib = Σ_modes k_B T ln(ħω/k_B T), the limit MD samples (what Frenkel-Ladd
  switching and NPT MD must reproduce up to the anharmonic correction).

Their difference (several meV/atom for Cu at 300 K) is reported.  The Frenkel-Ladd cross-check
of the classical free energy is :mod:`acemd.properties.qha_check`.

Units: per atom; eV, Å³, K, GPa, 1/K, k_B.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import phonons as ph

__all__ = ["KEYS", "run_qha", "qha_of", "QHAResults", "volume_structures", "thermal_properties",
           "classical_free_energy", "quantum_free_energy"]

KB_EV = 8.617333262e-5          # eV/K (CODATA 2018)
EV_PER_KJMOL = 1.0 / 96.4853905398362
EOS_CHOICES = ("vinet", "birch_murnaghan", "murnaghan")


def _keys():
    from ..config import Key, positive
    keys = {k: v for k, v in ph._keys().items() if k not in ("band_points", "imaginary_tolerance")}

    def ratio_range(v):
        if (len(v) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                or not 0.7 <= v[0] < 1.0 < v[1] <= 1.3):
            return "must be [low, high] with 0.7 <= low < 1 < high <= 1.3 (fractions of the relaxed volume)"
        return None

    def temps(v):
        if not v or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in v):
            return "must list temperatures >= 0 K, e.g. [300.0]"
        return None

    keys.update({
        "volume_range": Key((list,), default=[0.96, 1.10], check=ratio_range, type_doc="[float, float]",
                            doc="volumes as fractions of the relaxed volume (the range must contain V(T) up "
                                "to t_max; V(T) is reported only inside it)"),
        "volumes": Key((int,), default=9, check=lambda v: None if v >= 5 else "must be >= 5 (an EOS fit of 4 "
                                                                              "parameters per temperature)",
                       doc="volumes, evenly spaced in the range"),
        "t_max": Key((int, float), default=1000.0, check=positive, unit="K", doc="highest temperature"),
        "t_step": Key((int, float), default=10.0, check=positive, unit="K", doc="temperature step"),
        "eos": Key((str,), default="vinet",
                   check=lambda v: None if v in EOS_CHOICES else f"must be one of {', '.join(EOS_CHOICES)}",
                   doc="equation of state fitted to F(V) at each temperature (phonopy)"),
        "relax_ions": Key((bool,), default=True,
                          doc="relax the atoms at each volume when the scaled cell has forces (cell fixed)"),
        "report_temperatures": Key((list,), default=[300.0], check=temps, type_doc="[float, ...]", unit="K",
                                   doc="temperatures whose V, G, beta (volumetric expansion), Cp, B go into the report table"),
        "cross_check": Key((bool,), default=False,
                           doc="Frenkel-Ladd [free_energy] and NPT MD at cross_check_temperatures against the "
                               "classical QHA (acemd context only; minutes to hours)"),
        "cross_check_temperatures": Key((list,), default=[100.0, 200.0, 300.0], check=temps,
                                        type_doc="[float, ...]", unit="K",
                                        doc="temperatures of the Frenkel-Ladd cross-check"),
        "cross_check_steps": Key((int,), default=10000, check=positive,
                                 doc="switching steps of each Frenkel-Ladd switch (equilibration: half; NPT "
                                     "and springs: this many)"),
        "cross_check_iterations": Key((int,), default=3,
                                      check=lambda v: None if v >= 2 else "must be >= 2 (an error bar)",
                                      doc="Frenkel-Ladd iterations (the error is their spread)"),
    })
    return keys


def __getattr__(name):
    if name == "KEYS":
        return _keys()
    raise AttributeError(name)


# --------------------------------------------------------------------------- free energies

def quantum_free_energy(freqs_thz, weights, temperatures):
    """Harmonic free energy (eV per primitive cell) with the zero-point energy, per temperature;
    modes with ν <= 0 (acoustic at Γ, imaginary) are left out."""
    from phonopy.physical_units import get_physical_units
    h = get_physical_units().THzToEv
    e = np.asarray(freqs_thz, float) * h
    w = np.asarray(weights, float)[:, None] * np.ones_like(e)
    ok = e > 0
    e, w = e[ok], w[ok] / np.sum(weights)
    out = []
    for t in np.atleast_1d(temperatures):
        f = e / 2.0
        if t > 0:
            f = f + KB_EV * t * np.log(-np.expm1(-e / (KB_EV * t)))
        out.append(np.sum(w * f))
    return np.array(out)


def classical_free_energy(freqs_thz, weights, temperatures):
    """Classical harmonic free energy Σ k_B T ln(ħω / k_B T) (eV per primitive cell), per temperature."""
    from phonopy.physical_units import get_physical_units
    h = get_physical_units().THzToEv
    e = np.asarray(freqs_thz, float) * h
    w = np.asarray(weights, float)[:, None] * np.ones_like(e)
    ok = e > 0
    e, w = e[ok], w[ok] / np.sum(weights)
    return np.array([np.sum(w * KB_EV * t * np.log(e / (KB_EV * t))) if t > 0 else 0.0
                     for t in np.atleast_1d(temperatures)])


def thermal_properties(phonon, mesh, temperatures, classical):
    """phonopy's F (kJ/mol), S and Cv (J/K/mol) per primitive cell on a Γ-centred mesh, acoustic
    modes at Γ left out."""
    phonon.run_mesh(list(mesh), with_eigenvectors=False, is_mesh_symmetry=True, is_gamma_center=True)
    phonon.run_thermal_properties(temperatures=np.asarray(temperatures, float), classical=classical,
                                  exclude_gamma_acoustic=True)
    tp = phonon.thermal_properties
    return np.array(tp.free_energy), np.array(tp.entropy), np.array(tp.heat_capacity)


# --------------------------------------------------------------------------- volumes

def volume_structures(atoms, ratios):
    """Copies of ``atoms`` with the cell scaled isotropically to each volume ratio (fractional
    positions kept)."""
    out = []
    for r in ratios:
        a = atoms.copy()
        a.calc = None
        a.set_cell(np.asarray(atoms.cell.array) * float(r) ** (1.0 / 3.0), scale_atoms=True)
        out.append(a)
    return out


def scaled_phonopy(phonon, volume_ratio):
    """A copy of ``phonon`` (no force constants yet) with its cells scaled isotropically.

    Isotropic scaling keeps every fractional quantity phonopy derives from the cell (symmetry
    operations, atom permutations, shortest vectors), and phonopy's symmetry analysis of a large
    supercell costs seconds: scaling a copy is exact (tested against a fresh phonopy object).
    """
    import copy
    p = copy.deepcopy(phonon)
    s = float(volume_ratio) ** (1.0 / 3.0)
    for cell in (p.unitcell, p.supercell, p.primitive):
        cell.cell = np.array(cell.cell) * s
    return p


class QHAResults:
    """The QHA's inputs (per volume) and outputs (per temperature), quantum and classical."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def at(self, kind, temperature):
        """(V Å³/atom, G eV/atom, beta = (1/V) dV/dT 1/K, Cp k_B/atom, B GPa) at ``temperature`` by linear
        interpolation on the grid; ``kind`` "quantum" or "classical"."""
        c = self.curves[kind]
        t = c["temperature"]
        if not t[0] <= temperature <= t[-1]:
            raise ValueError(f"T = {temperature} K is outside the QHA range {t[0]}..{t[-1]} K (the volume "
                             "range or t_max limits it; widen [properties.qha].volume_range)")
        return tuple(float(np.interp(temperature, t, c[k])) for k in ("V", "G", "beta", "Cp", "B"))


def qha_of(atoms, evaluate, forces_of=None, relax=None, volume_range=(0.96, 1.10), volumes=9,
           t_max=1000.0, t_step=10.0, pressure_bar=0.0, eos="vinet", supercell="auto", supercell_min_length=12.0,
           displacement=0.01, mesh=(20, 20, 20), symprec=1e-5, subtract_residual_forces=False,
           relax_ions=True, say=lambda line: None, fmax=1e-4, comm=None):
    """The QHA of ``atoms`` (relaxed unit cell): plain function, usable without the driver.

    ``evaluate(structures) -> list of {"energy", "forces", ...}`` gives the static energies;
    ``forces_of`` (default: from ``evaluate``) the displaced supercells' forces, all volumes in
    one call; ``relax(structures) -> list of (atoms, energy)`` relaxes ions at fixed cell.
    With ``comm`` the force constants and thermal properties of the volumes are shared out over
    its ranks (every rank returns the same curves; ``phonons`` holds the rank's own volumes, None
    elsewhere).
    """
    from phonopy import PhonopyQHA
    forces_of = forces_of or ph.forces_from_evaluate(evaluate)
    ratios = np.linspace(volume_range[0], volume_range[1], volumes)
    structures = volume_structures(atoms, ratios)
    static = evaluate(structures)
    energies = np.array([r["energy"] for r in static], float)
    moved = [k for k, r in enumerate(static) if np.abs(r["forces"]).max() > fmax]
    if moved and relax_ions and relax is not None:
        relaxed = relax([structures[k] for k in moved])
        for k, (a, e) in zip(moved, relaxed):
            structures[k], energies[k] = a, float(e)
        say(f"# qha: ions relaxed at {len(moved)} of {len(structures)} volumes")
    elif moved:
        say(f"# qha: WARNING forces up to {max(np.abs(static[k]['forces']).max() for k in moved):.2e} eV/Å at "
            "scaled volumes and no ion relaxation; the QHA assumes every volume at a minimum")
    # phonons: every displaced supercell of every volume in one batch
    phonons, batches = [], []
    base = ph.make_phonopy(atoms, ph.supercell_matrix(supercell, atoms, supercell_min_length), symprec)
    for a, r in zip(structures, ratios):
        if np.allclose(a.get_scaled_positions(wrap=False), atoms.get_scaled_positions(wrap=False), atol=1e-12):
            p = scaled_phonopy(base, r)        # the symmetry analysis of one volume serves them all
        else:
            p = ph.make_phonopy(a, ph.supercell_matrix(supercell, atoms, supercell_min_length), symprec)
        sc = ph.displaced_supercells(p, displacement)
        if subtract_residual_forces:
            sc = sc + [ph.perfect_supercell(p)]
        phonons.append(p)
        batches.append(sc)
    flat = [s for b in batches for s in b]
    say(f"# qha: {len(structures)} volumes x {len(batches[0])} supercells of {len(phonons[0].supercell)} atoms")
    forces = forces_of(flat)
    n_unit = len(atoms)
    n_prim = len(phonons[0].primitive)
    per_prim = n_prim / n_unit
    temps = np.arange(0.0, t_max + 0.5 * t_step, t_step)
    vol_prim = np.array([a.get_volume() for a in structures]) * per_prim
    e_prim = energies * per_prim
    # force constants and thermal properties: each volume on one rank (round-robin), then shared
    size = 1 if comm is None else comm.Get_size()
    rank = 0 if comm is None else comm.Get_rank()
    starts = np.cumsum([0] + [len(b) for b in batches])
    mine = {}
    for k, (p, b) in enumerate(zip(phonons, batches)):
        if k % size != rank:
            phonons[k] = None
            continue
        f = forces[starts[k]:starts[k + 1]]
        n_disp = len(p.supercells_with_displacements)
        ph.force_constants(p, f[:n_disp], f[-1] if subtract_residual_forces else None)
        p.run_mesh(list(mesh), with_eigenvectors=False, is_mesh_symmetry=True, is_gamma_center=True)
        from .qha_check import commensurate_frequencies
        mine[k] = {"min_freq": float(np.min(p.mesh.frequencies)),
                   "cell_freqs": commensurate_frequencies(p),      # the supercell's own 3N modes
                   **{kind: thermal_properties(p, mesh, temps, kind == "classical")
                      for kind in ("quantum", "classical")}}
    if size > 1:
        for part in comm.allgather(mine):
            mine.update(part)
    min_freq = [mine[k]["min_freq"] for k in range(len(phonons))]
    curves, per_volume = {}, {}
    for kind in ("quantum", "classical"):
        fe, ent, cv = zip(*(mine[k][kind] for k in range(len(phonons))))
        fe, ent, cv = np.array(fe).T, np.array(ent).T, np.array(cv).T      # (T, V)
        per_volume[kind] = {"F_vib": fe * EV_PER_KJMOL / n_prim, "S": ent, "Cv": cv}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qha = PhonopyQHA(volumes=vol_prim, electronic_energies=e_prim, temperatures=temps, free_energy=fe,
                             cv=cv, entropy=ent, pressure=pressure_bar * 1e-4, eos=eos, t_max=t_max)
        n = len(qha.volume_temperature)
        # the temperatures whose EOS fit succeeded (phonopy keeps them only internally)
        t = np.asarray(getattr(qha._qha, "_temperatures", temps))[:n]
        r_gas = 8.314462618
        curves[kind] = {
            "temperature": t,
            "V": np.asarray(qha.volume_temperature[:n]) / n_prim,
            "G": np.asarray(qha.gibbs_temperature[:n]) / n_prim,
            "beta": np.asarray(qha.thermal_expansion[:n]),
            "Cp": np.asarray(qha.heat_capacity_P_numerical[:n]) / (r_gas * n_prim),
            "B": np.asarray(qha.bulk_modulus_temperature[:n]),
        }
    n = min(len(curves["quantum"]["temperature"]), len(curves["classical"]["temperature"]))
    diff = curves["classical"]["G"][:n] - curves["quantum"]["G"][:n]
    zpe = per_volume["quantum"]["F_vib"][0]      # T = 0: the zero-point energy at each volume
    return QHAResults(ratios=ratios, structures=structures, volumes=vol_prim / n_prim, energies=e_prim / n_prim,
                      phonons=phonons, temperatures=temps, curves=curves, per_volume=per_volume,
                      G_classical_minus_quantum=diff, zero_point_energy=zpe, min_frequency=np.array(min_freq),
                      n_structures=len(flat), n_prim=n_prim,
                      cell_frequencies=[mine[k]["cell_freqs"] for k in range(len(phonons))],
                      cell_masses=ph.perfect_supercell(base).get_masses(), n_unit=n_unit)


# --------------------------------------------------------------------------- driver entry

def run_qha(ctx, settings):
    """``[properties.qha]``: F(T), V(T), beta, Cp, B(T), classical and quantum; the Frenkel-Ladd
    cross-check when asked."""
    from .base import PropertyEntry, PropertyResult
    s = {k: v.default for k, v in _keys().items()}
    s.update(settings or {})
    relax = None
    if getattr(ctx, "relax_many", None) is not None:
        relax = lambda structs: ctx.relax_many(structs, cell="fixed")   # noqa: E731
    res = qha_of(ctx.atoms, ctx.evaluate, ph.forces_for_context(ctx), relax, s["volume_range"], s["volumes"],
                 s["t_max"], s["t_step"], getattr(ctx, "pressure_bar", 0.0), s["eos"], s["supercell"],
                 s["supercell_min_length"], s["displacement"], s["mesh"], s["symprec"],
                 s["subtract_residual_forces"], s["relax_ions"], ctx.say,
                 fmax=getattr(ctx, "fmax", None) or 1e-4, comm=ctx.comm)
    flags = []
    unstable = res.min_frequency < -ph.IMAGINARY_TOLERANCE_THZ
    if unstable.any():
        flags.append(f"imaginary modes at {int(unstable.sum())} of {len(unstable)} volumes (lowest "
                     f"{res.min_frequency.min():.3f} THz): the QHA leaves them out and is not meaningful there")
        ctx.say(f"# qha ({ctx.label}): WARNING {flags[0]}")
    entries = []
    e_static = float(res.curves["classical"]["G"][0])      # classical G at 0 K: the static minimum
    for T in s["report_temperatures"]:
        for kind, tag in (("quantum", ""), ("classical", "_classical")):
            try:
                V, G, beta, Cp, B = res.at(kind, T)
            except ValueError as exc:
                ctx.say(f"# qha ({ctx.label}): {exc}")
                continue
            t = f"{T:g}K"
            entries += [PropertyEntry(f"qha.V{tag}_{t}", V, "Å^3/atom", flags=list(flags)),
                        PropertyEntry(f"qha.G{tag}_{t}", 1e3 * (G - e_static), "meV/atom", flags=list(flags),
                                      note="G(T) minus the static energy minimum (comparable across models)"),
                        PropertyEntry(f"qha.beta{tag}_{t}", beta * 1e6, "1e-6/K", flags=list(flags), note="volumetric thermal expansion (1/V) dV/dT"),
                        PropertyEntry(f"qha.Cp{tag}_{t}", Cp, "kB/atom", flags=list(flags)),
                        PropertyEntry(f"qha.B{tag}_{t}", B, "GPa", flags=list(flags))]
        tq = res.curves["quantum"]["temperature"]
        if tq[0] <= T <= tq[-1]:
            d = float(np.interp(T, tq[:len(res.G_classical_minus_quantum)], res.G_classical_minus_quantum))
            entries.append(PropertyEntry(f"qha.G_classical_minus_quantum_{T:g}K", d * 1000.0, "meV/atom",
                                         flags=list(flags)))
    i0 = int(np.argmin(np.abs(res.ratios - 1.0)))
    entries.append(PropertyEntry("qha.zero_point_energy", float(res.zero_point_energy[i0]) * 1000.0, "meV/atom",
                                 flags=list(flags), note="at the volume of the grid nearest the relaxed one"))
    data = {"volume": res.volumes, "energy": res.energies, "volume_ratio": res.ratios,
            "min_frequency": res.min_frequency,
            **{kind: {**c, "F_vib": res.per_volume[kind]["F_vib"]} for kind, c in res.curves.items()},
            "G_classical_minus_quantum": res.G_classical_minus_quantum}
    units = {"volume": "Å^3/atom", "energy": "eV/atom", "min_frequency": "THz"}
    for kind in res.curves:
        units.update({f"{kind}/temperature": "K", f"{kind}/V": "Å^3/atom", f"{kind}/G": "eV/atom",
                      f"{kind}/beta": "1/K (volumetric)", f"{kind}/Cp": "kB/atom", f"{kind}/B": "GPa",
                      f"{kind}/F_vib": "eV/atom (rows: temperatures of the grid 0..t_max, columns: volumes)"})
    units["G_classical_minus_quantum"] = "eV/atom"
    info = {"n_volumes": len(res.volumes), "n_structures": res.n_structures, "eos": s["eos"],
            "pressure_bar": getattr(ctx, "pressure_bar", 0.0),
            "t_max_reached": {k: float(c["temperature"][-1]) for k, c in res.curves.items()}}
    result = PropertyResult("qha", entries, data, units, info, structures=list(res.structures))
    if s["cross_check"]:
        from .qha_check import cross_check_for_context
        cross_check_for_context(ctx, s, res, result)
    ctx.say(f"# qha ({ctx.label}): {len(res.volumes)} volumes, {res.n_structures} supercells; V(T) up to "
            f"{info['t_max_reached']['quantum']:g} K")
    return result
