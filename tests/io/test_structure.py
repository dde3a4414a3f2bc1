"""load_structure: files through ase.io (extxyz, POSCAR, lammps-data, cif), lattice
builders, repeat/rattle, and StructureError messages naming key and file."""
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from mpi4py import MPI

from acemd.io.structure import StructureError, load_structure


def binary():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.symbols[[1, 5]] = "Ag"
    atoms.rattle(0.02, seed=1)
    return atoms


def same(a, b, atol=1e-6):
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_allclose(a.cell.array, b.cell.array, atol=atol)
    np.testing.assert_allclose(a.positions, b.positions, atol=atol)
    np.testing.assert_array_equal(a.pbc, b.pbc)


@pytest.mark.parametrize("fname,fmt", [("s.extxyz", None), ("POSCAR", "vasp"), ("s.cif", "cif"),
                                       ("s.xyz", "extxyz")])
def test_read_ase_formats(tmp_path, fname, fmt):
    atoms = binary()
    ase.io.write(tmp_path / fname, atoms, format=fmt or "extxyz")
    spec = {"file": fname}
    if fmt:
        spec["format"] = fmt
    got = load_structure(spec, tmp_path)
    atol = 1e-4 if fmt == "cif" else 1e-6
    if fmt == "cif":       # cif stores cell parameters: compare geometry, not orientation
        np.testing.assert_allclose(got.cell.cellpar(), atoms.cell.cellpar(), atol=atol)
        np.testing.assert_allclose(got.get_scaled_positions(), atoms.get_scaled_positions(), atol=atol)
        assert sorted(got.get_chemical_symbols()) == sorted(atoms.get_chemical_symbols())
    else:
        same(got, atoms, atol)


