"""acemd_rdf.py: the perfect fcc crystal's shells (distances and 12, 6, 24 neighbours), the thermal
crystal's coordination numbers, and freud's g(r) against a brute-force histogram of ASE distances
(triclinic cell) and an ordered binary's partial coordination numbers."""
import numpy as np
import pytest
from ase.build import bulk
from ase.geometry import get_distances

from acemd.analysis.rdf import RDFAccumulator, coordination_shells
from acemd.analysis.table import read_table

from analysis_helpers import is_png, run_script


def _n_at(table, r):
    """Running coordination number at the bin edge nearest to r."""
    edges = table["r"] + 0.5 * (table["r"][1] - table["r"][0])
    return table["n_total"][np.argmin(abs(edges - r))]


def test_perfect_fcc_shells(crystal, tmp_path):
    prefix = tmp_path / "rdf0"
    bins, r_max = 250, 5.3          # no shell distance on a bin edge
    assert run_script("acemd_rdf", crystal.h5, "-o", prefix, "--frames", "0", "--r-max", r_max,
                      "--bins", bins) == 0
    assert is_png(prefix.with_suffix(".png"))
    table = read_table(prefix.with_suffix(".csv"))
    a, width = crystal.a, r_max / bins
    shells = a * np.sqrt([0.5, 1.0, 1.5, 2.0])
    peaks = [table["r"][k] for k in np.flatnonzero(table["g_total"] > 0)]
    # all the weight is in the four bins holding the neighbour-shell distances
    assert len(peaks) == 4
    assert np.allclose(peaks, shells, atol=width / 2 + 1e-9)
    # cumulative counts between the shells: 12, 12 + 6, 12 + 6 + 24, + 12
    assert _n_at(table, 3.1) == pytest.approx(12.0, abs=1e-9)
    assert _n_at(table, 4.0) == pytest.approx(18.0, abs=1e-9)
    assert _n_at(table, 4.8) == pytest.approx(42.0, abs=1e-9)
    assert _n_at(table, 5.25) == pytest.approx(54.0, abs=1e-9)
    text = prefix.with_suffix(".csv").read_text()
    assert "shell 1: peak" in text and "coordination 12.0000" in text and "coordination 24.0000" in text


def test_thermal_crystal_coordination_numbers(crystal, tmp_path):
    prefix = tmp_path / "rdf"
    assert run_script("acemd_rdf", crystal.h5, "-o", prefix, "--frames", "20:", "--no-plot") == 0
    table = read_table(prefix.with_suffix(".csv"))
    edges = np.append(table["r"] - 0.5 * (table["r"][1] - table["r"][0]), 2 * table["r"][-1] - table["r"][-2])
    shells = coordination_shells(table["r"], table["g_total"], table["n_total"], edges, 3)
    assert [round(s[3], 1) for s in shells] == [12.0, 6.0, 24.0]
    assert [s[0] for s in shells] == pytest.approx(crystal.a * np.sqrt([0.5, 1.0, 1.5]), abs=0.05)
    # g -> 1 on average between 5 and 5.3 Angstrom is not expected in a crystal; the density is:
    assert _n_at(table, 5.0) == pytest.approx(4 / crystal.a ** 3 * 4 / 3 * np.pi * 5.0 ** 3, rel=0.15)


def _brute_force_rdf(atoms, r_edges):
    d = get_distances(atoms.positions, cell=atoms.cell, pbc=True)[1]
    d = d[~np.eye(len(atoms), dtype=bool)]
    counts = np.histogram(d, r_edges)[0]
    shell = 4.0 / 3.0 * np.pi * (r_edges[1:] ** 3 - r_edges[:-1] ** 3)
    rho = len(atoms) / atoms.get_volume()
    return counts / (len(atoms) * rho * shell)


def test_freud_rdf_equals_brute_force_in_a_triclinic_cell():
    atoms = bulk("Cu", "fcc", a=3.6).repeat((5, 5, 5))         # primitive cell vectors: triclinic
    atoms.rattle(0.15, seed=4)
    atoms.rotate(30, "z", rotate_cell=True)                       # a not along x: freud needs a rotation
    bins, r_max = 60, 4.5
    acc = RDFAccumulator(np.zeros(len(atoms), int), ["Cu"], r_max, bins)
    acc.add(atoms.cell.array, atoms.positions)
    res = acc.result()
    ref = _brute_force_rdf(atoms, res.r_edges)
    assert np.allclose(res.g["total"], ref, rtol=1e-4, atol=1e-6)


def test_partial_coordination_of_an_ordered_binary():
    """L1_2 (Cu3Au type): Au has 12 Cu nearest neighbours, Cu has 8 Cu and 4 Au."""
    from ase.spacegroup import crystal as spacegroup_crystal
    atoms = spacegroup_crystal(["Au", "Cu"], [(0, 0, 0), (0, 0.5, 0.5)], spacegroup=221,
                               cellpar=[3.75, 3.75, 3.75, 90, 90, 90]).repeat((3, 3, 3))
    species = np.array([0 if s == "Au" else 1 for s in atoms.get_chemical_symbols()])
    acc = RDFAccumulator(species, ["Au", "Cu"], 5.5, 110)
    acc.add(atoms.cell.array, atoms.positions)
    res = acc.result()
    first = np.argmin(abs(res.r_edges[1:] - 3.1))      # between the first (2.65) and second (3.75) shells
    assert res.n["Au-Cu"][first] == pytest.approx(12.0)
    assert res.n["Au-Au"][first] == pytest.approx(0.0)
    assert res.n["Cu-Cu"][first] == pytest.approx(8.0)
    assert res.n["Cu-Au"][first] == pytest.approx(4.0)
    assert res.n["total"][first] == pytest.approx(12.0)
    assert set(res.g) == {"total", "Au-Au", "Au-Cu", "Cu-Cu"}
