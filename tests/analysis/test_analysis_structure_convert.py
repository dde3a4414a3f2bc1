"""acemd_structure.py (adaptive CNA: the fcc crystal is 100 % fcc, the hot liquid ~0 %; hcp and bcc
lattices are recognised), acemd_convert.py (H5MD -> extxyz / .traj -> ASE gives back positions, cell,
species, velocities to 1e-10) and acemd_gamma.py (histogram counts against numpy)."""
import h5py
import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.io import read

from acemd.analysis.structure import classify_frame
from acemd.analysis.table import read_table

from analysis_helpers import is_png, run_script


def test_structure_crystal_is_fcc_liquid_is_not(crystal, liquid, tmp_path):
    px, pl = tmp_path / "sx", tmp_path / "sl"
    assert run_script("acemd_structure", crystal.h5, "-o", px, "--every", 10) == 0
    assert run_script("acemd_structure", liquid.h5, "-o", pl, "--frames", "10:", "--every", 10) == 0
    assert is_png(px.with_suffix(".png")) and is_png(pl.with_suffix(".png"))
    tx, tl = read_table(px.with_suffix(".csv")), read_table(pl.with_suffix(".csv"))
    assert np.array_equal(tx["step"], np.arange(0, 501, 50))
    assert np.all(tx["fcc"] == 100.0)                       # the perfect (step 0) and the 300 K crystal
    assert np.all(tl["fcc"] < 5.0) and np.all(tl["other"] + tl["ico"] > 90.0)
    total = sum(tl[k] for k in ("fcc", "hcp", "bcc", "ico", "other"))
    assert np.allclose(total, 100.0)
    print(f"liquid: fcc {tl['fcc'].mean():.2f} %, other {tl['other'].mean():.2f} %")


@pytest.mark.parametrize("lattice, kind", [(bulk("Cu", "hcp", a=2.55, c=4.16).repeat((5, 5, 4)), "hcp"),
                                           (bulk("Fe", "bcc", a=2.87, cubic=True).repeat((5, 5, 5)), "bcc"),
                                           (bulk("Cu", "fcc", a=3.6).repeat((5, 5, 5)), "fcc")])
def test_adaptive_cna_recognises_lattices(lattice, kind):
    lattice.rattle(0.02, seed=1)
    counts = classify_frame(lattice.cell.array, lattice.positions, lattice.numbers)
    assert counts[kind] == len(lattice)


def test_convert_round_trip(crystal, tmp_path):
    xyz, traj = tmp_path / "x.extxyz", tmp_path / "x.traj"
    assert run_script("acemd_convert", crystal.h5, xyz, "--every", 7) == 0
    assert run_script("acemd_convert", crystal.h5, traj, "--frames=-3,0,50") == 0
    with h5py.File(crystal.h5, "r") as f:
        part = f["particles/all"]
        pos, vel, frc = part["position/value"][:], part["velocity/value"][:], part["force/value"][:]
        cell, step = part["box/edges/value"][:], part["box/edges/step"][:]
        epot = f["observables/potential_energy/value"][:]
    images = read(xyz, ":")
    picked = np.arange(0, crystal.n_frames, 7)
    assert len(images) == len(picked)
    for atoms, i in zip(images, picked):
        assert np.abs(atoms.positions - pos[i]).max() <= 1e-10
        assert np.abs(atoms.cell.array - cell[i]).max() <= 1e-10
        assert atoms.get_chemical_symbols() == ["Cu"] * crystal.n_atoms
        assert atoms.pbc.all()
        assert atoms.info["step"] == step[i]
        assert np.abs(atoms.arrays["vel"] - vel[i]).max() <= 1e-10
        assert np.abs(atoms.get_forces() - frc[i]).max() <= 1e-10
        assert atoms.get_potential_energy() == pytest.approx(epot[i], abs=1e-10)
        assert np.array_equal(atoms.arrays["id"], np.arange(crystal.n_atoms))
    images = read(traj, ":")
    for atoms, i in zip(images, [crystal.n_frames - 3, 0, 50]):
        assert np.abs(atoms.positions - pos[i]).max() <= 1e-10
        assert np.abs(atoms.cell.array - cell[i]).max() <= 1e-10
        assert np.abs(atoms.get_velocities() * 1000 * units.fs - vel[i]).max() <= 1e-10   # Angstrom/ps
        assert np.abs(atoms.get_forces() - frc[i]).max() <= 1e-10
        assert atoms.get_chemical_symbols() == ["Cu"] * crystal.n_atoms


def test_gamma_histogram(gamma_run, tmp_path):
    prefix = tmp_path / "g"
    assert run_script("acemd_gamma", gamma_run.h5, "-o", prefix, "--thresholds", "1,3e6") == 0
    assert is_png(prefix.with_suffix(".png"))
    table = read_table(prefix.with_suffix(".csv"))
    with h5py.File(gamma_run.h5, "r") as f:
        gam = f["particles/all/gamma/value"][:]
        gmax = f["observables/max_gamma/value"][:]
    assert gam.shape == (gamma_run.n_frames, gamma_run.n_atoms)
    assert table["count"].sum() == gam.size
    assert np.allclose(gam.max(axis=1), gmax)
    # the CSV holds the edges in decimal text: compare the outer ones to round-off
    assert table["gamma_hi"][-1] >= gam.max() * (1 - 1e-12) and table["gamma_lo"][0] <= gam.min() * (1 + 1e-12)
    edges = np.append(table["gamma_lo"], table["gamma_hi"][-1])
    edges[0], edges[-1] = min(edges[0], gam.min()), max(edges[-1], gam.max())
    ref = np.histogram(gam, edges)[0]
    assert np.array_equal(table["count"], ref)
    text = prefix.with_suffix(".csv").read_text()
    assert f"above 3e+06: {100 * (gam > 3e6).mean():.6g} %" in text
    # the thermo log's MaxGamma column: one value per row
    prefix = tmp_path / "gl"
    assert run_script("acemd_gamma", gamma_run.log, "-o", prefix, "--linear", "--bins", 4) == 0
    tl = read_table(prefix.with_suffix(".csv"))
    assert tl["count"].sum() == 5 and len(tl["count"]) == 4
