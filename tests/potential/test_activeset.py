"""Building active sets (``acemd activeset``): MaxVol, the .asi file, gamma of training and new structures.

Training sets are generated here: rattled and strained fcc/bcc/sc/hcp cells
(random alloys for two elements), written to extxyz.  The ACE projections are
nearly dependent (the radial basis on the distances that occur), so the
active sets are ill-conditioned; gamma is therefore compared with pyace only
on potentials whose active sets are well conditioned (SBessel radial basis).
"""
from __future__ import annotations

import itertools
from pathlib import Path
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from acemd import ACECalculator
from acemd.cli import main
from acemd.potential import load_potential
from acemd.potential.activeset import (DEFAULT_TOLERANCE, TrainingSetError, build_active_set,
                                       write_active_set)
from acemd.potential.extrapolation import ActiveSetError, ExtrapolationGrade, read_active_set
from acemd.potential.maxvol import coefficients, log_volume, maxvol

POT = Path(__file__).resolve().parents[1] / "data" / "potentials"
TOL = DEFAULT_TOLERANCE
LATTICE = {"Cu-I": 3.62, "DFT10B-AgCu": 3.85, "synth_W_SBessel_ZBL": 3.9, "ternary_AlCuZn": 3.8}
ELEMENTS = {"Cu-I": ["Cu"], "DFT10B-AgCu": ["Ag", "Cu"], "synth_W_SBessel_ZBL": ["W"],
            "ternary_AlCuZn": ["Al", "Cu", "Zn"]}


def structures(elements, n, seed, a0, rattle=0.3, strain=0.04):
    """n rattled, strained cells cycling through fcc, bcc, sc, hcp; random species from ``elements``."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = ["fcc", "bcc", "sc", "hcp"][k % 4]
        a = a0 * {"fcc": 1.0, "bcc": 0.8, "sc": 0.66, "hcp": 0.707}[kind] * rng.uniform(0.9, 1.1)
        atoms = bulk("X", kind, a=a, cubic=kind != "hcp")
        atoms = atoms.repeat({"fcc": 2, "bcc": 3, "sc": 3, "hcp": (3, 3, 2)}[kind])
        eps = rng.uniform(-strain, strain, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.set_chemical_symbols(rng.choice(elements, len(atoms)))
        out.append(atoms)
    return out


def distorted(name, seed=11):
    """A cell compressed by 25 % and rattled by 0.4 Å: far outside any training set here."""
    atoms = structures(ELEMENTS[name], 1, seed, LATTICE[name], rattle=0.4)[0]
    atoms.set_cell(atoms.cell.array * 0.75, scale_atoms=True)
    return atoms


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """{potential: [two training files]} (40 structures, ~1500 atoms each potential)."""
    folder = tmp_path_factory.mktemp("training")
    files = {}
    for seed, name in enumerate(["Cu-I", "DFT10B-AgCu", "synth_W_SBessel_ZBL", "ternary_AlCuZn"]):
        frames = structures(ELEMENTS[name], 40, seed, LATTICE[name])
        files[name] = [folder / f"{name}_a.extxyz", folder / f"{name}_b.xyz"]
        write(files[name][0], frames[:25])
        write(files[name][1], frames[25:], format="extxyz")
    return files


@pytest.fixture(scope="module")
def built(training, tmp_path_factory):
    """Linear active sets of Cu-I and DFT10B-AgCu: {name: (result, .asi path, seconds)}."""
    folder = tmp_path_factory.mktemp("asi")
    out = {}
    for name in ["Cu-I", "DFT10B-AgCu"]:
        t0 = time.perf_counter()
        result = build_active_set(POT / f"{name}.yaml", training[name])
        path = write_active_set(folder / f"{name}.asi", result.matrices)
        out[name] = (result, path, time.perf_counter() - t0)
    return out


def training_gamma(name, files, asi):
    calc = ACECalculator(POT / f"{name}.yaml", active_set=asi)
    gammas = []
    for path in files:
        for atoms in read(path, ":"):
            atoms.calc = calc
            atoms.get_potential_energy()
            gammas.append(calc.results["gamma"])
    return np.concatenate(gammas)


# ---------------------------------------------------------------------------
# MaxVol
# ---------------------------------------------------------------------------

def test_maxvol_bound_and_local_maximum():
    """Every row's coefficients are <= 1 + tol, and no single swap raises |det| by more than 1 + tol."""
    rng = np.random.default_rng(3)
    m, n = 16, 4
    matrix = rng.normal(size=(m, n)) * np.logspace(0, 4, n)      # columns of very different scale
    rows, swaps, largest = maxvol(matrix, TOL, rows=np.arange(n))   # a poor start: forces swaps
    assert swaps > 0 and len(set(rows.tolist())) == n
    coef = matrix @ np.linalg.inv(matrix[rows])
    assert np.abs(coef).max() <= 1 + TOL
    assert largest == pytest.approx(np.abs(coef).max(), rel=1e-12)
    best = log_volume(matrix, rows)
    for pos, new in itertools.product(range(n), range(m)):
        trial = rows.copy()
        trial[pos] = new
        assert log_volume(matrix, trial) <= best + np.log(1 + TOL) + 1e-12
    # a dominant submatrix has at least 1 / ((1 + tol) sqrt(n))^n of the largest |det| (Hadamard)
    top = max(log_volume(matrix, list(c)) for c in itertools.combinations(range(m), n))
    print(f"\nMaxVol: {swaps} swaps, |det| / max over all subsets = {np.exp(best - top):.3f}")
    assert best >= top - n * np.log((1 + TOL) * np.sqrt(n))


