#!/usr/bin/env python
"""Closed-loop validation of ``acemd learn`` with a known answer (issue 25).

The labeller is a known potential: the published Cu-PBE-core-rep.ace through acemd's calculator
(``--labeller ace``) and/or ASE's EMT for Cu (``--labeller emt``).  The loop starts from 20 rattled
and strained fcc cells (32 atoms), fits a small linear ACE (274 B-functions, rcut 6 Å), and explores
with NVT/NPT MD at 300-2000 K: the crystal, compressed and stretched cells, a vacancy, a (111)
surface slab and the liquid.  The learnt potential is then compared with the labeller:

- errors on held-out structures of every kind (MD frames of the learnt potential, labelled afresh);
- the fcc lattice constant and C11, C12, C44 (acemd's [elastic]; EMT: the same finite strains by ASE);
- the vacancy formation energy (acemd's [minimize], 107 atoms at each potential's own lattice constant);
- the liquid density at 1500 K and 0 bar (acemd's NPT after melting at 2500 K; EMT: ASE's Berendsen NPT);
- with ``--melting``: the melting point (acemd's ``melting_temperature``; hours on 2 cores).

Tolerances of the issue: a0 0.2 %, Cij 3 %, vacancy 50 meV, liquid density 1 %, Tm 50 K.  Prints
every figure, the wall-time split of the loop (explore / select / label / fit / other) and the wall
time of the whole validation.  Usage::

    python scripts/validate_learn_cu.py [--labeller ace|emt|both] [--out DIR] [--max-iterations N]
                                        [--quick] [--melting]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CU_PBE = (ROOT / ".." / "shared" / "reference" / "ace" / "potentials" / "Cu-PBE-core-rep.ace").resolve()
CU_PBE_LOCAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"
AMU_G = 1.66053906660e-24        # g per amu
MASS_CU = 63.546                 # amu
TOLERANCE = {"a0": 0.2, "C11": 3.0, "C12": 3.0, "C44": 3.0, "E_vac": 0.050, "rho_liquid": 1.0, "Tm": 50.0}

FIT = """
[learn.fit]
test_size = 0.1
seed = 1
[learn.fit.potential]
deltaSplineBins = 0.001
elements = ["Cu"]
embeddings = {ALL = {npot = "FinnisSinclairShiftedScaled", fs_parameters = [1, 1], ndensity = 1}}
bonds = {ALL = {radbase = "SBessel", radparameters = [5.25], rcut = 6.0, dcut = 0.01}}
functions = {ALL = {nradmax_by_orders = [10, 6, 4, 2], lmax_by_orders = [0, 3, 2, 1]}}
[learn.fit.fit]
loss = {kappa = 0.5, L2_coeffs = 1e-8, kappa_stress = 0.3}
"""


def say(*args):
    print(*args, flush=True)


# -- the labellers ----------------------------------------------------------------------------------

def labeller_spec(kind):
    if kind == "ace":
        pot = CU_PBE if CU_PBE.exists() else CU_PBE_LOCAL
        return (f'calculator = "acemd:ACECalculator"\nkwargs = {{potential = "{pot}"}}', pot)
    return ('calculator = "ase.calculators.emt:EMT"', None)


def labeller_calc(kind):
    if kind == "ace":
        from acemd import ACECalculator
        return ACECalculator(labeller_spec("ace")[1])
    from ase.calculators.emt import EMT
    return EMT()


def lattice_constant_ase(calc, guess=3.6):
    """a0 of fcc from E(a) on the cubic 4-atom cell (a parabola through a fine scan; for structures)."""
    from ase.build import bulk
    a_values = guess * np.linspace(0.97, 1.03, 13)
    e = []
    for a in a_values:
        at = bulk("Cu", "fcc", a=a, cubic=True)
        at.calc = calc
        e.append(at.get_potential_energy())
    k = int(np.argmin(e))
    lo, hi = max(k - 2, 0), min(k + 3, len(e))
    p = np.polyfit(a_values[lo:hi], e[lo:hi], 2)
    return float(-p[1] / (2 * p[0]))


# -- structures of the plan -------------------------------------------------------------------------

def write_structures(folder: Path, a0: float, calc, liquid_steps: int):
    """Vacancy cell, (111) slab, and a liquid made by the labeller's own MD (2500 K)."""
    from ase import units
    from ase.build import bulk, fcc111
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    folder.mkdir(parents=True, exist_ok=True)
    vac = bulk("Cu", "fcc", a=a0, cubic=True).repeat((3, 3, 3))
    del vac[0]
    vac.write(folder / "vacancy.extxyz")
    slab = fcc111("Cu", size=(3, 3, 6), a=a0, vacuum=8.0, periodic=False)
    slab.pbc = [True, True, False]
    slab.write(folder / "surface111.extxyz")
    liquid = folder / "liquid.extxyz"
    if not liquid.exists():
        at = bulk("Cu", "fcc", a=a0 * 1.03, cubic=True).repeat((3, 3, 3))
        at.calc = calc
        MaxwellBoltzmannDistribution(at, temperature_K=5000, rng=np.random.default_rng(3))
        dyn = Langevin(at, 2 * units.fs, temperature_K=2500, friction=0.05, rng=np.random.default_rng(4))
        dyn.run(liquid_steps)
        at.calc = None
        at.write(liquid)
    return {"vacancy": folder / "vacancy.extxyz", "surface": folder / "surface111.extxyz", "liquid": liquid}


