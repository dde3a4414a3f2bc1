"""acemd.fit.dataset: pacemaker pickles, ASE formats, validation, reference energies, split."""
import gzip
import importlib
import importlib.util
import pickle
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from acemd.fit.dataset import (DatasetError, Structure, apply_reference_energies, load_structures,
                               read_pickled_dataframe, reference_energies, split_train_test)

DATA = Path(__file__).resolve().parents[1] / "data" / "fit"
EV_PER_A3_IN_GPA = 1.602176634e-19 / 1e-30 / 1e9   # CODATA e; 1 eV/Å³ = 160.2176634 GPa


# ---------------------------------------------------------------------------
# acemd's EMT datasets in pacemaker's layout (scripts/make_fit_testdata.py)
# ---------------------------------------------------------------------------

CU, ALLOYS, MOLECULES = "Cu_emt.pckl.gzip", "CuNiAl_emt.pckl.gzip", "C2H6O_emt_pandas1.pckl.gzip"
EXAMPLES = [  # file, elements, structures, atoms, target column, has 'energy'
    (ALLOYS, ["Al", "Cu", "Ni"], 55, 194, "energy_corrected", True),
    (CU, ["Cu"], 42, 330, "energy_corrected", False),
    (MOLECULES, ["C", "H", "O"], 24, 216, "energy_corrected", True),
]


@pytest.mark.parametrize("fname,elements,n_struct,n_atoms,target,has_raw", EXAMPLES)
def test_example_pickles_load_without_pyace(fname, elements, n_struct, n_atoms, target, has_raw, monkeypatch):
    for module in ("pyace", "tensorpotential"):     # the point: as if pacemaker were not installed
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError):
        importlib.import_module("pyace")
    path = DATA / fname
    structures = load_structures(path, elements)
    df = read_pickled_dataframe(path)
    assert type(df) is pd.DataFrame
    assert len(structures) == n_struct == len(df)
    assert sum(s.natoms for s in structures) == n_atoms == sum(map(len, df["ase_atoms"]))
    for s, (label, row) in zip(structures, df.iterrows()):
        assert s.source == f"{path} row {label!r}"
        assert s.energy == float(row[target])
        assert s.raw_energy == (float(row["energy"]) if has_raw else None)
        np.testing.assert_array_equal(s.forces, np.asarray(row["forces"], dtype=float))
        assert s.forces.shape == (s.natoms, 3)
        assert s.atoms.calc is None
        if "stress" in df.columns and row["stress"] is not None:
            np.testing.assert_array_equal(s.stress, row["stress"])
            assert s.atoms.pbc.all()
        else:
            assert s.stress is None
        if "w_energy" in df.columns:
            assert s.energy_weight == row["w_energy"] > 0
            np.testing.assert_array_equal(s.force_weights, row["w_forces"])
        else:
            assert s.energy_weight is None and s.force_weights is None
        np.testing.assert_array_equal(s.atoms.positions, row["ase_atoms"].positions)
        np.testing.assert_array_equal(s.atoms.cell.array, row["ase_atoms"].cell.array)
        if "name" in df.columns:
            assert s.name == row["name"]
        else:
            assert s.name == f"{fname.split('.')[0]}:{label}"
    assert {sym for s in structures for sym in s.atoms.get_chemical_symbols()} == set(elements)


def _emt_free_atoms(elements):
    from ase.calculators.emt import EMT

    out = {}
    for el in elements:
        atom = Atoms(el)
        atom.calc = EMT()
        out[el] = atom.get_potential_energy()
    return out


