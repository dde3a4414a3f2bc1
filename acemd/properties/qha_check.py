"""The QHA's built-in cross-check: classical (quasi-)harmonic free energy against Frenkel-Ladd MD.

MD is classical, so acemd's ``[free_energy]`` solid route (Frenkel-Ladd switching, fixed centre of
mass; acemd/drivers/free_energy.py) must reproduce the classical QHA up to the anharmonic free
energy.  At each temperature the route runs on the phonon supercell S of the relaxed structure
(N atoms) at the QHA's pressure: its NPT stage gives the MD volume V_MD, its switching F_FL.  Then

    G_FL - G_QHA(classical, bulk)   = anharmonic + finite size + volume term, split into
    anharmonic   = F_FL - F_h,N(V_MD)   the harmonic free energy of the *same* periodic N-atom
                   cell at the same volume (its 3N - 3 modes: the phonons at the q-points
                   commensurate with S; the free centre of mass in the convention of
                   acemd.free_energy.reference), so only anharmonicity and noise remain;
    finite size  = F_h,N(V_MD) - F_h,bulk(V_MD)  (the mesh integral instead of N modes);
    volume term  = F_h,bulk(V_MD) + P V_MD - G_QHA  (>= 0: G_QHA is the minimum over V).

The anharmonic part shrinks as T² toward low T; its error is the route's standard error.  The
QHA's classical V(T) is compared with V_MD (error from the NPT pressure's standard error, δV = V
δP / B).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from . import phonons as ph
from .qha import scaled_phonopy, volume_structures, classical_free_energy

__all__ = ["finite_cell_free_energy", "commensurate_frequencies", "cell_qha", "frenkel_ladd_run", "cross_check",
           "cross_check_for_context", "format_table"]

from ..free_energy.reference import PLANCK_EV_PS
from ..units import BOLTZMANN, EV_PER_A3_TO_BAR, MVV_TO_EV


def finite_cell_free_energy(freqs_thz, masses_amu, volume, temperature):
    """Classical harmonic free energy (eV/atom) of a periodic N-atom cell whose centre of mass is
    free, in the convention of acemd's Frenkel-Ladd route (acemd.free_energy.reference).

    ``freqs_thz``: the cell's 3N frequencies (the three smallest in magnitude, the translations at
    Γ, are dropped).  Per atom: (1/N) [Σ_{3N-3} k_B T ln(hν / k_B T) - k_B T ln(V / Λ_M³) + k_B T ln N]
    with Λ_M the thermal wavelength of the total mass; the last term is the ln N of the fixed-
    centre-of-mass correction of Polson et al. (JCP 112, 5339 (2000)) that the route uses.
    """
    freqs = np.sort(np.abs(np.asarray(freqs_thz, float).ravel()))[3:]
    n = len(masses_amu)
    if len(freqs) != 3 * n - 3:
        raise ValueError(f"{len(freqs) + 3} frequencies for {n} atoms; need 3N")
    kt = BOLTZMANN * temperature
    vib = np.sum(kt * np.log(PLANCK_EV_PS * freqs / kt))          # ν in THz = 1/ps
    m_total = float(np.sum(masses_amu))
    lam = PLANCK_EV_PS / np.sqrt(2.0 * np.pi * m_total * MVV_TO_EV * kt)   # Å
    return float((vib - kt * np.log(volume / lam ** 3) + kt * np.log(n)) / n)


def commensurate_frequencies(phonon):
    """The 3N frequencies (THz) of the periodic supercell of a phonopy object with force constants:
    its phonons at the q-points commensurate with the supercell."""
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points
    prim_matrix = np.asarray(phonon.primitive_matrix if phonon.primitive_matrix is not None else np.eye(3))
    s_in_prim = np.rint(np.linalg.inv(prim_matrix) @ np.asarray(phonon.supercell_matrix)).astype(int)
    qpoints = get_commensurate_points(s_in_prim)
    phonon.run_qpoints(qpoints)
    return np.asarray(phonon.qpoints.frequencies).ravel()


def cell_qha(qha_result, temperature, pressure_bar=0.0):
    """(V Å³/atom, G eV/atom) of the classical QHA of the phonon supercell itself: E(V) plus the
    finite-cell free energy of its 3N modes (:func:`finite_cell_free_energy`), minimised over V (a
    quartic through the volumes, on a fine grid): the harmonic reference of MD in that very cell."""
    n = len(qha_result.cell_masses)
    vols = np.asarray(qha_result.volumes, float)
    f = [e + finite_cell_free_energy(fr, qha_result.cell_masses, v * n, temperature) + pressure_bar / EV_PER_A3_TO_BAR * v
         for e, fr, v in zip(qha_result.energies, qha_result.cell_frequencies, vols)]
    coef = np.polyfit(vols, f, 4)
    grid = np.linspace(vols[0], vols[-1], 200001)
    vals = np.polyval(coef, grid)
    i = int(np.argmin(vals))
    if i in (0, len(grid) - 1):
        return float("nan"), float("nan")
    return float(grid[i]), float(vals[i])


def frenkel_ladd_run(cell, potential_file, temperature, pressure_bar, workdir, comm, steps=10000,
                     iterations=3, timestep=0.002, seed=12345, stream=None, reuse=False):
    """acemd's ``[free_energy]`` solid route on ``cell`` (ase.Atoms, the perfect lattice) through
    the driver: returns its report (dict).  ``reuse``: read the report an earlier run with the same
    input left in ``workdir`` instead of running again."""
    from ase.io import write
    from ..config import parse_config
    from ..drivers.free_energy import FreeEnergyRun
    workdir = Path(workdir)
    tag = f"fl_{temperature:g}K"
    if reuse and (workdir / f"{tag}.yaml").exists():
        import yaml
        return yaml.safe_load((workdir / f"{tag}.yaml").read_text())
    structure = workdir / f"{tag}.extxyz"
    if comm.Get_rank() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        write(structure, cell, format="extxyz", parallel=False)   # ASE would broadcast under MPI
    comm.Barrier()
    text = f"""