def explorations(a0, files, steps):
    def fcc(a, n=3):
        return f'structure = {{lattice = "fcc", element = "Cu", a = {a:.5f}, repeat = [{n}, {n}, {n}]}}'

    def nvt(name, structure, t, n=steps):
        return (f'\n[[learn.explore]]\nname = "{name}"\n{structure}\nvelocities = {{temperature = {t:.1f}}}\n'
                f'md = {{steps = {n}, timestep = 0.002, ensemble = "nvt-langevin"}}\n'
                f'thermostat = {{temperature = {t:.1f}, damping = 0.1}}\n')

    def npt(name, structure, t, n=steps):
        return (f'\n[[learn.explore]]\nname = "{name}"\n{structure}\nvelocities = {{temperature = {t:.1f}}}\n'
                f'md = {{steps = {n}, timestep = 0.002, ensemble = "npt-crescale"}}\n'
                f'thermostat = {{temperature = {t:.1f}, damping = 0.1}}\n'
                f'barostat = {{pressure = 0.0, damping = 1.0, compressibility = 7e-7}}\n')
    return "".join([
        nvt("fcc_nvt300", fcc(a0), 300.0),
        npt("fcc_npt1000", fcc(a0 * 1.01), 1000.0),
        nvt("compressed_nvt600", fcc(a0 * 0.97), 600.0),
        nvt("stretched_nvt600", fcc(a0 * 1.04), 600.0),
        nvt("vacancy_nvt900", f'structure = {{file = "{files["vacancy"]}"}}', 900.0),
        nvt("surface111_nvt700", f'structure = {{file = "{files["surface"]}"}}', 700.0),
        npt("liquid_npt1500", f'structure = {{file = "{files["liquid"]}"}}', 1500.0),
        nvt("liquid_nvt2000", f'structure = {{file = "{files["liquid"]}"}}', 2000.0),
    ])


def learn_input(folder: Path, kind, a0, files, args) -> Path:
    lab, _ = labeller_spec(kind)
    text = f"""# acemd learn: closed-loop validation, labeller {kind} (scripts/validate_learn_cu.py)
[learn]
folder = "loop"
gamma_lower = {args.gamma_lower}
gamma_upper = {args.gamma_upper}
structures_per_iteration = {args.per_iteration}
max_iterations = {args.max_iterations}
gamma_every = 20
max_candidates_per_run = 30

[learn.start]
lattice = "fcc"
element = "Cu"
a = {a0:.5f}
repeat = [2, 2, 2]
count = 20
rattle = 0.1
strain = 0.04
seed = 1

[learn.labeller]
{lab}
""" + FIT + explorations(a0, files, args.explore_steps)
    path = folder / "learn.toml"
    path.write_text(text)
    return path


# -- properties through acemd's drivers ---------------------------------------------------------------

def run_acemd(toml_text: str, path: Path, *extra):
    """Run one acemd input (a separate process, as a user would), its output to a log next to it."""
    import subprocess
    path.write_text(toml_text)
    log = path.with_suffix(".out")
    with open(log, "w") as fh:
        status = subprocess.run([sys.executable, "-m", "acemd", str(path), *extra], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=path.parent).returncode
    if status != 0:
        raise RuntimeError(f"acemd {path} ended with status {status}; see {log}")