@pytest.mark.parametrize("fname,elements", [(f, e) for f, e, *_ in EXAMPLES])
def test_example_labels_are_emts(fname, elements):
    """What the README says: EMT energies, forces and stresses; energy_corrected = E - sum of
    EMT's free-atom energies; a stress exactly for the structures periodic in 3D."""
    from ase.calculators.emt import EMT

    e_free = _emt_free_atoms(elements)
    worst = 0.0
    for s in load_structures(DATA / fname, elements):
        atoms = s.atoms.copy()
        atoms.calc = EMT()
        energy = atoms.get_potential_energy()
        shift = sum(e_free[x] for x in atoms.get_chemical_symbols())
        if s.raw_energy is not None:
            assert s.raw_energy == pytest.approx(energy, abs=1e-9)
        assert s.energy + shift == pytest.approx(energy, abs=1e-9)
        np.testing.assert_allclose(s.forces, atoms.get_forces(), atol=1e-9)
        if s.stress is not None:
            np.testing.assert_allclose(s.stress, atoms.get_stress(), atol=1e-11)
        elif fname != MOLECULES:
            assert not atoms.pbc.all()
        worst = max(worst, np.abs(s.forces).max())
    print(f"{fname}: EMT labels reproduced; largest force component {worst:.2f} eV/Å")


def test_pyace_frame_class_path_and_metadata():
    """Cu_emt references pacemaker's DataFrameWithMetadata: pandas alone cannot read it."""
    path = DATA / CU
    raw = gzip.open(path).read()
    assert b"pyace.preparedata" in raw and b"DataFrameWithMetadata" in raw
    with pytest.raises(Exception):
        pd.read_pickle(path)
    df = read_pickled_dataframe(path)
    assert df.metadata["calculator"] == "ase EMT"
    assert df["name"].value_counts()["fcc_rattled"] == 8     # names are groups, not unique


def test_pandas_1_int64index_labels():
    path = DATA / MOLECULES
    assert b"pandas.core.indexes.numeric" in gzip.open(path).read()
    structures = load_structures(path, ["C", "H", "O"])
    assert [s.source.split()[-1] for s in structures] == [str(1000 + 20 * k) for k in range(24)]
    assert all(not s.atoms.pbc.any() and not s.atoms.cell.array.any() for s in structures)


def test_extxyz_holds_the_alloy_pickle():
    """The same structures through ase.io (extxyz, 8 decimals) and through the pickle reader."""
    from_xyz = load_structures(DATA / "CuNiAl_emt.extxyz", ["Al", "Cu", "Ni"])
    from_pickle = load_structures(DATA / ALLOYS, ["Al", "Cu", "Ni"])
    assert len(from_xyz) == len(from_pickle) == 55
    dev = 0.0
    for x, p in zip(from_xyz, from_pickle):
        assert x.atoms.get_chemical_symbols() == p.atoms.get_chemical_symbols()
        np.testing.assert_array_equal(x.atoms.pbc, p.atoms.pbc)
        np.testing.assert_allclose(x.atoms.positions, p.atoms.positions, atol=1e-7)
        np.testing.assert_allclose(x.atoms.cell.array, p.atoms.cell.array, atol=1e-7)
        assert x.energy == pytest.approx(p.raw_energy, abs=1e-7) and x.raw_energy == x.energy
        np.testing.assert_allclose(x.forces, p.forces, atol=1e-7)
        assert (x.stress is None) == (p.stress is None)
        if x.stress is not None:
            np.testing.assert_allclose(x.stress, p.stress, atol=1e-8)
        dev = max(dev, np.abs(x.forces - p.forces).max())
    print(f"extxyz vs pickle: max |dF| = {dev:.1e} eV/Å")


def test_alloy_energy_corrected_is_the_target_and_energy_the_raw():
    """Both columns: E - E_corrected is the sum of the atoms' free-atom energies."""
    structures = load_structures(DATA / ALLOYS, ["Al", "Cu", "Ni"])
    elements = ["Al", "Cu", "Ni"]
    counts = np.array([[s.atoms.get_chemical_symbols().count(e) for e in elements]
                       for s in structures], dtype=float)
    diff = np.array([s.raw_energy - s.energy for s in structures])
    e_free = _emt_free_atoms(elements)
    np.testing.assert_allclose(diff, counts @ [e_free[e] for e in elements], atol=1e-9)
    assert np.ptp(diff / counts.sum(axis=1)) > 0.5          # not one constant per atom


def _fake_module(name, **attrs):
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        value.__module__ = name
        value.__qualname__ = key
        setattr(mod, key, value)
    return mod