def test_maxvol_coefficients_are_unit_rows_on_the_selection():
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(30, 6))
    rows, _, _ = maxvol(matrix, TOL)
    coef = coefficients(matrix, rows)
    np.testing.assert_array_equal(coef[rows], np.eye(6))
    np.testing.assert_allclose(coef @ matrix[rows], matrix, atol=1e-12)


# ---------------------------------------------------------------------------
# active sets from training sets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Cu-I", "DFT10B-AgCu"])
def test_training_atoms_interpolate(name, training, built):
    """gamma <= 1 + tolerance for every training atom, through ACECalculator and the written .asi."""
    result, path, seconds = built[name]
    gamma = training_gamma(name, training[name], path)
    natoms = sum(len(a) for f in training[name] for a in read(f, ":"))
    assert len(gamma) == natoms == sum(e.atoms for e in result.elements)
    print(f"\n{name}: {natoms} training atoms, max training gamma {gamma.max():.6f} "
          f"(bound {1 + TOL}), build {seconds:.1f} s; "
          + ", ".join(f"{e.element}: {e.size} functions, {e.swaps} swaps, cond {e.condition:.1e}"
                      for e in result.elements))
    assert gamma.max() <= 1 + TOL
    # the active atoms are training atoms with gamma 1 (up to round-off of the ill-conditioned A^-1)
    assert np.sum(np.abs(gamma - 1) < 1e-3) >= sum(e.size for e in result.elements)
    assert max(e.max_gamma for e in result.elements) == pytest.approx(gamma.max(), rel=1e-9)
    assert result.kind == "linear" and result.structures == 40 and result.warnings == []


@pytest.mark.parametrize("name", ["Cu-I", "DFT10B-AgCu"])
def test_distorted_structure_extrapolates(name, built):
    _, path, _ = built[name]
    atoms = distorted(name)
    atoms.calc = ACECalculator(POT / f"{name}.yaml", active_set=path)
    atoms.get_potential_energy()
    max_gamma = atoms.calc.results["max_gamma"]
    print(f"\n{name}: 25 % compressed, 0.4 Å rattled cell: max gamma {max_gamma:.3g}")
    assert max_gamma > 5


def test_asi_round_trip(built):
    result, path, _ = built["DFT10B-AgCu"]
    pot = load_potential(POT / "DFT10B-AgCu.yaml")
    mats = read_active_set(path, pot)
    assert list(mats) == ["Ag", "Cu"]
    for el, m in mats.items():
        assert m.shape == (60, 60) and m.dtype == np.float64
        np.testing.assert_array_equal(m, result.matrices[el])
    with np.load(path) as z:                       # a plain npz, as pacemaker writes it
        assert sorted(z.files) == ["Ag", "Cu"]
    assert not list(path.parent.glob(f".{path.name}*"))      # no temporary file left