def elastic_acemd(potential, folder: Path, a_guess):
    folder.mkdir(parents=True, exist_ok=True)
    run_acemd(f"""[structure]
lattice = "fcc"
element = "Cu"
a = {a_guess:.5f}
repeat = [2, 2, 2]
[potential]
file = "{potential}"
[elastic]
report = "elastic.json"
data = "elastic.h5"
[thermo]
file = "elastic.log"
[checkpoint]
file = "elastic.ckpt.h5"
""", folder / "elastic.toml")
    rep = json.loads((folder / "elastic.json").read_text())
    c = np.array(rep["C_symmetrized_GPa"])
    a0 = float(np.linalg.norm(np.array(rep["cell_A"])[0])) / 2
    return {"a0": a0, "C11": float(np.mean(c[[0, 1, 2], [0, 1, 2]])), "C12": float(np.mean(c[[0, 0, 1], [1, 2, 2]])),
            "C44": float(np.mean(c[[3, 4, 5], [3, 4, 5]])), "e0": float(rep["energy_per_atom_eV"])}


def vacancy_acemd(potential, folder: Path, a0, e0):
    from ase.build import bulk
    folder.mkdir(parents=True, exist_ok=True)
    at = bulk("Cu", "fcc", a=a0, cubic=True).repeat((3, 3, 3))
    del at[0]
    at.write(folder / "vacancy.extxyz")
    run_acemd(f"""[structure]
file = "vacancy.extxyz"
[potential]
file = "{potential}"
[minimize]
cell = "fixed"
fmax = 1e-4
structure_file = "vacancy_relaxed.extxyz"
[thermo]
file = "vacancy.log"
[checkpoint]
file = "vacancy.ckpt.h5"
""", folder / "vacancy.toml")
    from ase.io import read
    relaxed = read(folder / "vacancy_relaxed.extxyz")
    e = float(relaxed.info.get("energy_eV", relaxed.info.get("energy")))
    return e - len(relaxed) * e0


def liquid_density_acemd(potential, folder: Path, a0, melt_steps, npt_steps):
    """NVT 2500 K (melt) then NPT 1500 K / 0 bar; density from the mean volume of the second half."""
    import shutil
    shutil.rmtree(folder, ignore_errors=True)       # a rerun starts anew (the NPT run appends to its log)
    folder.mkdir(parents=True, exist_ok=True)
    common = f'[potential]\nfile = "{potential}"\n[checkpoint]\nfile = "liquid.ckpt.h5"\n'
    run_acemd(f"""[structure]
lattice = "fcc"
element = "Cu"
a = {a0 * 1.03:.5f}
repeat = [4, 4, 4]
[velocities]
temperature = 2500.0
seed = 7
[md]
steps = {melt_steps}
timestep = 0.002
ensemble = "nvt-langevin"
[thermostat]
temperature = 2500.0
damping = 0.1
[thermo]
every = 50
file = "melt.log"
""" + common, folder / "melt.toml")
    text = f"""[structure]
lattice = "fcc"
element = "Cu"
a = {a0 * 1.03:.5f}
repeat = [4, 4, 4]
[md]
steps = {melt_steps + npt_steps}
timestep = 0.002
ensemble = "npt-crescale"
[thermostat]
temperature = 1500.0
damping = 0.1
[barostat]
pressure = 0.0
damping = 1.0
compressibility = 1.5e-6
[thermo]
every = 20
file = "npt1500.log"
""" + common
    run_acemd(text, folder / "npt1500.toml", "--restart", str(folder / "liquid.ckpt.h5"))
    v = _thermo_column(folder / "npt1500.log", "Volume")
    steps = _thermo_column(folder / "npt1500.log", "Step")
    keep = steps >= melt_steps + npt_steps // 2
    vol = v[keep]
    n = 256
    rho = n * MASS_CU * AMU_G / (vol * 1e-24)
    blocks = np.array_split(rho, 5)
    err = float(np.std([b.mean() for b in blocks], ddof=1) / np.sqrt(len(blocks)))
    return float(rho.mean()), err