def _dump_with_fake_modules(obj_factory, modules, path):
    """Pickle obj_factory() while ``modules`` are importable, then make them vanish again
    (the case is skipped where the real package is installed: its premise is the absence)."""
    for name in modules:
        if "." not in name and importlib.util.find_spec(name) is not None:
            pytest.skip(f"{name} is installed here: this case needs it absent")
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        with gzip.open(path, "wb") as fh:
            pickle.dump(obj_factory(), fh, protocol=4)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    for name in modules:
        with pytest.raises(ImportError):
            importlib.import_module(name)


def _small_frame(cls=pd.DataFrame, n=3):
    atoms = [bulk("Cu", "fcc", a=3.6 + 0.01 * i) for i in range(n)]
    return cls({"ase_atoms": atoms, "energy_corrected": [-3.7 + 0.1 * i for i in range(n)],
                "forces": [np.zeros((1, 3)) for _ in range(n)]})


@pytest.mark.parametrize("package,module,cls_name", [
    ("pyace", "pyace.preparedata", "DataFrameWithMetadata"),
    ("tensorpotential", "tensorpotential.data.process", "TPDataFrame"),
])
def test_pickle_referencing_an_uninstalled_subclass(tmp_path, package, module, cls_name):
    class Frame(pd.DataFrame):   # pacemaker-like subclass with metadata
        _metadata = ["metadata"]

        @property
        def _constructor(self):
            return Frame

    class SomeSeries(pd.Series):
        pass

    mods = {package: _fake_module(package),
            module: _fake_module(module, **{cls_name: Frame, "SomeSeries": SomeSeries})}
    if module.count(".") == 2:
        parent = module.rsplit(".", 1)[0]
        mods[parent] = _fake_module(parent)
    path = tmp_path / "df.pckl.gzip"

    def make():
        df = _small_frame(Frame)
        df.metadata = {"note": "from a fake " + package}
        df["extra"] = [SomeSeries([i, i + 1]) for i in range(3)]   # object column
        return df

    _dump_with_fake_modules(make, mods, path)
    raw = gzip.open(path).read()
    assert module.encode() in raw and cls_name.encode() in raw
    with pytest.raises(Exception):
        pd.read_pickle(path)              # pandas alone cannot read it
    df = read_pickled_dataframe(path)
    assert type(df) is pd.DataFrame
    assert df.metadata == {"note": "from a fake " + package}
    assert type(df["extra"].iloc[2]) is pd.Series and list(df["extra"].iloc[2]) == [2, 3]
    structures = load_structures(path, ["Cu"])
    assert [s.energy for s in structures] == pytest.approx([-3.7, -3.6, -3.5], abs=1e-12)
    assert [s.source for s in structures] == [f"{path} row {i}" for i in range(3)]


def test_pickle_with_a_non_frame_pyace_class_names_it(tmp_path):
    class BBasisConfiguration:
        pass

    mods = {"pyace": _fake_module("pyace"),
            "pyace.basis": _fake_module("pyace.basis", BBasisConfiguration=BBasisConfiguration)}
    path = tmp_path / "bad.pkl"
    _dump_with_fake_modules(lambda: {"x": BBasisConfiguration()}, mods, path)
    with pytest.raises(DatasetError, match=r"bad\.pkl.*pyace\.basis\.BBasisConfiguration"):
        read_pickled_dataframe(path)


