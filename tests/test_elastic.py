"""[elastic] at 0 K against independent finite differences of the ASE calculator's stress, and the
elasticity formulas against analytic limits."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.optimize import BFGS
from mpi4py import MPI

from acemd.config import ConfigError, parse_config
from acemd.drivers.elastic import ElasticRun
from acemd.drivers.minimize import NotConvergedError
from acemd.elasticity import (born_stability, crystal_class, independent_constants, voigt_strain_tensor,
                              vrh_moduli)
from acemd.potential.calculator import ACECalculator
from acemd.units import EV_PER_A3_TO_GPA

from engine_helpers import POTENTIALS, run_driver
from test_minimize import ase_energy_per_atom, ase_zero_pressure_a

CU = POTENTIALS / "Cu-I.yace"


def elastic_input(folder, structure, section="", name="el"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[potential]
file = "{CU.as_posix()}"
[structure]
{structure}
[elastic]
report = "{name}.json"
data = "{name}.h5"
{section}
[thermo]
file = "{name}.log"
"""
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def run_elastic(path, comm=MPI.COMM_SELF):
    return run_driver(ElasticRun, path, comm)[1]


def ase_tensor(atoms, magnitude, relax_ions):
    """Independent: central differences of the ASE calculator's stress (GPa), ASE's BFGS for the ions."""
    c = np.zeros((6, 6))
    for j in range(6):
        stresses = []
        for sign in (1.0, -1.0):
            strained = atoms.copy()
            f = np.eye(3) + voigt_strain_tensor(j, sign * magnitude)
            strained.set_cell(atoms.cell.array @ f.T, scale_atoms=True)
            strained.calc = ACECalculator(str(CU))
            if relax_ions:
                BFGS(strained, logfile=None).run(fmax=1e-7, steps=2000)
            stresses.append(strained.get_stress() * EV_PER_A3_TO_GPA)
        c[:, j] = (stresses[0] - stresses[1]) / (2.0 * magnitude)
    return c


FCC = 'lattice = "fcc"\nelement = "Cu"\na = 3.7\nrepeat = [2, 2, 2]\nrattle = 0.02'


def test_fcc_cu_against_ase(tmp_path):
    """a0, cohesive energy and C11, C12, C44 within 0.5 % of an independent ASE calculation."""
    report = run_elastic(elastic_input(tmp_path, FCC))
    a0 = ase_zero_pressure_a()
    e0 = ase_energy_per_atom(a0)
    ref = ase_tensor(bulk("Cu", "fcc", a=a0, cubic=True), 1e-4, relax_ions=False)
    ref_c = independent_constants(ref, "cubic")
    a = report["volume_A3"] ** (1 / 3) / 2.0
    got = report["independent_constants_GPa"]
    print(f"\nfcc Cu-I: a0 {a:.6f} vs {a0:.6f} A; E {report['energy_per_atom_eV']:.8f} vs {e0:.8f} eV/atom")
    for k in ("C11", "C12", "C44"):
        print(f"  {k}: acemd {got[k]:.3f}  ASE {ref_c[k]:.3f} GPa  ({100 * (got[k] / ref_c[k] - 1):+.3f} %)")
    assert report["crystal_class"] == "cubic"
    assert a == pytest.approx(a0, rel=1e-6)
    assert report["energy_per_atom_eV"] == pytest.approx(e0, abs=1e-8)
    for k in ("C11", "C12", "C44"):
        assert got[k] == pytest.approx(ref_c[k], rel=5e-3)
    assert report["born_stable"]
    assert report["asymmetry_GPa"] < 0.05
    m = report["moduli_GPa"]
    assert m["bulk_voigt"] == pytest.approx((got["C11"] + 2 * got["C12"]) / 3, rel=1e-6)
    # outputs
    data = json.loads((tmp_path / "el.json").read_text())
    assert np.allclose(data["C_symmetrized_GPa"], report["C_symmetrized_GPa"])
    import h5py
    with h5py.File(tmp_path / "el.h5", "r") as f:
        assert f["stress"].shape == (36, 6) and f["stress"].attrs["unit"] == "GPa"
        assert set(np.round(np.abs(f["strain"][:]), 6)) == {0.0025, 0.005, 0.01}