[structure]
file = "{structure.as_posix()}"

[potential]
file = "{Path(potential_file).resolve().as_posix()}"

[free_energy]
mode = "solid"
temperature = {float(temperature)}
pressure = {float(pressure_bar)}
timestep = {timestep}
damping = 0.1
barostat_damping = 0.5
npt_steps = {steps}
spring_steps = {steps}
n_iterations = {iterations}
equilibration_steps = {max(steps // 2, 10)}
switching_steps = {steps}
seed = {seed}
progress_every = {10 * steps}
report = "{(workdir / (tag + '.yaml')).as_posix()}"
data = "{(workdir / (tag + '.h5')).as_posix()}"
checkpoint = "{(workdir / (tag + '.ckpt.h5')).as_posix()}"
"""
    path = workdir / f"{tag}.toml"
    if comm.Get_rank() == 0:
        path.write_text(text)
    comm.Barrier()
    settings = parse_config(text, path)
    run = FreeEnergyRun(settings, text, path, comm=comm, stream=stream if stream is not None else io.StringIO())
    report = run.run()
    if report.get("stopped_by") == "signal":
        from .base import PropertyStopped
        raise PropertyStopped(f"Frenkel-Ladd run at {temperature} K")
    if "stopped_by" in report:
        raise RuntimeError(f"Frenkel-Ladd run at {temperature} K stopped: {report.get('message', report)}")
    return report


def cross_check(atoms, potential_file, qha_result, forces_of, evaluate, temperatures, workdir, comm,
                supercell="auto", supercell_min_length=12.0, displacement=0.01, mesh=(20, 20, 20),
                symprec=1e-5, pressure_bar=0.0, steps=10000, iterations=3, say=lambda line: None,
                rows=None, after_row=None, reuse=False):
    """Frenkel-Ladd and NPT against the classical QHA at ``temperatures``: a list of row dicts.

    ``rows``: rows of an earlier, interrupted call (their temperatures are not run again);
    ``after_row(rows)`` is called after each temperature (a checkpoint; it may raise to stop).
    """
    s_matrix = ph.supercell_matrix(supercell, atoms, supercell_min_length)
    base = ph.make_phonopy(atoms, s_matrix, symprec)
    cell0 = ph.perfect_supercell(base)
    n = len(cell0)
    n_unit = len(atoms)
    v0_atom = atoms.get_volume() / n_unit
    rows = list(rows or [])
    for T in temperatures:
        if any(r["T"] == float(T) for r in rows):
            continue
        say(f"# qha cross-check: Frenkel-Ladd at {T:g} K, {pressure_bar:g} bar, {n} atoms, {steps}-step switches "
            f"x {iterations}")
        # start the NPT stage at the classical QHA's volume: the barostat then only refines it
        v_start = qha_result.at("classical", T)[0]
        start = cell0.copy()
        start.set_cell(cell0.cell.array * (v_start * n / cell0.get_volume()) ** (1.0 / 3.0), scale_atoms=True)
        rep = frenkel_ladd_run(start, potential_file, T, pressure_bar, workdir, comm, steps, iterations, reuse=reuse)
        acemd = rep["acemd"]
        g_fl, g_err = acemd["gibbs_free_energy"], acemd["gibbs_free_energy_error"]
        v_md = rep["average"]["vol_atom"]
        dp = acemd["npt"].get("pressure_error_bar", float("nan"))
        # harmonic references at the MD volume: the same N-cell and the bulk mesh
        ratio = v_md / v0_atom
        unit_v = volume_structures(atoms, [ratio])[0]
        e0 = float(evaluate([unit_v])[0]["energy"]) / n_unit
        p = scaled_phonopy(base, ratio)
        ph.force_constants(p, forces_of(ph.displaced_supercells(p, displacement)))
        masses = ph.perfect_supercell(p).get_masses()
        pv = pressure_bar / EV_PER_A3_TO_BAR * v_md
        f_cell = e0 + finite_cell_free_energy(commensurate_frequencies(p), masses, v_md * n, T) + pv
        p.run_mesh(list(mesh), with_eigenvectors=False, is_mesh_symmetry=True, is_gamma_center=True)
        n_prim = len(p.primitive)
        f_bulk = e0 + classical_free_energy(p.mesh.frequencies, p.mesh.weights, [T])[0] / n_prim + pv
        v_q, g_q, _, _, b_q = qha_result.at("classical", T)
        _, g_quantum, *_ = qha_result.at("quantum", T)
        dv = v_md * dp / (b_q * 1e4) if np.isfinite(dp) else float("nan")
        v_cell, g_cell = cell_qha(qha_result, T, pressure_bar)
        rows.append({"T": float(T), "G_FL": g_fl, "G_FL_error": g_err, "G_QHA_classical": g_q,
                     "G_QHA_quantum": g_quantum, "difference": g_fl - g_q,
                     "anharmonic": g_fl - f_cell, "finite_size": f_cell - f_bulk, "volume_term": f_bulk - g_q,
                     "V_MD": v_md, "V_MD_error": dv, "V_QHA_classical": v_q, "n_atoms": n,
                     "G_QHA_cell": g_cell, "V_QHA_cell": v_cell, "anharmonic_at_P": g_fl - g_cell,
                     "dissipation": acemd["dissipation"], "warnings": list(acemd["warnings"]),
                     "wall_s": acemd["wall_s"]})
        say(format_table(rows[-1:], header=not rows[:-1]))
        if after_row is not None:
            after_row(rows)
    rows.sort(key=lambda r: r["T"])
    return rows


def format_table(rows, header=True):
    """The cross-check rows as text (meV/atom, Å³/atom)."""
    lines = []
    if header:
        lines.append("#   T(K)   G_FL (eV/atom)      G_QHA,cl     FL-QHA (meV/atom)  anharmonic   finite-size  "
                     "volume   V_MD (A^3/atom)     V_QHA,cl  V_MD-V_QHA (%)  G_QHA,q - G_QHA,cl (meV)  "
                     "| same cell: V_QHA,N  V_MD-V_QHA,N (%)  G_FL-G_QHA,N (meV)")
    for r in rows:
        lines.append(
            f"  {r['T']:6.1f}  {r['G_FL']:.5f}±{r['G_FL_error']:.5f}  {r['G_QHA_classical']:.5f}  "
            f"{1e3 * r['difference']:+7.3f} ± {1e3 * r['G_FL_error']:.3f}   {1e3 * r['anharmonic']:+7.3f}  "
            f"{1e3 * r['finite_size']:+9.3f}  {1e3 * r['volume_term']:+7.3f}   {r['V_MD']:.4f}{_pm(r['V_MD_error'])}  "
            f"{r['V_QHA_classical']:.4f}  {100 * (r['V_MD'] / r['V_QHA_classical'] - 1):+7.3f}  "
            f"{1e3 * (r['G_QHA_quantum'] - r['G_QHA_classical']):+8.3f}                  | "
            f"{r.get('V_QHA_cell', float('nan')):.4f}  {100 * (r['V_MD'] / r.get('V_QHA_cell', float('nan')) - 1):+7.3f}  "
            f"{1e3 * r.get('anharmonic_at_P', float('nan')):+8.3f} ± {1e3 * r['G_FL_error']:.3f}")
    return "\n".join(lines)


def _pm(err):
    return f"±{err:.4f}" if np.isfinite(err) else "±n/a   "


def cross_check_for_context(ctx, s, res, result):
    """Run the cross-check from :func:`acemd.properties.qha.run_qha` and add it to ``result``."""
    from .base import PropertyEntry, PropertyStopped
    potential = getattr(ctx, "potential", None)
    path = getattr(potential, "path", None)
    if ctx.label != "acemd" or path is None:
        note = ("the Frenkel-Ladd cross-check runs acemd's MD: it needs acemd's potential (the reference "
                "calculator's context has none); skipped")
        ctx.say(f"# qha ({ctx.label}): {note}")
        result.info["cross_check"] = note
        return
    def after_row(rows):
        # every finished temperature is stored (each is minutes of MD); a restart skips it
        ctx.checkpoint({"cross_check_rows": json.dumps(rows)})
        if ctx.stop_requested():
            raise PropertyStopped(ctx.label)

    rows = cross_check(ctx.atoms, path, res, ph.forces_for_context(ctx), ctx.evaluate, s["cross_check_temperatures"],
                       Path(ctx.output_dir) / f"{ctx.label}_qha_cross_check", ctx.comm, s["supercell"],
                       s["supercell_min_length"], s["displacement"], s["mesh"], s["symprec"],
                       getattr(ctx, "pressure_bar", 0.0), s["cross_check_steps"], s["cross_check_iterations"],
                       ctx.say, rows=json.loads((ctx.saved or {}).get("cross_check_rows", "[]")),
                       after_row=after_row)
    for r in rows:
        t = f"{r['T']:g}K"
        result.entries += [
            PropertyEntry(f"qha.FL_minus_QHA_{t}", 1e3 * r["difference"], "meV/atom", error=1e3 * r["G_FL_error"],
                          note="Frenkel-Ladd G minus classical QHA G"),
            PropertyEntry(f"qha.anharmonic_{t}", 1e3 * r["anharmonic"], "meV/atom", error=1e3 * r["G_FL_error"],
                          note="Frenkel-Ladd minus the harmonic free energy of the same cell at the MD volume"),
            PropertyEntry(f"qha.V_MD_minus_QHA_{t}", r["V_MD"] - r["V_QHA_classical"], "Å^3/atom",
                          error=r["V_MD_error"]),
            PropertyEntry(f"qha.FL_minus_QHA_cell_{t}", 1e3 * r["anharmonic_at_P"], "meV/atom",
                          error=1e3 * r["G_FL_error"],
                          note="Frenkel-Ladd G minus the classical QHA of the same N-atom cell (anharmonic at P)"),
            PropertyEntry(f"qha.V_MD_minus_QHA_cell_{t}", r["V_MD"] - r["V_QHA_cell"], "Å^3/atom",
                          error=r["V_MD_error"])]
    result.info["cross_check"] = rows
    result.data["cross_check"] = {k: np.array([r[k] for r in rows]) for k in
                                  ("T", "G_FL", "G_FL_error", "G_QHA_classical", "G_QHA_quantum", "difference",
                                   "anharmonic", "finite_size", "volume_term", "V_MD", "V_MD_error",
                                   "V_QHA_classical", "V_QHA_cell", "G_QHA_cell", "anharmonic_at_P")}