def test_pickle_of_pandas_1_with_int64index(tmp_path):
    """pandas < 2 pickled integer indices as pandas.core.indexes.numeric.Int64Index."""
    from pandas.core.indexes.base import _new_Index

    class Int64Index:
        pass

    df = _small_frame()
    df.index = pd.Index([10, 20, 30])
    index = df.index

    class OldPandasPickler(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is index:
                return _new_Index, (Int64Index, {"data": np.asarray(index), "name": None})
            return NotImplemented

    mod = _fake_module("pandas.core.indexes.numeric", Int64Index=Int64Index)
    path = tmp_path / "old.pckl"
    saved = sys.modules.get("pandas.core.indexes.numeric")
    sys.modules["pandas.core.indexes.numeric"] = mod
    try:
        with open(path, "wb") as fh:
            OldPandasPickler(fh, protocol=4).dump(df)
    finally:
        sys.modules.pop("pandas.core.indexes.numeric")
        if saved is not None:
            sys.modules["pandas.core.indexes.numeric"] = saved
    assert b"Int64Index" in path.read_bytes()
    structures = load_structures(path, ["Cu"])
    assert [s.source.split()[-1] for s in structures] == ["10", "20", "30"]


def test_not_a_dataframe_and_missing_columns(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DatasetError, match="list.pkl.*not a pandas"):
        load_structures(path, ["Cu"])
    path = tmp_path / "nocol.pkl"
    _small_frame().drop(columns=["ase_atoms"]).to_pickle(path)
    with pytest.raises(DatasetError, match="nocol.pkl.*'ase_atoms'"):
        load_structures(path, ["Cu"])
    _small_frame().drop(columns=["energy_corrected"]).to_pickle(path)
    with pytest.raises(DatasetError, match="nocol.pkl.*neither 'energy' nor 'energy_corrected'"):
        load_structures(path, ["Cu"])
    with pytest.raises(DatasetError, match="absent.pckl.gzip: no such file"):
        load_structures(tmp_path / "absent.pckl.gzip", ["Cu"])
    # pacemaker's data.datapath: a name that is not a file is looked up there
    _small_frame().to_pickle(tmp_path / "found.pkl")
    assert len(load_structures("found.pkl", ["Cu"], datapath=tmp_path)) == 3


# ---------------------------------------------------------------------------
# ASE formats
# ---------------------------------------------------------------------------


def _labelled_frames(seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    cu.rattle(0.05, seed=seed)
    water = molecule("H2O")
    for atoms in (cu, water):
        n = len(atoms)
        stress = rng.normal(scale=0.01, size=6) if atoms.pbc.all() else None
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-3.0 * n)),
                                           free_energy=float(rng.normal(-3.0 * n)),
                                           forces=rng.normal(size=(n, 3)), stress=stress)
        frames.append(atoms)
    return frames


@pytest.mark.parametrize("ext", ["extxyz", "traj"])
def test_ase_formats_round_trip(tmp_path, ext):
    import ase.io

    frames = _labelled_frames()
    path = tmp_path / f"data.{ext}"
    ase.io.write(path, frames)
    structures = load_structures(path, ["Cu", "H", "O"])
    assert len(structures) == 2
    for i, (s, atoms) in enumerate(zip(structures, frames)):
        res = atoms.calc.results
        tol = 1e-7       # extxyz writes 8 decimals
        assert s.energy == pytest.approx(res["free_energy"], abs=tol)  # the force-consistent one
        assert s.raw_energy == s.energy
        np.testing.assert_allclose(s.forces, res["forces"], atol=tol)
        np.testing.assert_allclose(s.atoms.positions, atoms.positions, atol=tol)
        np.testing.assert_array_equal(s.atoms.pbc, atoms.pbc)
        if res.get("stress") is None:
            assert s.stress is None
        else:
            np.testing.assert_allclose(s.stress, res["stress"], atol=tol)
        assert s.source == f"{path} frame {i}" and s.name == f"data:{i}"
    plain = load_structures(path, ["Cu", "H", "O"], energy_key="energy")
    assert [s.energy for s in plain] == pytest.approx([f.calc.results["energy"] for f in frames])


def test_extxyz_custom_keys(tmp_path):
    path = tmp_path / "ref.xyz"
    atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.info["REF_energy"] = -14.5
    atoms.arrays["REF_forces"] = np.arange(24.0).reshape(8, 3) / 100
    atoms.write(path, format="extxyz")
    with pytest.raises(DatasetError, match=r"ref\.xyz frame 0: no energy"):
        load_structures(path, ["Cu"])
    (s,) = load_structures(path, ["Cu"], energy_key="REF_energy", forces_key="REF_forces")
    assert s.energy == -14.5
    np.testing.assert_allclose(s.forces, atoms.arrays["REF_forces"])


