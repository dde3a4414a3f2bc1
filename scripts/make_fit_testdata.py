"""Make acemd's own fit test data (tests/data/fit) and pacemaker's reference numbers on it.

The datasets are labelled with ASE's EMT calculator (energies, forces, stresses), seeded,
and written in pacemaker's DataFrame layout, so the tests need none of pacemaker's files
(its licence is not GPL-compatible).  Two pythons run this script:

* **acemd's** writes the datasets (byte-for-byte reproducible)::

      python scripts/make_fit_testdata.py datasets [--out tests/data/fit]

* **pacemaker's** (a Python 3.9 venv with python-ace, e.g. /work/venv39) runs pacemaker's
  own weighting and ``reference_energy: auto`` code on the alloy dataset and stores only the
  resulting numbers (selected rows, weights, corrected energies)::

      /work/venv39/bin/python scripts/make_fit_testdata.py pacemaker-reference \\
          --python-ace /path/to/python-ace-checkout [--out tests/data/fit]

  ``--python-ace`` is a python-ace source tree (``git clone`` or ``git archive`` of
  github.com/ICAMS/python-ace): its ``src/pyace/{preparedata,process_df,const}.py`` are
  imported from a scratch copy, because the installed 0.2.8 wheel predates ``process_df``
  and ``n_lower``/``n_upper``.  Nothing of pacemaker is copied into the repository.

Files (see tests/data/fit/README_datasets.md):

* ``Cu_emt.pckl.gzip``: Cu (fcc/hcp/bcc volumes, strains, rattled cells, a vacancy, a
  (111) slab, dimers and a cluster), only ``energy_corrected``; pickled as the class path
  ``pyace.preparedata.DataFrameWithMetadata`` (a stand-in class that exists only while
  pickling), with a ``metadata`` attribute and SinglePointCalculators on the atoms.
* ``CuNiAl_emt.pckl.gzip``: Cu-Ni-Al (pure and ordered cells, random fcc alloys, strained
  and rattled cells, isolated atoms, dimers, a slab); plain DataFrame, ``energy`` and
  ``energy_corrected``, forces as nested lists; ``CuNiAl_emt.extxyz`` holds the same
  structures as ASE writes them.
* ``C2H6O_emt_pandas1.pckl.gzip``: ethanol and dimethyl-ether molecules (zero cell, not
  periodic), with ``w_energy``/``w_forces`` and no ``name``; its row index is pickled as
  pandas 1's ``pandas.core.indexes.numeric.Int64Index``.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import pickle
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "fit"

CU_FILE = "Cu_emt.pckl.gzip"
ALLOY_FILE = "CuNiAl_emt.pckl.gzip"
ALLOY_XYZ = "CuNiAl_emt.extxyz"
MOLECULE_FILE = "C2H6O_emt_pandas1.pckl.gzip"
REFERENCE_FILE = "pacemaker_weights_CuNiAl_emt.json"

A_FCC = {"Cu": 3.59, "Ni": 3.50, "Al": 4.05}   # Å, near EMT's fcc equilibrium

# Policies pacemaker's EnergyBasedWeightingPolicy is run with (pacemaker-reference) and
# the tests run acemd with: convex-hull energies with nfit and wlow; cohesive energies with
# n_lower/n_upper and DFup; bulk structures only.
POLICIES = [
    dict(DElow=0.1, DEup=2.0, seed=3, wlow=0.7, DE=0.05, DF=0.5, nfit=30),
    dict(energy="cohesive", DElow=0.5, DEup=1.5, n_lower=5, n_upper=7, seed=11, DFup=2.0),
    dict(reftype="bulk", DElow=0.05, DEup=1.0, nfit=25, seed=5, DE=0.1),
]


# ---------------------------------------------------------------------------
# labelling and layout
# ---------------------------------------------------------------------------


def free_atom_energies(elements):
    """EMT energy of each element's isolated atom (eV): the reference of energy_corrected."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    out = {}
    for el in elements:
        atoms = Atoms(el)
        atoms.calc = EMT()
        out[el] = float(atoms.get_potential_energy())
    return out