def test_batches_reach_the_same_bound(training, tmp_path):
    """Small batches: several batches and passes, and still gamma <= 1 + tol on every training atom."""
    result = build_active_set(POT / "DFT10B-AgCu.yaml", training["DFT10B-AgCu"], batch_atoms=400)
    path = write_active_set(tmp_path / "batched.asi", result.matrices)
    gamma = training_gamma("DFT10B-AgCu", training["DFT10B-AgCu"], path)
    print(f"\nDFT10B-AgCu in {result.batches} batches, {result.passes} passes: "
          f"max training gamma {gamma.max():.6f}")
    assert result.batches >= 3 and result.passes >= 2
    assert gamma.max() <= 1 + TOL


def test_full_active_set(training, tmp_path):
    """--full: matrices of n x ndensity on dE/dc, read back as "full"."""
    name = "synth_W_SBessel_ZBL"
    result = build_active_set(POT / f"{name}.yaml", training[name], full=True)
    path = write_active_set(tmp_path / "full.asi", result.matrices)
    assert result.kind == "full" and result.matrices["W"].shape == (116, 116)
    pot = ACECalculator(POT / f"{name}.yaml").potential
    assert ExtrapolationGrade(pot, path).kind == "full"
    gamma = training_gamma(name, training[name], path)
    print(f"\n{name} full: max training gamma {gamma.max():.6f}")
    assert 1 - 1e-3 <= gamma.max() <= 1 + TOL


def test_cli_end_to_end(training, tmp_path, capsys):
    out = tmp_path / "cu.asi"
    rc = main(["activeset", str(POT / "Cu-I.yaml"), *map(str, training["Cu-I"]), "-o", str(out),
               "--tolerance", "0.005", "--batch-atoms", "800"])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"wrote {out}" in text and "linear active set: Cu 82x82" in text
    assert "40 structures processed" in text
    line = next(s for s in text.splitlines() if s.startswith("Cu: "))
    natoms = sum(len(a) for f in training["Cu-I"] for a in read(f, ":"))
    assert f"{natoms} atoms, 82 B-functions" in line
    max_c = float(line.split("max |c| (training gamma) ")[1].split(",")[0])
    gamma = training_gamma("Cu-I", training["Cu-I"], out)
    assert max_c == pytest.approx(gamma.max(), abs=1e-6) and gamma.max() <= 1.005