def test_extxyz_virial_becomes_stress(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    virial = np.array([[0.5, 0.1, 0.0], [0.1, -0.2, 0.05], [0.0, 0.05, 0.3]])   # eV
    atoms.info["virial"] = virial
    atoms.info["energy"] = -14.0
    atoms.arrays["forces"] = np.zeros((4, 3))
    path = tmp_path / "gap.xyz"
    atoms.write(path, format="extxyz")
    (s,) = load_structures(path, ["Cu"])
    expected = -virial / 3.6 ** 3            # ASE: stress = -virial / volume
    np.testing.assert_allclose(s.stress, expected[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
                               atol=1e-8)


def test_damaged_pickle(tmp_path):
    path = tmp_path / "cut.pckl.gzip"
    _small_frame().to_pickle(path, compression=None)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="cut.pckl.gzip: cannot unpickle the data.*damaged"):
        load_structures(path, ["Cu"])


def _vasprun_xml(atoms, free_energy, e0, forces, stress_kbar):
    """A minimal vasprun.xml: the tags ASE's reader uses; stress in kB, VASP's sign."""
    def varray(name, rows):
        return (f'<varray name="{name}">' +
                "".join("<v>" + " ".join(f"{x:.10f}" for x in r) + "</v>" for r in rows) +
                "</varray>")
    species = "".join(f"<rc><c>{sym}</c><c>1</c></rc>" for sym in atoms.get_chemical_symbols())
    structure = ("<crystal>" + varray("basis", atoms.cell.array) + "</crystal>" +
                 varray("positions", atoms.get_scaled_positions()))
    energy = (f'<energy><i name="e_fr_energy">{free_energy:.10f}</i>'
              f'<i name="e_0_energy">{e0:.10f}</i></energy>')
    return ("<?xml version='1.0'?><modeling>"
            '<kpoints><varray name="kpointlist"><v>0 0 0</v></varray>'
            '<varray name="weights"><v>1</v></varray></kpoints>'
            '<parameters></parameters>'
            f'<atominfo><array name="atoms"><set>{species}</set></array></atominfo>'
            f'<structure name="initialpos">{structure}</structure>'
            f"<calculation><scstep>{energy}</scstep><structure>{structure}</structure>"
            f'{varray("forces", forces)}{varray("stress", stress_kbar)}{energy}</calculation>'
            "</modeling>")


def test_vasprun_stress_units_and_sign(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    forces = np.linspace(-0.3, 0.3, 12).reshape(4, 3)
    stress_kbar = np.array([[12.0, 1.5, -2.0], [1.5, -8.0, 0.5], [-2.0, 0.5, 30.0]])
    path = tmp_path / "vasprun.xml"
    path.write_text(_vasprun_xml(atoms, -14.2, -14.25, forces, stress_kbar))
    (s,) = load_structures(path, ["Cu"])
    assert s.energy == pytest.approx(-14.2)          # e_fr_energy: the force-consistent energy
    np.testing.assert_allclose(s.forces, forces, atol=1e-9)
    # VASP's "in kB" is minus ASE's stress; 1 kB = 0.1 GPa
    expected = -stress_kbar * 0.1 / EV_PER_A3_IN_GPA
    voigt = expected[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(s.stress, voigt, rtol=1e-6)


def test_pickle_stress_column_accepts_voigt_and_matrix(tmp_path):
    df = _small_frame(n=2)
    matrix = np.array([[0.01, 0.002, 0.003], [0.002, 0.02, 0.004], [0.003, 0.004, 0.03]])
    df["stress"] = [matrix, np.array([0.01, 0.02, 0.03, 0.004, 0.003, 0.002])]
    path = tmp_path / "s.pckl.gzip"
    df.to_pickle(path)
    a, b = load_structures(path, ["Cu"])
    np.testing.assert_allclose(a.stress, b.stress)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _good(n=4):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((n // 4, 1, 1))
    return atoms


def test_every_bad_entry_is_named(tmp_path):
    good = _good()
    rows = {}

    def add(label, atoms=None, energy=-10.0, forces="auto", stress=None):
        atoms = good.copy() if atoms is None else atoms
        if isinstance(forces, str):
            forces = np.zeros((len(atoms), 3))
        rows[label] = dict(ase_atoms=atoms, energy=energy, forces=forces, stress=stress)

    add("ok")
    add("nan_energy", energy=np.nan)
    add("inf_energy", energy=np.inf)
    f = np.zeros((4, 3)); f[2, 1] = np.nan
    add("nan_forces", forces=f)
    add("no_forces", forces=None)
    add("bad_shape", forces=np.zeros((3, 3)))
    add("nan_stress", stress=np.array([0, 0, np.nan, 0, 0, 0.0]))
    add("kbar_stress", stress=np.array([25.0, 25.0, 25.0, 0, 0, 0]))
    add("stress_shape", stress=np.zeros(4))
    pos = good.copy(); pos.positions[1] = [np.nan, 0, 0]
    add("nan_pos", atoms=pos)
    add("element", atoms=Atoms("CuAu", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[6, 6, 6],
                                pbc=True))
    add("close", atoms=Atoms("Cu2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[6, 6, 6], pbc=True))
    add("close_image", atoms=Atoms("Cu2", positions=[[0.1, 0, 0], [2.55, 0, 0]],
                                   cell=[2.8, 6, 6], pbc=True))
    add("zero_cell", atoms=Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]], pbc=True))
    add("flat_cell", atoms=Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]],
                                 cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True))
    add("molecule_in_small_box", atoms=Atoms("Cu3", positions=[[0, 0, 0], [2.4, 0, 0],
                                                               [4.8, 0, 0]],
                                             cell=[5.0, 10, 10], pbc=True))
    add("empty", atoms=Atoms(), forces=np.zeros((0, 3)))
    add("cluster_stress", atoms=Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]]),
        stress=np.zeros(6))
    df = pd.DataFrame.from_dict(rows, orient="index")
    path = tmp_path / "bad.pckl.gzip"
    df.to_pickle(path)
    with pytest.raises(DatasetError) as info:
        load_structures(path, ["Cu"])
    msg = str(info.value)
    print(msg)
    expected = {
        "nan_energy": "energy is nan", "inf_energy": "energy is inf",
        "nan_forces": "forces contain NaN", "no_forces": "no forces",
        "bad_shape": r"forces have shape \(3, 3\), expected \(4, 3\)",
        "nan_stress": "stress contains NaN", "kbar_stress": "probably in kbar",
        "stress_shape": "stress has shape", "nan_pos": "positions contain NaN",
        "element": r"element\(s\) \['Au'\]", "close": "atoms 0 and 1 are 0.300 Å apart",
        "close_image": r"0.350 Å apart.*periodic image", "zero_cell": "cell vector there is zero",
        "flat_cell": "collinear/coplanar", "molecule_in_small_box": r"periodic image.*molecule",
        "empty": "no atoms", "cluster_stress": "not periodic in all three",
    }
    assert f"{len(expected)} bad entries" in msg and str(path) in msg
    for label, pattern in expected.items():
        line = [ln for ln in msg.splitlines() if f"row '{label}'" in ln]
        assert len(line) == 1, label
        assert __import__("re").search(pattern, line[0]), (label, line[0])
    assert "row 'ok'" not in msg