def _thermo_column(path, name):
    cols = None
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            parts = [c.split("[")[0] for c in line[1:].split()]      # Volume[A^3] -> Volume
            if "Step" in parts and name in parts:
                cols = parts
            continue
        if cols and line.strip():
            try:
                rows.append(float(line.split()[cols.index(name)]))
            except (ValueError, IndexError):
                pass
    return np.array(rows)


# -- properties of EMT through ASE (acemd's drivers run ACE potentials only) --------------------------

def elastic_ase(calc, a0):
    """C11, C12, C44 of fcc from stresses at +-0.5 % strains of the cubic cell (one atom per primitive
    cell in fcc: no internal relaxation), and the energy per atom."""
    from ase.build import bulk
    at0 = bulk("Cu", "fcc", a=a0, cubic=True)
    eps = 0.005
    c = np.zeros((6, 6))
    for j in range(6):
        s = []
        for sign in (1, -1):
            e = np.zeros((3, 3))
            if j < 3:
                e[j, j] = sign * eps
            else:
                p, q = [(1, 2), (0, 2), (0, 1)][j - 3]
                e[p, q] = e[q, p] = sign * eps / 2
            at = at0.copy()
            at.set_cell(at0.cell.array @ (np.eye(3) + e), scale_atoms=True)
            at.calc = calc
            s.append(at.get_stress(voigt=True))
        c[:, j] = (s[0] - s[1]) / (2 * eps) / 1e9 * 1.602176634e-19 * 1e30
    at0.calc = calc
    return {"a0": a0, "C11": float(np.mean(c[[0, 1, 2], [0, 1, 2]])), "C12": float(np.mean(c[[0, 0, 1], [1, 2, 2]])),
            "C44": float(np.mean(c[[3, 4, 5], [3, 4, 5]])), "e0": float(at0.get_potential_energy() / len(at0))}


def vacancy_ase(calc, a0, e0):
    from ase.build import bulk
    from ase.optimize import FIRE
    at = bulk("Cu", "fcc", a=a0, cubic=True).repeat((3, 3, 3))
    del at[0]
    at.calc = calc
    FIRE(at, logfile=None).run(fmax=1e-4, steps=3000)
    return float(at.get_potential_energy() - len(at) * e0)


