"""The ACE kernel against ICAMS's C++ evaluator (shared reference data) and
against analytic properties: finite differences, strain derivatives, symmetry."""
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from acemd import ACECalculator
from acemd.potential import CloseContactError, UnknownElementError
from acemd.potential.calculator import NonFiniteInputError

DATA = Path(__file__).resolve().parents[1] / "data"
POTENTIALS = ["Cu-PBE-core-rep", "Cu-I", "Al-Ni_opt_all", "ternary_AlCuZn", "DFT10B-AgCu",
              "ZBL_rep", "synth_W_SBessel_ZBL", "synth_NbTa_distance"]
# (potential name, file) for every C-tilde file; the .ace is the published LAMMPS format
CTILDE_FILES = [(p, f"{p}.yace") for p in POTENTIALS] + [("Cu-PBE-core-rep", "Cu-PBE-core-rep.ace")]

TOL_E_PER_ATOM = 1e-8      # eV/atom
TOL_F = 1e-4               # eV/Å, regular structures
TOL_F_REL = 1e-6           # relative to max |F|, compressed structures
TOL_S = 1e-6               # eV/Å^3
TOL_EI = 1e-7              # eV


_calculators = {}


def calculator(filename):
    if filename not in _calculators:
        _calculators[filename] = ACECalculator(DATA / "potentials" / filename)
    return _calculators[filename]


def reference_frames(name):
    return ase.io.read(DATA / "references" / f"{name}.extxyz", ":")


@pytest.mark.parametrize("name,filename", CTILDE_FILES)
def test_matches_cpp_reference(name, filename):
    calc = calculator(filename)
    worst = dict(dE=0.0, dF=0.0, dFrel=0.0, dS=0.0, dEi=0.0)
    for ref in reference_frames(name):
        atoms = ref.copy()
        e_ref = ref.get_potential_energy()
        f_ref = ref.get_forces()
        ei_ref = ref.get_potential_energies()
        atoms.calc = calc
        n = len(atoms)
        dE = abs(atoms.get_potential_energy() - e_ref) / n
        dF = np.abs(atoms.get_forces() - f_ref).max()
        dEi = np.abs(atoms.get_potential_energies() - ei_ref).max()
        label = f"{name}/{ref.info['name']}"
        if ref.info["name"].startswith("compressed"):
            fmax = np.abs(f_ref).max()
            assert dE <= TOL_E_PER_ATOM * max(1.0, abs(e_ref) / n), label
            assert dF <= TOL_F_REL * fmax, label
            worst["dFrel"] = max(worst["dFrel"], dF / fmax)
        else:
            assert dE <= TOL_E_PER_ATOM, label
            assert dF <= TOL_F, label
            assert dEi <= TOL_EI, label
            worst["dE"] = max(worst["dE"], dE)
            worst["dF"] = max(worst["dF"], dF)
            worst["dEi"] = max(worst["dEi"], dEi)
        if ref.pbc.all():
            dS = np.abs(atoms.get_stress() - ref.get_stress()).max()
            s_scale = max(1.0, np.abs(ref.get_stress()).max()) if ref.info["name"].startswith("compressed") else 1.0
            assert dS <= TOL_S * s_scale, label
            worst["dS"] = max(worst["dS"], dS / s_scale)
    print(f"\n{filename}: worst |dE|/atom {worst['dE']:.1e} eV, |dF| {worst['dF']:.1e} eV/A, "
          f"compressed |dF|/max|F| {worst['dFrel']:.1e}, |dsigma| {worst['dS']:.1e} eV/A^3, "
          f"|de_i| {worst['dEi']:.1e} eV")