def test_error_list_is_capped_and_energy_only_allowed(tmp_path):
    atoms = _good()
    df = pd.DataFrame({"ase_atoms": [atoms.copy() for _ in range(25)],
                       "energy": [np.nan] * 25, "forces": [None] * 25})
    path = tmp_path / "many.pkl"
    df.to_pickle(path)
    with pytest.raises(DatasetError, match=r"(?s)25 bad entries.*row 19:.*and 5 more"):
        load_structures(path, ["Cu"])
    df["energy"] = -12.0
    df.to_pickle(path)
    structures = load_structures(path, ["Cu"], allow_energy_only=True)
    assert all(s.forces is None for s in structures)


def test_unwrapped_crystal_is_accepted(tmp_path):
    """Atoms outside the cell are fine when they are a real crystal (only images matter)."""
    atoms = _good(8)
    atoms.positions[3] += atoms.cell[0] * 2 - atoms.cell[1]
    atoms.calc = SinglePointCalculator(atoms, energy=-30.0, forces=np.zeros((8, 3)))
    path = tmp_path / "unwrapped.extxyz"
    atoms.write(path)
    (s,) = load_structures(path, ["Cu"])
    assert s.natoms == 8


# ---------------------------------------------------------------------------
# reference energies
# ---------------------------------------------------------------------------