def label(atoms):
    """(energy eV, forces (N,3) eV/Å, Voigt stress eV/Å³ or None) from EMT."""
    from ase.calculators.emt import EMT

    atoms.calc = EMT()
    energy = float(atoms.get_potential_energy())
    forces = atoms.get_forces().copy()
    stress = atoms.get_stress().copy() if atoms.pbc.all() else None
    atoms.calc = None
    return energy, forces, stress


def rows(structures, e_free, *, stress=True, spc=False, forces_as_lists=False):
    """pacemaker's columns for [(name, atoms)]: energy, energy_corrected, forces, stress."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for name, atoms in structures:
        energy, forces, s = label(atoms)
        if spc:
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        row = {"name": name, "ase_atoms": atoms, "energy": energy,
               "energy_corrected": energy - sum(e_free[x] for x in atoms.get_chemical_symbols()),
               "forces": forces.tolist() if forces_as_lists else forces}
        if stress:
            row["stress"] = s
        out.append(row)
    return out


def frame(records, columns, cls=None):
    """A DataFrame with object columns and an object column index (readable by pandas 2 too)."""
    import pandas as pd

    cls = cls or pd.DataFrame
    df = cls({c: pd.Series([r[c] for r in records], dtype=object) for c in columns})
    for c in ("energy", "energy_corrected", "w_energy"):
        if c in df.columns:
            df[c] = df[c].astype(np.float64)
    df.columns = pd.Index(list(df.columns), dtype=object)
    return df


def write_pickle(obj, path, pickler=pickle.Pickler):
    """gzip pickle with a fixed header (no time stamp, no name): the same bytes every run."""
    buf = io.BytesIO()
    pickler(buf, protocol=4).dump(obj)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="",
                                                 mtime=0, compresslevel=9) as fh:
        fh.write(buf.getvalue())


# ---------------------------------------------------------------------------
# the structures
# ---------------------------------------------------------------------------


def displaced(atoms, rng, sigma):
    atoms = atoms.copy()
    atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
    return atoms


def strained(atoms, rng, amplitude):
    eps = rng.uniform(-amplitude, amplitude, size=(3, 3))
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    return atoms


def cu_structures(seed=2026):
    from ase import Atoms
    from ase.build import bulk, fcc111

    rng = np.random.default_rng(seed)
    a0 = A_FCC["Cu"]
    out = [("fcc_volume", bulk("Cu", "fcc", a=a0 * s)) for s in np.linspace(0.92, 1.10, 7)]
    out += [("hcp_volume", bulk("Cu", "hcp", a=a0 / 2 ** 0.5 * s, c=a0 / 2 ** 0.5 * s * 1.633))
            for s in (0.96, 1.0, 1.04, 1.08)]
    out += [("bcc_volume", bulk("Cu", "bcc", a=a0 * 0.794 * s)) for s in (0.96, 1.0, 1.04, 1.08)]
    cubic = bulk("Cu", "fcc", a=a0, cubic=True)
    out += [("fcc_strained", strained(cubic, rng, 0.03)) for _ in range(6)]
    cell = cubic.repeat((2, 2, 1))
    out += [("fcc_rattled", displaced(strained(cell, rng, 0.01), rng, sigma))
            for sigma in (0.03, 0.05, 0.05, 0.08, 0.08, 0.1, 0.12, 0.15)]
    vacancy = cubic.repeat(2)
    del vacancy[0]
    out += [("vacancy", displaced(vacancy, rng, sigma)) for sigma in (0.0, 0.04, 0.08)]
    slab = fcc111("Cu", size=(2, 2, 4), a=a0, vacuum=6.0)
    slab.info.clear()   # ase's adsorbate_info: not data
    out += [("slab_111", displaced(slab, rng, sigma)) for sigma in (0.0, 0.05, 0.1)]
    out += [("dimer", Atoms("Cu2", positions=[[0, 0, 0], [d, 0, 0]]))
            for d in (1.9, 2.1, 2.3, 2.6, 3.0)]
    tetra = Atoms("Cu4", positions=[[0, 0, 0], [2.4, 0, 0], [1.2, 2.08, 0], [1.2, 0.69, 1.96]],
                  cell=[14.0, 14.0, 14.0], pbc=True)
    out += [("cluster", displaced(tetra, rng, 0.05)) for _ in range(2)]
    return out


def _ordered(kind, a, b):
    """L1_2 A3B, B2 AB and L1_0 AB cells (lattice by Vegard's rule on the fcc constants)."""
    from ase import Atoms

    if kind == "L12":
        lat = (3 * A_FCC[a] + A_FCC[b]) / 4
        return Atoms(f"{b}{a}3", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5],
                                                   [0, 0.5, 0.5]], cell=[lat] * 3, pbc=True)
    lat = (A_FCC[a] + A_FCC[b]) / 2
    if kind == "B2":
        lat *= 0.794
        return Atoms(f"{a}{b}", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[lat] * 3,
                     pbc=True)
    return Atoms(f"{a}2{b}2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5],
                                                [0, 0.5, 0.5]], cell=[lat] * 3, pbc=True)