def _energy(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


FD_CASES = [("Cu-I", "bulk_rattled"), ("Cu-I", "triclinic"), ("Al-Ni_opt_all", "random_alloy"),
            ("synth_NbTa_distance", "compressed_transition"), ("synth_W_SBessel_ZBL", "compressed_transition"),
            ("ternary_AlCuZn", "slab"), ("Cu-PBE-core-rep", "triclinic"), ("DFT10B-AgCu", "cluster_nonperiodic")]


@pytest.mark.parametrize("name,structure", FD_CASES)
def test_forces_are_minus_energy_gradient(name, structure):
    calc = calculator(f"{name}.yace")
    atoms = next(a for a in reference_frames(name) if a.info["name"] == structure)
    atoms.calc = calc
    forces = atoms.get_forces()
    h = 1e-5
    rng = np.random.default_rng(7)
    worst = 0.0
    for i in rng.choice(len(atoms), size=min(4, len(atoms)), replace=False):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, a] += h
            minus.positions[i, a] -= h
            fd = -(_energy(plus, calc) - _energy(minus, calc)) / (2 * h)
            err = abs(fd - forces[i, a])
            worst = max(worst, err / max(1.0, abs(forces[i, a])))
    print(f"\n{name}/{structure}: worst FD force error (relative to max(1,|F|)) {worst:.1e}")
    assert worst < 1e-5


@pytest.mark.parametrize("name,structure", [("Cu-I", "triclinic"), ("Al-Ni_opt_all", "random_alloy"),
                                            ("synth_W_SBessel_ZBL", "bulk_rattled"),
                                            ("synth_NbTa_distance", "triclinic")])
def test_stress_is_strain_derivative(name, structure):
    calc = calculator(f"{name}.yace")
    atoms = next(a for a in reference_frames(name) if a.info["name"] == structure)
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    volume = atoms.get_volume()
    h = 1e-6
    worst = 0.0
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / (1 if a == b else 2)
            energies = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
                energies.append(_energy(strained, calc))
            fd = (energies[0] - energies[1]) / (2 * h) / volume
            worst = max(worst, abs(fd - stress[a, b]))
    print(f"\n{name}/{structure}: worst FD stress error {worst:.1e} eV/A^3")
    assert worst < 1e-6 * max(1.0, np.abs(stress).max())


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("name", ["Cu-PBE-core-rep", "ternary_AlCuZn", "synth_NbTa_distance"])
def test_invariances(name):
    calc = calculator(f"{name}.yace")
    atoms = next(a for a in reference_frames(name) if a.info["name"] in ("bulk_rattled", "random_alloy"))
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    f0 = atoms.get_forces()
    ei0 = atoms.get_potential_energies()
    rng = np.random.default_rng(3)
    tol = 1e-10 * len(atoms) * max(1.0, abs(e0) / len(atoms))

    # rotation of positions and cell together: energy invariant, forces rotate
    rot = _random_rotation(rng)
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rot.T
    assert abs(_energy(rotated, calc) - e0) < tol
    rotated.calc = calc
    np.testing.assert_allclose(rotated.get_forces(), f0 @ rot.T, atol=1e-8)

    # translation and choice of periodic image (atoms moved by lattice vectors)
    moved = atoms.copy()
    moved.positions += rng.normal(size=3)
    shifts = rng.integers(-2, 3, size=(len(atoms), 3))
    moved.positions += shifts @ atoms.cell.array
    moved.calc = calc
    assert abs(moved.get_potential_energy() - e0) < tol
    np.testing.assert_allclose(moved.get_forces(), f0, atol=1e-8)

    # permutation of atoms (like atoms swap labels): per-atom energies follow
    perm = rng.permutation(len(atoms))
    permuted = atoms[perm]
    permuted.calc = calc
    assert abs(permuted.get_potential_energy() - e0) < tol
    np.testing.assert_allclose(permuted.get_potential_energies(), ei0[perm], atol=1e-10)
    np.testing.assert_allclose(permuted.get_forces(), f0[perm], atol=1e-8)

    # supercell: the same crystal described by a 2x1x1 cell has twice the energy
    double = atoms.repeat((2, 1, 1))
    assert abs(_energy(double, calc) - 2 * e0) < 2 * tol