def test_cli_errors(training, tmp_path, capsys):
    pot = str(POT / "Cu-I.yaml")
    assert main(["activeset", pot, str(tmp_path / "nothere.extxyz"), "-o", str(tmp_path / "x.asi")]) == 1
    assert "training file" in capsys.readouterr().err
    assert main(["activeset", pot, str(training["Cu-I"][0]), "-o", str(tmp_path / "x.asi"),
                 "--tolerance", "0.05"]) == 1
    assert "must be in (0, 0.01]" in capsys.readouterr().err
    assert main(["activeset", pot, str(training["Cu-I"][0]), "-o", str(tmp_path / "no" / "x.asi")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.asi").exists()


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_training_file_errors(tmp_path):
    pot = POT / "Cu-I.yaml"
    with pytest.raises(TrainingSetError, match=r"training file .*nothere\.extxyz: not found"):
        build_active_set(pot, [tmp_path / "nothere.extxyz"])
    junk = tmp_path / "junk.extxyz"
    junk.write_text("this is not\nan extxyz file\n")
    with pytest.raises(TrainingSetError, match=r"junk\.extxyz: ASE cannot read it.*--format"):
        build_active_set(pot, [junk])
    with pytest.raises(TrainingSetError, match=r"is a directory"):
        build_active_set(pot, [tmp_path])


def test_element_not_in_potential(tmp_path):
    path = tmp_path / "agcu.extxyz"
    write(path, structures(["Cu"], 3, 0, 3.62) + structures(["Ag", "Cu"], 1, 1, 3.85))
    with pytest.raises(TrainingSetError, match=r"agcu\.extxyz, structure 3: element\(s\) Ag not in the "
                                               r"potential .*Cu-I\.yaml"):
        build_active_set(POT / "Cu-I.yaml", [path])


def test_too_few_atoms(tmp_path):
    small = tmp_path / "small.extxyz"
    write(small, structures(["Cu"], 1, 0, 3.62))                 # one 32-atom fcc cell
    with pytest.raises(TrainingSetError, match=r"element Cu: 32 atoms in the training set, but its active "
                                               r"set needs at least 82 .* at least 50 more Cu atoms"):
        build_active_set(POT / "Cu-I.yaml", [small])
    cu_only = tmp_path / "cu.extxyz"
    write(cu_only, structures(["Cu"], 10, 0, 3.7))
    with pytest.raises(TrainingSetError, match=r"element Ag: 0 atoms .* at least 60"):
        build_active_set(POT / "DFT10B-AgCu.yaml", [cu_only])


def test_functions_zero_on_the_training_set(tmp_path):
    """Pure Ag and pure Cu cells: the Ag-Cu functions vanish on every atom."""
    path = tmp_path / "separate.extxyz"
    write(path, structures(["Ag"], 8, 0, 4.09) + structures(["Cu"], 8, 1, 3.62))
    with pytest.raises(TrainingSetError, match=r"element Ag: \d+ of its 60 B-functions are zero for "
                                               r"every training atom \(functions Ag-Ag-Cu \(rank 2\), Ag-Cu \(rank 1\)"):
        build_active_set(POT / "DFT10B-AgCu.yaml", [path])


def test_degenerate_projections(tmp_path):
    perfect = tmp_path / "perfect.extxyz"
    write(perfect, [bulk("Cu", "fcc", a=3.62, cubic=True).repeat(3)] * 3)
    with pytest.raises(TrainingSetError, match=r"element Cu: its 324 training atoms have only 1 distinct "
                                               r"environments .* singular"):
        build_active_set(POT / "Cu-I.yaml", [perfect])
    barely = tmp_path / "barely.extxyz"        # fcc rattled by 1e-4 Å: round-off gamma ~10 (1e-3 Å sits at ~2, the threshold)
    rng = np.random.default_rng(0)
    cells = [bulk("Cu", "fcc", a=3.62, cubic=True).repeat(3) for _ in range(4)]
    for atoms in cells:
        atoms.positions += rng.normal(scale=1e-4, size=atoms.positions.shape)
    write(barely, cells)
    with pytest.raises(TrainingSetError, match=r"element Cu: its training projections are numerically "
                                               r"degenerate .* gamma up to"):
        build_active_set(POT / "Cu-I.yaml", [barely])


def test_potential_errors(training):
    with pytest.raises(ActiveSetError, match=r"Cu-I\.yace: a C-tilde file .* B-basis \.yaml"):
        build_active_set(POT / "Cu-I.yace", training["Cu-I"])
    with pytest.raises(ActiveSetError, match=r"element\(s\) Cu, Zn have ndensity 1.*without --full"):
        build_active_set(POT / "ternary_AlCuZn.yaml", training["ternary_AlCuZn"], full=True)
    with pytest.raises(ActiveSetError, match=r"tolerance 0: must be in \(0, 0.01\]"):
        build_active_set(POT / "Cu-I.yaml", training["Cu-I"], tolerance=0)


# ---------------------------------------------------------------------------
# pyace reads our .asi and gives the same gamma
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,full", [("synth_W_SBessel_ZBL", False), ("synth_W_SBessel_ZBL", True),
                                       ("ternary_AlCuZn", False)])
def test_pyace_reads_our_active_set(name, full, training, tmp_path):
    pyace = pytest.importorskip("pyace")
    result = build_active_set(POT / f"{name}.yaml", training[name], full=full)
    path = write_active_set(tmp_path / f"{name}.asi", result.matrices)
    ref = pyace.PyACECalculator(str(POT / f"{name}.yaml"))
    ref.set_active_set(str(path))
    ours = ACECalculator(POT / f"{name}.yaml", active_set=path)
    tests = [read(training[name][1], "0"), distorted(name),
             structures(ELEMENTS[name], 1, 21, LATTICE[name], rattle=0.45)[0]]
    worst, gmax = 0.0, []
    for atoms in tests:
        a = atoms.copy()
        a.calc = ref
        a.get_potential_energy()
        b = atoms.copy()
        b.calc = ours
        b.get_potential_energy()
        g_ref, g = np.asarray(ref.results["gamma"]), ours.results["gamma"]
        worst = max(worst, np.max(np.abs(g - g_ref) / g_ref))
        gmax.append(f"{g.max():.3g}")
    print(f"\n{name} {'full' if full else 'linear'}: gamma from our .asi, acemd vs pyace: worst relative "
          f"deviation {worst:.1e} (max gamma of the 3 structures {', '.join(gmax)}; "
          f"active-set condition number {max(e.condition for e in result.elements):.1e})")
    assert worst < 1e-6