E_REF = {"Al": -0.3, "Ni": -1.7, "Cu": -0.9}


def _synthetic(binding=None, seed=1):
    """Structures of known composition with raw E = sum E_ref + n * binding[composition]."""
    rng = np.random.default_rng(seed)
    out = []
    symbols_list = ["Al", "Ni", "Cu", "AlNi", "Al3Ni", "NiCu2", "AlNiCu", "Al2Cu2", "Ni4"]
    for k, symbols in enumerate(symbols_list):
        atoms = Atoms(symbols)
        n = len(atoms)
        atoms.set_cell(np.eye(3) * (5.0 + n + k * 0.1))
        atoms.positions = rng.uniform(0, 1, size=(n, 3)) * 0.2 + np.arange(n)[:, None] * 1.2
        atoms.pbc = True
        e = sum(E_REF[s] for s in atoms.get_chemical_symbols())
        if binding is not None:
            e += n * binding[k]
        out.append(Structure(atoms=atoms, energy=e + 99.0, forces=np.zeros((n, 3)), raw_energy=e,
                             source=f"synthetic {k}"))
    return out


def test_auto_recovers_the_reference_energies_exactly():
    structures = _synthetic()
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"], "auto")
    assert e_ref == pytest.approx(E_REF, abs=1e-12)
    assert [s.energy for s in new] == pytest.approx([0.0] * len(new), abs=1e-12)
    assert [s.raw_energy for s in new] == [s.raw_energy for s in structures]


def test_auto_with_binding_energies_matches_least_squares_plus_dilute_shift():
    binding = np.array([0.0, -0.2, -0.3, -0.5, -0.45, -0.35, -0.6, -0.55, -0.25])
    structures = _synthetic(binding)
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"], "auto")
    elements = ["Al", "Cu", "Ni"]
    counts = np.array([[s.atoms.get_chemical_symbols().count(e) for e in elements]
                       for s in structures], dtype=float)
    raw = np.array([s.raw_energy for s in structures])
    fit, *_ = np.linalg.lstsq(counts, raw, rcond=None)
    volume_pa = [s.atoms.get_volume() / s.natoms for s in structures]
    k = int(np.argmax(volume_pa))
    shift_pa = (raw[k] - counts[k] @ fit) / counts[k].sum()
    expected = {e: fit[j] + shift_pa for j, e in enumerate(elements)}
    assert e_ref == pytest.approx(expected, abs=1e-10)
    assert new[k].energy == pytest.approx(0.0, abs=1e-10)
    assert [s.energy for s in new] == pytest.approx(list(raw - counts @ np.array(
        [expected[e] for e in elements])), abs=1e-10)


def test_mapping_number_shift_and_test_set():
    structures = _synthetic()
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"],
                                    {"Al": -0.3, "Ni": -1.7, "Cu": -0.9, "shift": 0.25})
    assert e_ref == pytest.approx({"Al": -0.55, "Ni": -1.95, "Cu": -1.15})
    assert [s.energy / s.natoms for s in new] == pytest.approx([0.25] * len(new))
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"], 0)
    assert [s.energy for s in new] == [s.raw_energy for s in structures]
    again = apply_reference_energies(structures, {"Al": -0.3, "Ni": -1.7, "Cu": -0.9})
    assert [s.energy for s in again] == pytest.approx([0.0] * len(again), abs=1e-12)
    with pytest.raises(DatasetError, match="synthetic 0.*no reference energy.*Al"):
        apply_reference_energies(structures, {"Ni": 0.0, "Cu": 0.0})
    with pytest.raises(DatasetError, match=r"\['Zr'\] are not among"):
        reference_energies(structures, ["Al", "Cu", "Ni"], {"Zr": -1.0})
    with pytest.raises(DatasetError, match="presets are not built into acemd"):
        reference_energies(structures, ["Al", "Cu", "Ni"], "VASP_PBE_500_0.125_0.1_NM")