def test_hcp_relaxed_and_clamped_ion_tensors(tmp_path):
    """hcp Cu: internal relaxation lowers C11 and C66 (the basis atoms move under in-plane strain)
    and leaves C33 alone; both tensors equal ASE finite differences at the same strain."""
    structure = 'lattice = "hcp"\nelement = "Cu"\na = 2.57\nc = 4.2'
    relaxed = run_elastic(elastic_input(tmp_path, structure, "strains = [0.002]\nmethod = \"lbfgs\"", "rel"))
    clamped = run_elastic(elastic_input(tmp_path, structure, "strains = [0.002]\nrelax_ions = false", "cl"))
    cell = np.array(relaxed["cell_A"])
    a, c = np.linalg.norm(cell[0]), np.linalg.norm(cell[2])
    ideal = bulk("Cu", "hcp", a=a, c=c)
    ideal.set_cell(cell, scale_atoms=True)
    ref_rel = ase_tensor(ideal, 0.002, relax_ions=True)
    ref_cl = ase_tensor(ideal, 0.002, relax_ions=False)
    c_rel, c_cl = np.array(relaxed["C_GPa"]), np.array(clamped["C_GPa"])
    print(f"\nhcp Cu-I (a {a:.5f}, c/a {c / a:.5f}):")
    for name, (i, j) in {"C11": (0, 0), "C12": (0, 1), "C13": (0, 2), "C33": (2, 2), "C44": (3, 3),
                         "C66": (5, 5)}.items():
        print(f"  {name}: relaxed {c_rel[i, j]:8.3f} (ASE {ref_rel[i, j]:8.3f})  clamped {c_cl[i, j]:8.3f} "
              f"(ASE {ref_cl[i, j]:8.3f}) GPa")
    assert relaxed["crystal_class"] == "hexagonal" and clamped["crystal_class"] == "hexagonal"
    np.testing.assert_allclose(c_rel, ref_rel, atol=0.05)
    np.testing.assert_allclose(c_cl, ref_cl, atol=0.05)
    assert c_cl[0, 0] - c_rel[0, 0] > 1.0 and c_cl[5, 5] - c_rel[5, 5] > 1.0
    assert c_cl[2, 2] == pytest.approx(c_rel[2, 2], abs=0.05)


def test_vrh_isotropic_limit_and_cubic_closed_forms():
    lam, mu = 60.0, 30.0
    iso = np.zeros((6, 6))
    iso[:3, :3] = lam
    iso[np.arange(3), np.arange(3)] = lam + 2 * mu
    iso[np.arange(3, 6), np.arange(3, 6)] = mu
    m = vrh_moduli(iso)
    k = lam + 2 * mu / 3
    for key in ("bulk_voigt", "bulk_reuss", "bulk_hill"):
        assert m[key] == pytest.approx(k, rel=1e-12)
    for key in ("shear_voigt", "shear_reuss", "shear_hill"):
        assert m[key] == pytest.approx(mu, rel=1e-12)
    assert m["young_hill"] == pytest.approx(mu * (3 * lam + 2 * mu) / (lam + mu), rel=1e-12)
    assert m["poisson_hill"] == pytest.approx(lam / (2 * (lam + mu)), rel=1e-12)
    c11, c12, c44 = 170.0, 120.0, 75.0
    cub = np.zeros((6, 6))
    cub[:3, :3] = c12
    cub[np.arange(3), np.arange(3)] = c11
    cub[np.arange(3, 6), np.arange(3, 6)] = c44
    m = vrh_moduli(cub)
    assert m["shear_voigt"] == pytest.approx((c11 - c12 + 3 * c44) / 5, rel=1e-12)
    assert m["shear_reuss"] == pytest.approx(5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12)), rel=1e-12)
    assert crystal_class(cub) == "cubic" and born_stability(cub)[0]
    unstable = cub.copy()
    unstable[:3, :3] = c11
    unstable[np.arange(3), np.arange(3)] = c12           # C12 > C11: Born-unstable
    assert not born_stability(unstable)[0]
    assert crystal_class(np.random.default_rng(0).normal(size=(6, 6)) + 100 * np.eye(6)) == "other"


@pytest.mark.parametrize("section,match", [
    ("strains = [0.06]", r"\(0, 0.05\]"),
    ("strains = []", "at least one strain"),
    ('method = "fyre"', "did you mean 'fire'"),
])
def test_bad_elastic_input(tmp_path, section, match):
    path = elastic_input(tmp_path, FCC, section)
    with pytest.raises(ConfigError, match=match):
        parse_config(path.read_text(), path)


def test_elastic_with_md_is_an_error(tmp_path):
    path = elastic_input(tmp_path, FCC)
    with pytest.raises(ConfigError, match=r"found \[md\], \[elastic\]"):
        parse_config(path.read_text() + "[md]\nsteps = 1\n", path)


def test_unconverged_reference_relaxation_is_an_error(tmp_path):
    path = elastic_input(tmp_path, FCC, "max_steps = 2")
    with pytest.raises(NotConvergedError, match="reference relaxation.*max_steps"):
        run_elastic(path)
    assert not (tmp_path / "el.json").exists()


def test_plot_script(tmp_path):
    """scripts/plot_elastic.py draws the stress-strain curves of a real elastic.h5."""
    pytest.importorskip("matplotlib")
    import subprocess
    import sys
    run_elastic(elastic_input(tmp_path, FCC, "strains = [0.005, 0.01]"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "plot_elastic.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "el.h5"), "-o", str(tmp_path / "ss.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ss.png").stat().st_size > 10000
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "el.json")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "el.json" in bad.stderr
