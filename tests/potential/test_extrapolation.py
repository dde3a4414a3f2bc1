"""Extrapolation grade from pacemaker active sets, against pyace's B-basis evaluator.

References (tests/data/gamma, see /work/shared/reference/ace/README.md "Extrapolation
grade"): per-atom B-basis projections (``*_projections.npz``), their order
(``*_projection_order.json``) and per-atom gamma (``*_gamma.extxyz``), computed with
``PyACECalculator(yaml).set_active_set(asi)``.  The active sets are extremely
ill-conditioned, so gamma is compared with rtol 1e-4.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from acemd import ACECalculator
from acemd.neighbors import build_neighbor_list, periodic_images
from acemd.potential import ACEPotential, load_potential
from acemd.potential.extrapolation import (ActiveSetError, ExtrapolationGrade, projection_order,
                                           read_active_set)

DATA = Path(__file__).resolve().parents[1] / "data"
POT = DATA / "potentials"
GAMMA = DATA / "gamma"
POTENTIALS = ["Cu-I", "DFT10B-AgCu"]


def _frames(name):
    return read(GAMMA / f"{name}_gamma.extxyz", ":")


@pytest.mark.parametrize("name", POTENTIALS)
def test_projection_order_matches_pyace(name):
    ref = json.loads((GAMMA / f"{name}_projection_order.json").read_text())
    assert projection_order(load_potential(POT / f"{name}.yaml")) == ref


@pytest.mark.parametrize("name", POTENTIALS)
def test_projections_match_pyace(name):
    pot = ACEPotential(POT / f"{name}.yaml")
    eg = ExtrapolationGrade(pot)
    ref = np.load(GAMMA / f"{name}_projections.npz")
    worst, where, checked = 0.0, "", 0
    for atoms in _frames(name):
        n = len(atoms)
        ext, owner, _ = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
        offsets, neighbors = build_neighbor_list(ext, n, pot.cutoff)
        species = pot.species_of(atoms.get_chemical_symbols())
        proj = eg.projections(ext, species[owner], n, offsets, neighbors)
        for i in range(n):
            b_ref = ref[f"{atoms.info['name']}/atom{i:04d}"]
            nf = int(eg.ptables.nfuncs[species[i]])
            assert len(b_ref) == nf
            assert np.all(proj[i, nf:] == 0.0)
            scale = np.maximum(np.abs(b_ref), 1e-8 * np.abs(b_ref).max())
            dev = np.max(np.abs(proj[i, :nf] - b_ref) / scale)
            if dev > worst:
                worst, where = dev, f"{atoms.info['name']}/atom{i:04d}"
            checked += 1
    assert checked == len(ref.files)
    print(f"\n{name}: worst relative projection deviation {worst:.2e} ({where}), {checked} atoms")
    assert worst < 1e-9


@pytest.mark.parametrize("name", POTENTIALS)
def test_gamma_calculator_matches_pyace(name):
    calc = ACECalculator(POT / f"{name}.yaml", active_set=POT / f"{name}.asi")
    worst, where = 0.0, ""
    for atoms in _frames(name):
        g_ref = atoms.arrays["gamma"]
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        gamma = calc.results["gamma"]
        assert gamma.shape == (len(atoms),)
        rel = np.abs(gamma - g_ref) / np.abs(g_ref)
        if rel.max() > worst:
            worst, where = rel.max(), f"{atoms.info['name']} atom {int(rel.argmax())}"
        assert calc.results["max_gamma"] == pytest.approx(atoms_max := gamma.max())
        assert atoms_max == pytest.approx(g_ref.max(), rel=1e-4)
    print(f"\n{name}: worst relative gamma deviation {worst:.2e} ({where})")
    assert worst < 1e-4


def test_energy_unchanged_by_active_set():
    atoms = _frames("DFT10B-AgCu")[2]
    plain = atoms.copy()
    plain.calc = ACECalculator(POT / "DFT10B-AgCu.yaml")
    withas = atoms.copy()
    withas.calc = ACECalculator(POT / "DFT10B-AgCu.yaml", active_set=POT / "DFT10B-AgCu.asi")
    assert withas.get_potential_energy() == plain.get_potential_energy()
    np.testing.assert_array_equal(withas.get_forces(), plain.get_forces())
    assert "gamma" not in plain.calc.results


def test_read_active_set_shapes():
    pot = load_potential(POT / "DFT10B-AgCu.yaml")
    mats = read_active_set(POT / "DFT10B-AgCu.asi", pot)
    assert sorted(mats) == ["Ag", "Cu"]
    assert all(m.shape == (60, 60) and m.dtype == np.float64 for m in mats.values())


def test_mismatched_active_set():
    with pytest.raises(ActiveSetError, match=r"Cu-I\.asi.*no matrix for element\(s\) Ag"):
        ACECalculator(POT / "DFT10B-AgCu.yaml", active_set=POT / "Cu-I.asi")
    with pytest.raises(ActiveSetError, match=r"DFT10B-AgCu\.asi.*Ag not in the potential"):
        ACECalculator(POT / "Cu-I.yaml", active_set=POT / "DFT10B-AgCu.asi")


def test_wrong_matrix_size(tmp_path):
    pot = load_potential(POT / "DFT10B-AgCu.yaml")
    with np.load(POT / "DFT10B-AgCu.asi") as z:
        mats = {k: z[k] for k in z.files}
    mats["Cu"] = mats["Cu"][:59, :59]
    bad = tmp_path / "bad.asi"
    with open(bad, "wb") as fh:
        np.savez(fh, **mats)
    with pytest.raises(ActiveSetError, match=r"bad\.asi.*Cu is 59 x 59.*expected 60 \(linear\) or 120"):
        read_active_set(bad, pot)
    mats["Cu"] = np.zeros((60, 61))
    with open(bad, "wb") as fh:
        np.savez(fh, **mats)
    with pytest.raises(ActiveSetError, match="expected square"):
        read_active_set(bad, pot)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ActiveSetError, match=r"nothere\.asi: file not found"):
        ACECalculator(POT / "Cu-I.yaml", active_set=tmp_path / "nothere.asi")
    text = tmp_path / "text.asi"
    text.write_text("not an npz\n")
    with pytest.raises(ActiveSetError, match=r"text\.asi.*npz"):
        ACECalculator(POT / "Cu-I.yaml", active_set=text)
    single = tmp_path / "single.asi"
    with open(single, "wb") as fh:
        np.save(fh, np.eye(82))
    with pytest.raises(ActiveSetError, match=r"single\.asi.*not an \.npz"):
        ACECalculator(POT / "Cu-I.yaml", active_set=single)


def test_ctilde_potential_rejected():
    with pytest.raises(ActiveSetError, match=r"Cu-I\.yace.*no B-basis.*\.yaml"):
        ACECalculator(POT / "Cu-I.yace", active_set=POT / "Cu-I.asi")


def test_full_active_set_uses_dE_dc(tmp_path):
    """A matrix of size n*ndensity selects the "full" grade b = dF/drho_p * projections."""
    pot = ACEPotential(POT / "Cu-I.yaml")
    rng = np.random.default_rng(7)
    inv = rng.normal(size=(164, 164))
    path = tmp_path / "full.asi"
    with open(path, "wb") as fh:
        np.savez(fh, Cu=inv)
    eg = ExtrapolationGrade(pot, path)
    assert eg.kind == "full"
    atoms = _frames("Cu-I")[3]
    n = len(atoms)
    ext, owner, _ = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
    offsets, neighbors = build_neighbor_list(ext, n, pot.cutoff)
    species = pot.species_of(atoms.get_chemical_symbols())
    proj = eg.projections(ext, species[owner], n, offsets, neighbors)
    gamma = eg.gamma(proj, species)
    # dF/drho by finite differences of the site energy w.r.t. rho (FinnisSinclairShiftedScaled)
    emb = pot.model.embeddings[0]
    w = np.reshape(emb.fs_parameters, (emb.ndensity, 2))
    rho = proj @ eg.ptables.coeffs[0]
    from acemd.potential.kernel import _embedding
    kind = 0 if emb.npoti == "FinnisSinclair" else 1
    h = 1e-6
    dF = np.array([[w[p, 0] * (_embedding(kind, r[p] + h, w[p, 1])[0]
                               - _embedding(kind, r[p] - h, w[p, 1])[0]) / (2 * h)
                    for p in range(emb.ndensity)] for r in rho])
    b = (dF[:, :, None] * proj[:, None, :]).reshape(n, -1)
    np.testing.assert_allclose(gamma, np.abs(b @ inv).max(axis=1), rtol=1e-6)