def test_lammps_data_round_trip_with_element_mapping(tmp_path):
    atoms = binary()
    ase.io.write(tmp_path / "data.lmp", atoms, format="lammps-data", specorder=["Cu", "Ag"],
                 atom_style="atomic", masses=True)
    spec = {"file": "data.lmp", "format": "lammps-data", "atom_style": "atomic",
            "elements": ["Cu", "Ag"]}
    got = load_structure(spec, tmp_path)
    same(got, atoms, 1e-5)
    # type order matters: swapping the mapping swaps the elements
    swapped = load_structure(dict(spec, elements=["Ag", "Cu"]), tmp_path)
    assert swapped.get_chemical_symbols() == [{"Cu": "Ag", "Ag": "Cu"}[s] for s in atoms.get_chemical_symbols()]
    with pytest.raises(StructureError, match=r"structure\.elements: required for LAMMPS data file .*data\.lmp"):
        load_structure({"file": "data.lmp", "format": "lammps-data"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.elements: .*data\.lmp has atom type 2 but"):
        load_structure(dict(spec, elements=["Cu"]), tmp_path)
    with pytest.raises(StructureError, match=r"structure\.elements: must be a list of element symbols"):
        load_structure(dict(spec, elements=["Cu", "Xx"]), tmp_path)
    with pytest.raises(StructureError, match=r"structure\.atom_style: only applies to format"):
        load_structure({"file": "data.lmp", "atom_style": "atomic", "format": "extxyz"}, tmp_path)


def test_index_selects_a_frame(tmp_path):
    frames = [bulk("Cu", "fcc", a=3.6 + 0.01 * k, cubic=True) for k in range(3)]
    ase.io.write(tmp_path / "traj.extxyz", frames)
    assert load_structure({"file": "traj.extxyz"}, tmp_path).cell[0, 0] == pytest.approx(3.62)
    assert load_structure({"file": "traj.extxyz", "index": 0}, tmp_path).cell[0, 0] == pytest.approx(3.60)
    with pytest.raises(StructureError, match=r"structure\.index: ':' selects 3 frames"):
        load_structure({"file": "traj.extxyz", "index": ":"}, tmp_path)


def test_file_with_repeat_rattle_and_absolute_path(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    ase.io.write(tmp_path / "unit.extxyz", atoms)
    spec = {"file": str(tmp_path / "unit.extxyz"), "repeat": [2, 2, 1], "cubic": True,
            "rattle": 0.0, "rattle_seed": 0}        # what the config layer passes by default
    got = load_structure(spec, "/nonexistent-base")
    assert len(got) == 16
    np.testing.assert_allclose(np.diag(got.cell.array), [7.2, 7.2, 3.6])


@pytest.mark.parametrize("lattice,n,extra", [("fcc", 4, {}), ("bcc", 2, {}), ("diamond", 8, {}),
                                             ("sc", 1, {}), ("hcp", 2, {"c": 4.7}),
                                             ("fcc", 1, {"cubic": False}),
                                             ("hcp", 4, {"orthorhombic": True})])
def test_lattice_builders(lattice, n, extra):
    spec = {"lattice": lattice, "element": "Cu", "a": 3.0, "repeat": [2, 3, 1], **extra}
    atoms = load_structure(spec, ".")
    assert len(atoms) == 6 * n
    assert set(atoms.get_chemical_symbols()) == {"Cu"}
    assert atoms.pbc.all() and atoms.get_volume() > 0
    if lattice in ("fcc", "bcc", "diamond", "sc") and extra.get("cubic", True):
        np.testing.assert_allclose(atoms.cell.array, np.diag([6.0, 9.0, 3.0]), atol=1e-12)
    if lattice == "hcp" and "c" in extra:
        assert atoms.cell[2, 2] == pytest.approx(4.7)


def test_hcp_default_c_is_ideal():
    atoms = load_structure({"lattice": "hcp", "element": "Ti", "a": 2.95}, ".")
    assert atoms.cell[2, 2] == pytest.approx(2.95 * np.sqrt(8 / 3))


def test_rattle_is_reproducible():
    spec = {"lattice": "fcc", "element": "Al", "a": 4.05, "repeat": 3, "rattle": 0.05, "seed": 11}
    ideal = load_structure(dict(spec, rattle=0.0), ".")
    a = load_structure(spec, ".")
    b = load_structure(spec, ".")
    c = load_structure(dict(spec, seed=12), ".")
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    d = a.positions - ideal.positions
    assert 0.03 < d.std() < 0.07
    # with a communicator: built once on rank 0 and broadcast
    e = load_structure(spec, ".", comm=MPI.COMM_SELF)
    np.testing.assert_array_equal(a.positions, e.positions)


def test_errors_name_key_and_file(tmp_path):
    with pytest.raises(StructureError, match=r"structure\.file: file not found: .*missing\.xyz"):
        load_structure({"file": "missing.xyz"}, tmp_path)
    (tmp_path / "junk.extxyz").write_text("this is\nnot a structure\n")
    with pytest.raises(StructureError, match=r"structure\.file: cannot read .*junk\.extxyz as extxyz"):
        load_structure({"file": "junk.extxyz", "format": "extxyz"}, tmp_path)
    (tmp_path / "mystery.qqq").write_text("1 2 3\n")
    with pytest.raises(StructureError, match=r"structure\.file: cannot read .*mystery\.qqq \(format guessed"):
        load_structure({"file": "mystery.qqq"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.format: unknown ASE format 'pdbx'"):
        load_structure({"file": "mystery.qqq", "format": "pdbx"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.lattice: unknown lattice 'fcx'; choose one of"):
        load_structure({"lattice": "fcx", "element": "Cu", "a": 3.6}, tmp_path)
    for rep in (0, [1, 2], [1, 0, 1], "222", [1.5, 1, 1], True):
        with pytest.raises(StructureError, match=r"structure\.repeat: must be three positive integers"):
            load_structure({"lattice": "fcc", "element": "Cu", "a": 3.6, "repeat": rep}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.element: 'Qq' is not a chemical element"):
        load_structure({"lattice": "fcc", "element": "Qq", "a": 3.6}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.a: required"):
        load_structure({"lattice": "fcc", "element": "Cu"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.a: must be a positive number"):
        load_structure({"lattice": "fcc", "element": "Cu", "a": -1.0}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.c: only applies to hcp"):
        load_structure({"lattice": "fcc", "element": "Cu", "a": 3.6, "c": 5.0}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.rattle: must be a non-negative number"):
        load_structure({"lattice": "fcc", "element": "Cu", "a": 3.6, "rattle": -0.1}, tmp_path)
    with pytest.raises(StructureError, match=r"structure: give either 'file'"):
        load_structure({"lattice": "fcc", "file": "x.xyz"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure: give either 'file'"):
        load_structure({}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.repeats: unknown key; allowed"):
        load_structure({"lattice": "fcc", "element": "Cu", "a": 3.6, "repeats": [2, 2, 2]}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.element: only applies to a lattice"):
        load_structure({"file": "x.xyz", "element": "Cu"}, tmp_path)
    with pytest.raises(StructureError, match=r"structure\.format: only applies to 'file'"):
        load_structure({"lattice": "fcc", "element": "Cu", "a": 3.6, "format": "vasp"}, tmp_path)


def test_zero_volume_periodic_cell(tmp_path):
    # a POSCAR whose second lattice vector repeats the first
    (tmp_path / "POSCAR").write_text(
        "flat\n1.0\n3.0 0.0 0.0\n3.0 0.0 0.0\n0.0 0.0 3.0\nCu\n1\nCartesian\n0.0 0.0 0.0\n")
    with pytest.raises(StructureError, match=r"structure: periodic along axes \[0, 1, 2\].*zero "
                                             r"length/volume.*POSCAR"):
        load_structure({"file": "POSCAR", "format": "vasp"}, tmp_path)
    # non-periodic molecules need no cell
    mol = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]])
    ase.io.write(tmp_path / "mol.xyz", mol, format="xyz")
    got = load_structure({"file": "mol.xyz"}, tmp_path)
    assert not got.pbc.any() and len(got) == 2
    with pytest.raises(StructureError, match=r"structure\.repeat: cannot repeat along a non-periodic"):
        load_structure({"file": "mol.xyz", "repeat": [2, 1, 1]}, tmp_path)