def liquid_density_ase(calc, a0, melt_steps, npt_steps):
    """EMT's liquid density at 1500 K, 0 bar: 256 atoms melted at 2500 K (Langevin), then ASE's
    Berendsen NPT (its mean volume is right, its fluctuations are not); the second half averaged."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.nptberendsen import NPTBerendsen
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    at = bulk("Cu", "fcc", a=a0 * 1.03, cubic=True).repeat((4, 4, 4))
    at.calc = calc
    MaxwellBoltzmannDistribution(at, temperature_K=2500, rng=np.random.default_rng(7))
    Langevin(at, 2 * units.fs, temperature_K=2500, friction=0.05, rng=np.random.default_rng(8)).run(melt_steps)
    dyn = NPTBerendsen(at, 2 * units.fs, temperature_K=1500, pressure_au=0.0, taut=100 * units.fs,
                       taup=1000 * units.fs, compressibility_au=1.5e-6 / units.bar)
    vols = []
    dyn.attach(lambda: vols.append(at.get_volume()), interval=20)
    dyn.run(npt_steps)
    vol = np.array(vols[len(vols) // 2:])
    rho = len(at) * MASS_CU * AMU_G / (vol * 1e-24)
    blocks = np.array_split(rho, 5)
    return float(rho.mean()), float(np.std([b.mean() for b in blocks], ddof=1) / np.sqrt(len(blocks)))


# -- held-out structures -----------------------------------------------------------------------------

def held_out_errors(potential, kind, a0, files, frames_per_kind=4, steps=400):
    """RMSE (meV/atom, meV/Å) of the learnt potential against the labeller on MD frames of the learnt
    potential (ASE Langevin, 2 fs) started like each exploration and labelled afresh."""
    from ase import units
    from ase.build import bulk
    from ase.io import read
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from acemd import ACECalculator
    ref = labeller_calc(kind)
    learnt = ACECalculator(potential)
    starts = {"fcc 300 K": (bulk("Cu", "fcc", a=a0, cubic=True).repeat((3, 3, 3)), 300),
              "fcc 1000 K": (bulk("Cu", "fcc", a=a0 * 1.01, cubic=True).repeat((3, 3, 3)), 1000),
              "compressed 3 %": (bulk("Cu", "fcc", a=a0 * 0.97, cubic=True).repeat((3, 3, 3)), 600),
              "stretched 4 %": (bulk("Cu", "fcc", a=a0 * 1.04, cubic=True).repeat((3, 3, 3)), 600),
              "vacancy 900 K": (read(files["vacancy"]), 900),
              "(111) surface 700 K": (read(files["surface"]), 700),
              "liquid 1500 K": (read(files["liquid"]), 1500)}
    out = {}
    for name, (at, t) in starts.items():
        at = at.copy()
        at.calc = learnt
        MaxwellBoltzmannDistribution(at, temperature_K=t, rng=np.random.default_rng(11))
        dyn = Langevin(at, 2 * units.fs, temperature_K=t, friction=0.05, rng=np.random.default_rng(12))
        de, df = [], []
        for _ in range(frames_per_kind):
            dyn.run(steps // frames_per_kind)
            e1, f1 = at.get_potential_energy(), at.get_forces()
            b = at.copy()
            b.calc = ref
            de.append((e1 - b.get_potential_energy()) / len(at))
            df.append((f1 - b.get_forces()).ravel())
        out[name] = {"E_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(np.square(de)))),
                     "F_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(np.square(np.concatenate(df)))))}
    return out


# -- melting point (optional) -------------------------------------------------------------------------

def melting_acemd(potential, folder: Path, guess=1250.0, scale=0.5, ranks=2):
    """acemd's melting_temperature on ``potential`` with scripts/validate_melting_cu.py's protocol (256
    atoms per phase, window +-100 K, run lengths x ``scale``): with guess 1250 K and scale 0.5 the
    protocol of the labeller's documented Tm (docs/phase-diagram.md: 1287.76 +- 4.93 K).  Returns the
    report's mapping."""
    import shutil
    import subprocess

    import yaml
    folder.mkdir(parents=True, exist_ok=True)
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    cmd = [sys.executable, str(ROOT / "scripts" / "validate_melting_cu.py"), "--potential", str(potential),
           "--guesses", f"{guess:g}", "--scale", f"{scale:g}", "--out", str(folder)]
    if ranks > 1 and mpiexec:
        cmd = [mpiexec, "-n", str(ranks)] + cmd
    with open(folder / "melting.out", "w") as fh:
        status = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=folder).returncode
    if status != 0:
        raise RuntimeError(f"the melting protocol on {potential} ended with status {status}; see {folder}/melting.out")
    return yaml.safe_load((folder / f"guess_{guess:g}K" / "melting.yaml").read_text())


# -- the whole validation ------------------------------------------------------------------------------

def compare(name, learnt, ref, tol, unit, relative=True):
    if relative:
        dev = 100 * (learnt - ref) / ref
        ok = abs(dev) <= tol
        say(f"  {name:18s} learnt {learnt:10.4f} {unit:8s} labeller {ref:10.4f} {unit:8s} deviation {dev:+7.3f} % "
            f"(tolerance {tol:g} %): {'PASS' if ok else 'FAIL'}")
    else:
        dev = learnt - ref
        ok = abs(dev) <= tol
        say(f"  {name:18s} learnt {learnt:10.4f} {unit:8s} labeller {ref:10.4f} {unit:8s} deviation {dev:+8.4f} "
            f"{unit} (tolerance {tol:g} {unit}): {'PASS' if ok else 'FAIL'}")
    return {"learnt": learnt, "labeller": ref, "deviation": dev, "pass": bool(ok)}