def alloy_structures(seed=7):
    from ase import Atoms
    from ase.build import bulk, fcc111

    rng = np.random.default_rng(seed)
    elements = ("Cu", "Ni", "Al")
    out = []
    for el in elements:
        out += [("pure_fcc", bulk(el, "fcc", a=A_FCC[el] * s)) for s in (0.97, 1.0, 1.03)]
        out.append(("pure_bcc", bulk(el, "bcc", a=A_FCC[el] * 0.794)))
    for kind, a, b in [("L12", "Cu", "Al"), ("L12", "Ni", "Al"), ("L12", "Cu", "Ni"),
                       ("L12", "Al", "Ni"), ("L12", "Ni", "Cu"), ("L12", "Al", "Cu"),
                       ("B2", "Cu", "Al"), ("B2", "Ni", "Al"), ("B2", "Cu", "Ni"),
                       ("L10", "Cu", "Ni"), ("L10", "Ni", "Al"), ("L10", "Cu", "Al")]:
        out.append((f"ordered_{kind}", _ordered(kind, a, b)))
    template = bulk("Cu", "fcc", a=1.0, cubic=True).repeat((2, 1, 1))
    for k in range(10):
        conc = rng.dirichlet([1.5, 1.5, 1.5])
        symbols = rng.choice(elements, size=len(template), p=conc)
        atoms = template.copy()
        atoms.set_chemical_symbols(symbols)
        lat = float(np.mean([A_FCC[s] for s in symbols]))
        atoms.set_cell(atoms.cell.array * lat, scale_atoms=True)
        out.append(("random_fcc", displaced(atoms, rng, 0.02 * (k % 3))))
    for k in range(10):
        base = out[12 + k][1]
        out.append(("strained_rattled", displaced(strained(base, rng, 0.04), rng, 0.1)))
    for el, s in (("Cu", 0.88), ("Ni", 0.9), ("Al", 0.86)):
        out.append(("compressed", bulk(el, "fcc", a=A_FCC[el] * s)))
    for el in elements:
        out.append(("isolated_atom", Atoms(el, cell=[10.0, 10.0, 10.0], pbc=True)))
    for pair, d in (("CuNi", 2.3), ("NiAl", 2.5), ("AlCu", 2.6), ("Cu2", 2.2)):
        out.append(("dimer", Atoms(pair, positions=[[0, 0, 0], [d, 0, 0]])))
    slab = fcc111("Ni", size=(2, 2, 3), a=A_FCC["Ni"], vacuum=5.0)
    slab.info.clear()   # ase's adsorbate_info: not data
    slab.symbols[[9, 10]] = "Al"
    out.append(("slab_111", slab))
    return out


def molecule_structures(seed=11):
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    out = [("ethanol", displaced(molecule("CH3CH2OH"), rng, sigma))
           for sigma in np.linspace(0.0, 0.08, 16)]
    out += [("dimethyl_ether", displaced(molecule("CH3OCH3"), rng, sigma))
            for sigma in np.linspace(0.0, 0.08, 8)]
    return out


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------


def _fake_class(module, name, cls):
    cls.__module__ = module
    cls.__qualname__ = cls.__name__ = name
    return cls