def test_none_keeps_targets_unless_extreme():
    structures = _synthetic()     # targets = 99 eV + ... : per atom within -20..250
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"], None)
    assert e_ref is None and [s.energy for s in new] == [s.energy for s in structures]
    extreme = [Structure(atoms=s.atoms, energy=s.raw_energy - 500.0 * s.natoms, forces=s.forces,
                         raw_energy=s.raw_energy - 500.0 * s.natoms) for s in structures]
    with pytest.warns(UserWarning, match="Using reference_energy: auto"):
        e_ref, new = reference_energies(extreme, ["Al", "Cu", "Ni"], None)
    assert e_ref == pytest.approx({e: v - 500.0 for e, v in E_REF.items()}, abs=1e-9)


def test_pickle_with_both_columns_and_a_reference_energy(tmp_path):
    df = _small_frame(n=3)
    df["energy"] = [-10.0, -11.0, -12.0]
    path = tmp_path / "both.pckl"
    df.to_pickle(path)
    structures = load_structures(path, ["Cu"])
    assert [s.energy for s in structures] == pytest.approx([-3.7, -3.6, -3.5])
    _, new = reference_energies(structures, ["Cu"], {"Cu": -1.0})
    assert [s.energy for s in new] == pytest.approx([-9.0, -10.0, -11.0])
    only_corrected = load_structures(DATA / CU, ["Cu"])
    with pytest.raises(DatasetError, match="only 'energy_corrected'"):
        reference_energies(only_corrected, ["Cu"], "auto")


def test_auto_on_the_alloy_set_matches_pacemaker():
    """pacemaker's own code run on CuNiAl_emt (pacemaker_weights_CuNiAl_emt.json)."""
    import json

    ref = json.loads((DATA / "pacemaker_weights_CuNiAl_emt.json").read_text())["auto_reference"]
    structures = load_structures(DATA / ALLOYS, ["Al", "Cu", "Ni"])
    e_ref, new = reference_energies(structures, ["Al", "Cu", "Ni"], "auto")
    deviation = np.abs(np.array([s.energy for s in new]) - ref["energy_corrected"]).max()
    print(f"auto reference vs pacemaker: max |dE_corrected| = {deviation:.2e} eV")
    assert deviation < 1e-9
    esa = ref["esa"]
    assert e_ref == pytest.approx({e: esa[e] - esa["shift"] for e in ("Al", "Cu", "Ni")}, abs=1e-9)
    isolated = [k for k, s in enumerate(new) if s.name == "isolated_atom"]
    assert new[isolated[0]].energy == pytest.approx(0.0, abs=1e-9)   # the most dilute one


# ---------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------


def test_split_is_reproducible_disjoint_and_sized():
    structures = load_structures(DATA / CU, ["Cu"])
    train, test = split_train_test(structures, 0.1, seed=7)
    assert len(test) == 4 and len(train) == 38
    ids = lambda part: [id(s) for s in part]   # noqa: E731
    assert not set(ids(train)) & set(ids(test))
    assert sorted(ids(train) + ids(test)) == sorted(ids(structures))
    order = {id(s): i for i, s in enumerate(structures)}
    assert [order[i] for i in ids(test)] == sorted(order[i] for i in ids(test))
    train2, test2 = split_train_test(structures, 0.1, seed=7)
    assert ids(test2) == ids(test) and ids(train2) == ids(train)
    _, test3 = split_train_test(structures, 0.1, seed=8)
    assert ids(test3) != ids(test)
    _, test4 = split_train_test(structures, 30, seed=7)
    assert len(test4) == 30
    for bad in (42, 200, 0, -0.1, 0.001, 2.5, "x"):
        with pytest.raises(DatasetError, match="test_size"):
            split_train_test(structures, bad, seed=1)


@pytest.mark.parametrize("fname,elements", [(f, e) for f, e, *_ in EXAMPLES] +
                         [("CuNiAl_emt.extxyz", ["Al", "Cu", "Ni"])])
def test_loading_does_not_warn(fname, elements):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_structures(DATA / fname, elements)