def test_small_cell_equals_supercell():
    """A 1-atom cell (many images of one atom) equals the same crystal in a big cell."""
    calc = calculator("Cu-PBE-core-rep.yace")
    prim = bulk("Cu", "fcc", a=3.6)
    prim.set_cell(prim.cell.array @ np.array([[1.01, 0.02, 0], [0, 0.99, 0.01], [0, 0, 1.0]]),
                  scale_atoms=True)
    e1 = _energy(prim, calc)
    big = prim.repeat((3, 4, 5))
    assert abs(_energy(big, calc) / len(big) - e1) < 1e-11
    prim.calc = calc
    np.testing.assert_allclose(prim.get_forces(), 0.0, atol=1e-10)


def test_isolated_atom_has_E0():
    calc = calculator("synth_NbTa_distance.yace")
    atoms = bulk("Nb", "bcc", a=3.3, cubic=True)
    atoms.center(vacuum=10.0)
    atoms.pbc = False
    single = atoms[:1]
    assert _energy(single, calc) == pytest.approx(-1.1, abs=1e-14)


def test_unknown_element_is_a_clear_error():
    calc = calculator("Cu-I.yace")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms[1].symbol = "Fe"
    atoms.calc = calc
    with pytest.raises(UnknownElementError, match=r"'Fe'.*Cu-I\.yace"):
        atoms.get_potential_energy()


def test_nan_position_is_a_clear_error():
    calc = calculator("Cu-I.yace")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[2, 1] = np.nan
    atoms.calc = calc
    with pytest.raises(NonFiniteInputError, match="atom 2"):
        atoms.get_potential_energy()


def test_overlapping_atoms_are_a_clear_error():
    calc = calculator("Cu-I.yace")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [1e-4, 0, 0]
    atoms.calc = calc
    with pytest.raises(CloseContactError, match="atoms 0 and 1"):
        atoms.get_potential_energy()


YAML_POTENTIALS = ["Cu-I", "Al-Ni_opt_all", "ternary_AlCuZn", "DFT10B-AgCu", "ZBL_rep",
                   "synth_W_SBessel_ZBL", "synth_NbTa_distance"]


@pytest.mark.parametrize("name", YAML_POTENTIALS)
def test_bbasis_yaml_matches_cpp_reference(name):
    """A pacemaker .yaml evaluates like its .yace (a B-basis file carries no E0: the
    references of the synthetic potentials include E0, so it is added back)."""
    calc = calculator(f"{name}.yaml")
    e0 = {el: float(v) for el, v in zip(calculator(f"{name}.yace").potential.elements,
                                        calculator(f"{name}.yace").potential.model.E0)}
    worst_e = worst_f = 0.0
    for ref in reference_frames(name):
        atoms = ref.copy()
        atoms.calc = calc
        n = len(atoms)
        e_shift = sum(e0[s] for s in atoms.get_chemical_symbols())
        dE = abs(atoms.get_potential_energy() + e_shift - ref.get_potential_energy()) / n
        dF = np.abs(atoms.get_forces() - ref.get_forces()).max()
        scale = max(1.0, np.abs(ref.get_forces()).max()) if ref.info["name"].startswith("compressed") else 1.0
        assert dE <= TOL_E_PER_ATOM * max(1.0, abs(ref.get_potential_energy()) / n)
        assert dF <= (TOL_F_REL if scale > 1 else TOL_F) * scale
        if ref.pbc.all():
            assert np.abs(atoms.get_stress() - ref.get_stress()).max() <= TOL_S * scale
        worst_e, worst_f = max(worst_e, dE), max(worst_f, dF / scale)
    print(f"\n{name}.yaml: worst |dE|/atom {worst_e:.1e} eV, worst |dF| {worst_f:.1e} eV/A")


def test_acemd_convert_gives_same_numbers(tmp_path):
    from acemd.cli import main
    out = tmp_path / "NbTa.yace"
    assert main(["convert", str(DATA / "potentials" / "synth_NbTa_distance.yaml"), str(out)]) == 0
    converted = ACECalculator(out)
    original = calculator("synth_NbTa_distance.yaml")
    for ref in reference_frames("synth_NbTa_distance")[:4]:
        a, b = ref.copy(), ref.copy()
        a.calc, b.calc = converted, original
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-12)