def validate(kind, args, out: Path) -> dict:
    import yaml
    from acemd import signals
    from acemd.learn import read_learn_input, run_learn
    t0 = time.perf_counter()
    folder = out / kind
    folder.mkdir(parents=True, exist_ok=True)
    calc = labeller_calc(kind)
    a_lab = lattice_constant_ase(calc, 3.6)
    say(f"\n=== labeller {kind}: fcc a0 (E(a) scan) {a_lab:.5f} Å")
    t = time.perf_counter()
    files = write_structures(folder / "structures", a_lab, calc, args.liquid_steps)
    say(f"structures: vacancy, (111) slab, liquid by the labeller's MD ({time.perf_counter() - t:.1f} s)")
    path = learn_input(folder, kind, a_lab, files, args)
    settings = read_learn_input(path)
    restart = (settings.folder / "learn_state.json").exists()
    t = time.perf_counter()
    signals.install_early()
    try:
        status = run_learn(settings, restart=restart, say=say)
    finally:
        signals.uninstall_early()
    t_loop = time.perf_counter() - t
    if status != 0:
        raise SystemExit(status)
    report = yaml.safe_load((settings.folder / "report.yaml").read_text())
    w = report["wall_time_s"]
    say(f"loop: {report['iterations']} iterations, converged {report['converged']} ({report['stop_reason']}); "
        f"wall {t_loop:.1f} s this session")
    say("  wall-time split (whole loop): " + ", ".join(f"{k} {w[k]:.1f} s ({100 * w[k] / w['total']:.1f} %)"
                                                       for k in ("explore", "select", "label", "fit", "other")))
    own = w["select"] + w["other"]
    say(f"  loop overhead (select + bookkeeping) {own:.1f} s = {100 * own / max(w['total'] - w['label'], 1e-9):.2f} % "
        "of the wall time apart from labelling (target < 5 %)")
    for h in report["history"]:
        runs = ", ".join(f"{e['name']} {e['max_gamma']:.2f}@{e['steps']}/{e['steps_asked']}" for e in h["explorations"])
        test = h["fit"].get("test", {})
        say(f"  iter {h['iteration']}: dataset {h['dataset_structures']} ({h['dataset_atoms']} atoms), "
            f"+{h['labelled']} labelled, {h['failed']} failed; test E {test.get('energy_rmse_meV_per_atom', np.nan):.2f} "
            f"meV/atom F {test.get('force_rmse_meV_per_A', np.nan):.1f} meV/Å; max gamma@steps: {runs}; "
            f"selected {h['selected']}")
    potential = Path(report["final_potential"])
    result = {"labeller": kind, "iterations": report["iterations"], "converged": report["converged"],
              "wall_split_s": w}

    t = time.perf_counter()
    held = held_out_errors(potential, kind, a_lab, files)
    say(f"held-out MD frames of the learnt potential, labelled afresh ({time.perf_counter() - t:.1f} s):")
    for name, e in held.items():
        say(f"  {name:20s} E rmse {e['E_rmse_meV_per_atom']:7.2f} meV/atom   F rmse {e['F_rmse_meV_per_A']:7.1f} meV/Å")
    result["held_out"] = held

    t = time.perf_counter()
    props = folder / "properties"
    learnt_el = elastic_acemd(potential, props / "learnt", a_lab)
    learnt_vac = vacancy_acemd(potential, props / "learnt", learnt_el["a0"], learnt_el["e0"])
    if kind == "ace":
        lab_pot = labeller_spec("ace")[1]
        ref_el = elastic_acemd(lab_pot, props / "labeller", a_lab)
        ref_vac = vacancy_acemd(lab_pot, props / "labeller", ref_el["a0"], ref_el["e0"])
    else:
        ref_el = elastic_ase(calc, a_lab)
        ref_vac = vacancy_ase(calc, a_lab, ref_el["e0"])
    say(f"properties ({time.perf_counter() - t:.1f} s; learnt potential through acemd's [elastic] and [minimize]; "
        f"labeller {'the same' if kind == 'ace' else 'through ASE (finite strains, FIRE)'}):")
    cmp = {k: compare(k, learnt_el[k], ref_el[k], TOLERANCE[k], "Å" if k == "a0" else "GPa")
           for k in ("a0", "C11", "C12", "C44")}
    cmp["E_vac"] = compare("E_vac", learnt_vac, ref_vac, TOLERANCE["E_vac"], "eV", relative=False)
    if not args.no_liquid:
        t = time.perf_counter()
        rho_l, err_l = liquid_density_acemd(potential, props / "learnt" / "liquid", learnt_el["a0"],
                                            args.melt_steps, args.npt_steps)
        if kind == "ace":
            rho_r, err_r = liquid_density_acemd(labeller_spec("ace")[1], props / "labeller" / "liquid", ref_el["a0"],
                                                args.melt_steps, args.npt_steps)
            say(f"liquid 1500 K, 0 bar, 256 atoms ({time.perf_counter() - t:.1f} s): learnt {rho_l:.4f} ± {err_l:.4f}, "
                f"labeller {rho_r:.4f} ± {err_r:.4f} g/cm³")
            cmp["rho_liquid"] = compare("rho_liquid(1500K)", rho_l, rho_r, TOLERANCE["rho_liquid"], "g/cm3")
        else:
            rho_r, err_r = liquid_density_ase(calc, ref_el["a0"], args.melt_steps, args.npt_steps)
            say(f"liquid 1500 K, 0 bar, 256 atoms ({time.perf_counter() - t:.1f} s): learnt {rho_l:.4f} ± "
                f"{err_l:.4f} (acemd NPT, stochastic cell rescaling), EMT {rho_r:.4f} ± {err_r:.4f} g/cm³ "
                "(ASE's Berendsen NPT)")
            cmp["rho_liquid"] = compare("rho_liquid(1500K)", rho_l, rho_r, TOLERANCE["rho_liquid"], "g/cm3")
    if args.melting:
        t = time.perf_counter()
        if kind != "ace":
            say("melting point: only with the ACE labeller (acemd's free-energy drivers run ACE potentials)")
        else:
            ml = melting_acemd(potential, props / "learnt" / "melting")
            if args.labeller_tm:                 # the labeller's Tm from an earlier run of the same protocol
                mr = {"result": {"temperature_K": args.labeller_tm[0], "error_K": args.labeller_tm[1]}}
            else:
                mr = melting_acemd(labeller_spec("ace")[1], props / "labeller" / "melting")
            tl, tr = (m.get("result", {}) for m in (ml, mr))
            say(f"melting point, 256 atoms per phase ({time.perf_counter() - t:.0f} s): learnt "
                f"{tl.get('temperature_K', float('nan')):.1f} ± {tl.get('error_K', float('nan')):.1f} K, labeller "
                f"{tr.get('temperature_K', float('nan')):.1f} ± {tr.get('error_K', float('nan')):.1f} K")
            cmp["Tm"] = compare("Tm", float(tl.get("temperature_K", np.nan)), float(tr.get("temperature_K", np.nan)),
                                TOLERANCE["Tm"], "K", relative=False)
    result["comparison"] = cmp
    result["wall_s"] = time.perf_counter() - t0
    say(f"labeller {kind}: validation wall time {result['wall_s']:.1f} s")
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labeller", choices=("ace", "emt", "both"), default="both")
    p.add_argument("--out", default=str(ROOT / "runs" / "validate_learn_cu"))
    p.add_argument("--max-iterations", type=int, default=10)
    p.add_argument("--per-iteration", type=int, default=12, help="structures selected per iteration")
    p.add_argument("--gamma-lower", type=float, default=2.0)
    p.add_argument("--gamma-upper", type=float, default=10.0)
    p.add_argument("--explore-steps", type=int, default=2500, help="MD steps of each exploration (2 fs)")
    p.add_argument("--liquid-steps", type=int, default=1500, help="labeller MD steps making the liquid start")
    p.add_argument("--melt-steps", type=int, default=2500)
    p.add_argument("--npt-steps", type=int, default=10000, help="NPT steps at 1500 K (density: second half)")
    p.add_argument("--no-liquid", action="store_true", help="skip the liquid density")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test, not a validation)")
    p.add_argument("--melting", action="store_true", help="also the melting point (hours)")
    p.add_argument("--labeller-tm", type=float, nargs=2, metavar=("TM_K", "ERROR_K"),
                   help="--melting: the labeller's Tm from an earlier run of the same protocol (e.g. 1287.76 4.93, "
                        "docs/phase-diagram.md) instead of running it again")
    args = p.parse_args(argv)
    for name in ("max_iterations", "per_iteration", "explore_steps", "liquid_steps", "melt_steps", "npt_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if not 1.0 < args.gamma_lower < args.gamma_upper:
        p.error("need 1 < --gamma-lower < --gamma-upper")
    if args.quick:
        args.max_iterations, args.explore_steps, args.liquid_steps = 2, 300, 300
        args.melt_steps, args.npt_steps = 300, 600
    t0 = time.perf_counter()
    out = Path(args.out)
    kinds = ("ace", "emt") if args.labeller == "both" else (args.labeller,)
    results = [validate(k, args, out) for k in kinds]
    import yaml
    (out / "validation.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(results, default=float)),
                                                        sort_keys=False))
    say(f"\nwrote {out / 'validation.yaml'}; whole validation wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