def write_cu(out_dir):
    """Cu set pickled as pyace.preparedata.DataFrameWithMetadata (only energy_corrected)."""
    import pandas as pd

    class Frame(pd.DataFrame):
        _metadata = ["metadata"]

        @property
        def _constructor(self):
            return Frame

    records = rows(cu_structures(), free_atom_energies(["Cu"]), spc=True)
    _fake_class("pyace.preparedata", "DataFrameWithMetadata", Frame)
    mods = {"pyace": types.ModuleType("pyace"),
            "pyace.preparedata": types.ModuleType("pyace.preparedata")}
    mods["pyace.preparedata"].DataFrameWithMetadata = Frame
    saved = {name: sys.modules.get(name) for name in mods}
    sys.modules.update(mods)
    try:
        df = frame(records, ["name", "ase_atoms", "energy_corrected", "forces", "stress"], Frame)
        df.metadata = {"generator": "scripts/make_fit_testdata.py", "calculator": "ase EMT"}
        write_pickle(df, out_dir / CU_FILE)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return len(records)


def write_alloys(out_dir):
    """Cu-Ni-Al set: plain DataFrame, forces as lists; and the same structures as extxyz."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    records = rows(alloy_structures(), free_atom_energies(["Cu", "Ni", "Al"]),
                   forces_as_lists=True)
    df = frame(records, ["name", "ase_atoms", "energy", "energy_corrected", "forces", "stress"])
    write_pickle(df, out_dir / ALLOY_FILE)
    frames = []
    for r in records:
        atoms = r["ase_atoms"].copy()
        atoms.info["name"] = r["name"]
        atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], free_energy=r["energy"],
                                           forces=np.array(r["forces"]), stress=r["stress"])
        frames.append(atoms)
    ase.io.write(out_dir / ALLOY_XYZ, frames, format="extxyz")
    return len(records)


def write_molecules(out_dir):
    """Molecules with weight columns, the index pickled as pandas 1's Int64Index."""
    import pandas as pd
    from pandas.core.indexes.base import _new_Index

    records = rows(molecule_structures(), free_atom_energies(["C", "H", "O"]), stress=False)
    epa = np.array([r["energy_corrected"] / len(r["ase_atoms"]) for r in records])
    for r, e in zip(records, epa - epa.min()):
        f2 = np.sum(np.asarray(r["forces"]) ** 2, axis=1)
        r["w_energy"] = float(1.0 / (e + 0.5) ** 2)
        r["w_forces"] = r["w_energy"] / (f2 + 1.0)
    df = frame(records, ["ase_atoms", "energy", "energy_corrected", "forces", "w_energy",
                         "w_forces"])
    df.index = pd.Index(1000 + 20 * np.arange(len(df)), dtype=np.int64)
    index = df.index
    int64index = _fake_class("pandas.core.indexes.numeric", "Int64Index", type("X", (), {}))

    class OldPandasPickler(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is index:
                return _new_Index, (int64index, {"data": np.asarray(index), "name": None})
            return NotImplemented

    module = types.ModuleType("pandas.core.indexes.numeric")
    module.Int64Index = int64index
    saved = sys.modules.get("pandas.core.indexes.numeric")
    sys.modules["pandas.core.indexes.numeric"] = module
    try:
        write_pickle(df, out_dir / MOLECULE_FILE, OldPandasPickler)
    finally:
        sys.modules.pop("pandas.core.indexes.numeric")
        if saved is not None:
            sys.modules["pandas.core.indexes.numeric"] = saved
    return len(records)


def make_datasets(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {CU_FILE: write_cu(out_dir), ALLOY_FILE: write_alloys(out_dir),
              MOLECULE_FILE: write_molecules(out_dir)}
    counts[ALLOY_XYZ] = counts[ALLOY_FILE]
    for name, n in counts.items():
        data = (out_dir / name).read_bytes()
        print(f"{name:32s} {n:3d} structures {len(data) / 1024:6.1f} kB  "
              f"sha256 {hashlib.sha256(data).hexdigest()[:16]}")


# ---------------------------------------------------------------------------
# pacemaker's numbers (run in pacemaker's python)
# ---------------------------------------------------------------------------


def import_pacemaker(checkout):
    """pacemaker's preparedata/process_df from a python-ace source tree, in a scratch package.

    Only these pure-Python modules are needed; ``pyace.atomicenvironment`` (compiled
    neighbour lists, imported by preparedata but not used for weighting) is stubbed.
    """
    src = Path(checkout) / "src" / "pyace"
    missing = [n for n in ("preparedata.py", "process_df.py", "const.py")
               if not (src / n).is_file()]
    if missing:
        sys.exit(f"--python-ace {checkout}: {missing} not found under {src}; give a python-ace "
                 "source tree (git clone https://github.com/ICAMS/python-ace)")
    scratch = Path(tempfile.mkdtemp(prefix="pacemaker_ref_")) / "pyace"
    scratch.mkdir()
    (scratch / "__init__.py").write_text("")
    (scratch / "atomicenvironment.py").write_text(
        "def aseatoms_to_atomicenvironment(*args, **kwargs):\n    raise NotImplementedError\n"
        "def generate_tp_atoms(*args, **kwargs):\n    raise NotImplementedError\n")
    for n in ("preparedata.py", "process_df.py", "const.py"):
        (scratch / n).write_bytes((src / n).read_bytes())
    for name in [m for m in sys.modules if m == "pyace" or m.startswith("pyace.")]:
        del sys.modules[name]
    sys.path.insert(0, str(scratch.parent))
    import logging

    logging.disable(logging.CRITICAL)
    from pyace.preparedata import EnergyBasedWeightingPolicy
    from pyace.process_df import compute_shifted_scaled_corrected_energy
    return EnergyBasedWeightingPolicy, compute_shifted_scaled_corrected_energy


def _git_head(checkout):
    head = Path(checkout) / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (Path(checkout) / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return "unknown commit"


def pacemaker_reference(checkout, out_dir, commit=None):
    import pandas as pd

    policy_cls, auto_reference = import_pacemaker(checkout)
    with gzip.open(out_dir / ALLOY_FILE, "rb") as fh:
        df0 = pickle.load(fh)
    df0 = df0.reset_index(drop=True)
    commit = commit or _git_head(checkout)
    result = {"source": f"pacemaker (python-ace {commit}) preparedata.EnergyBasedWeightingPolicy."
                        f"generate_weights and process_df.compute_shifted_scaled_corrected_energy "
                        f"run on tests/data/fit/{ALLOY_FILE} (energy_corrected as target; row "
                        f"positions 0..{len(df0) - 1}) by scripts/make_fit_testdata.py "
                        "pacemaker-reference",
              "versions": {"python": sys.version.split()[0], "pandas": pd.__version__,
                           "numpy": np.__version__},
              "policies": []}
    for spec in POLICIES:
        df = pd.DataFrame({"ase_atoms": df0.ase_atoms, "energy_corrected": df0.energy_corrected,
                           "forces": df0.forces.map(np.array)})
        df["NUMBER_OF_ATOMS"] = df.ase_atoms.map(len)
        df["energy_corrected_per_atom"] = df.energy_corrected / df.NUMBER_OF_ATOMS
        df["pbc"] = df.ase_atoms.map(lambda a: bool(np.all(a.pbc)))
        weighted = policy_cls(**spec).generate_weights(df).sort_index()
        result["policies"].append({
            "policy": {"type": "EnergyBasedWeightingPolicy", **spec},
            "selected": [int(i) for i in weighted.index],
            "w_energy": [float(x) for x in weighted.w_energy],
            "w_forces": [[float(x) for x in w] for w in weighted.w_forces]})
        print(f"policy {spec}: {len(weighted)} of {len(df)} selected")
    df = pd.DataFrame({"ase_atoms": df0.ase_atoms, "energy": df0.energy})
    df["NUMBER_OF_ATOMS"] = df.ase_atoms.map(len)
    esa = auto_reference(df)
    result["auto_reference"] = {"esa": {k: float(v) for k, v in esa.items()},
                                "energy_corrected": [float(x) for x in df.energy_corrected]}
    print(f"auto reference energies: {result['auto_reference']['esa']}")
    path = out_dir / REFERENCE_FILE
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} kB)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("datasets", help="write the EMT datasets (acemd's python)")
    d.add_argument("--out", type=Path, default=OUT)
    r = sub.add_parser("pacemaker-reference",
                       help="run pacemaker's weighting on the alloy set (pacemaker's python)")
    r.add_argument("--python-ace", required=True, type=Path, help="python-ace source tree")
    r.add_argument("--commit", help="the python-ace commit, for the record (default: read .git)")
    r.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.what == "datasets":
        make_datasets(args.out)
    else:
        pacemaker_reference(args.python_ace, args.out, args.commit)


if __name__ == "__main__":
    main()
