"""Cost of the design rows (acemd.fit.design) on pacemaker's Cu-II data set.

Prints the CPU time (one core; the wall time too) per atom and per atom x function of the energy + force + virial
rows, the share of the numba pass, and the peak memory, for the basis of
pacemaker's linear-fit notebook (Cu, SBessel, rcut 6 Å, nradmax_by_orders
[8, 8, 4, 3, 2], lmax_by_orders [0, 4, 3, 2, 1]: 822 functions in pacemaker).
The basis comes from ``acemd.fit.basis.build_basis`` when that exists; otherwise
from a stand-in enumeration here (every sorted (n, l) tuple with an allowed
coupling: 939 functions, a little more work than pacemaker's 822); ``--standin`` forces it.

    python scripts/bench_design.py [--data Cu_df2_1k.pkl.gzip] [--limit N] [--basis file.yaml]
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

DEFAULT_DATA = Path("/tmp/pace/examples/Cu-II/Cu_df2_1k.pkl.gzip")
NRADMAX = [8, 8, 4, 3, 2]
LMAX = [0, 4, 3, 2, 1]


def load_atoms(path: Path):
    """ase.Atoms of a pacemaker pickle (acemd.fit.dataset when present, else a pyace shim)."""
    try:
        from acemd.fit.dataset import load_structures
        return [s.atoms for s in load_structures(path)]
    except ImportError:
        pass
    import pandas as pd

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.startswith("pyace"):
                return pd.DataFrame          # pacemaker's DataFrame subclass
            return super().find_class(module, name)

    with gzip.open(path, "rb") as f:
        df = Unpickler(f).load()
    return list(df["ase_atoms"])


def _triangle(a, b):
    return range(abs(a - b), a + b + 1)


def standin_functions():
    """(ns, ls, lint) of every sorted (n, l) tuple with a valid coupling, rank 1..5."""
    out = [((n,), (0,), ()) for n in range(1, NRADMAX[0] + 1)]
    for r in range(2, len(NRADMAX) + 1):
        pairs = [(n, l) for n in range(1, NRADMAX[r - 1] + 1) for l in range(LMAX[r - 1] + 1)]
        for combo in itertools.combinations_with_replacement(pairs, r):
            ns = tuple(p[0] for p in combo)
            ls = tuple(p[1] for p in combo)
            if sum(ls) % 2:
                continue
            if r == 2 and ls[0] == ls[1]:
                out.append((ns, ls, ()))
            elif r == 3 and ls[2] in _triangle(ls[0], ls[1]):
                out.append((ns, ls, (ls[2],)))
            elif r == 4:
                for L in sorted(set(_triangle(ls[0], ls[1])) & set(_triangle(ls[2], ls[3]))):
                    out.append((ns, ls, (L, L)))
            elif r == 5:
                for L12 in _triangle(ls[0], ls[1]):
                    for L34 in _triangle(ls[2], ls[3]):
                        if ls[4] in _triangle(L12, L34):
                            out.append((ns, ls, (L12, L34, ls[4])))
    return out


def standin_basis_yaml(path: Path, seed=0):
    rng = np.random.default_rng(seed)
    nbody = []
    for ns, ls, lint in standin_functions():
        f = {"type": " ".join(["Cu"] * (len(ns) + 1)), "nr": list(ns), "nl": list(ls),
             "c": [float(rng.normal())]}
        if lint:
            f["lint"] = list(lint)
        nbody.append(f)
    crad = [[[1.0 if k == n else 0.0 for k in range(NRADMAX[0])] for _ in range(max(LMAX) + 1)]
            for n in range(max(NRADMAX[1:]))]
    tree = {"global": {"DeltaSplineBins": 0.001},
            "species": [{"speciesblock": "Cu", "ndensityi": 1, "npoti": "FinnisSinclairShiftedScaled",
                         "parameters": [1.0, 1.0], "nradmaxi": max(NRADMAX[1:]), "lmaxi": max(LMAX),
                         "rcutij": 6.0, "dcutij": 0.01, "NameOfCutoffFunctionij": "cos",
                         "nradbaseij": NRADMAX[0], "radbase": "SBessel", "radparameters": [5.25],
                         "radcoefficients": crad, "core-repulsion": [0.0, 0.0], "nbody": nbody}]}
    path.write_text(yaml.safe_dump(tree))
    return path


def basis_potential(args, tmp: Path):
    from acemd.potential import ACEPotential
    if args.basis:
        return ACEPotential(args.basis), "file " + str(args.basis)
    try:
        if args.standin:
            raise ImportError
        from acemd.fit.basis import build_basis    # noqa: F401  (landing in parallel)
        pot = _from_build_basis(tmp)
        if pot is not None:
            return pot, "acemd.fit.basis.build_basis"
    except ImportError:
        pass
    return ACEPotential(standin_basis_yaml(tmp / "standin.yaml")), "stand-in enumeration"


def _from_build_basis(tmp):
    """The notebook's basis through acemd.fit.basis (None if its API differs from expected)."""
    from acemd.fit import basis
    from acemd.potential import ACEPotential
    spec = {"deltaSplineBins": 0.001, "elements": ["Cu"],
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                                   "ndensity": 1}},
            "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 6, "dcut": 0.01}},
            "functions": {"ALL": {"nradmax_by_orders": NRADMAX, "lmax_by_orders": LMAX}}}
    try:
        bspec = basis.build_basis(spec)
        rng = np.random.default_rng(0)
        model = bspec.to_potential([rng.normal(size=(n, 1)) for n in bspec.nfuncs])
    except Exception as exc:          # API still moving: fall back, but say why
        print(f"(acemd.fit.basis.build_basis failed: {exc!r}; using the stand-in)")
        return None
    return ACEPotential.from_model(model, source="build_basis(Cu-II notebook)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="first N structures only")
    ap.add_argument("--basis", type=Path, default=None, help="a B-basis .yaml instead")
    ap.add_argument("--standin", action="store_true", help="the stand-in enumeration, not build_basis")
    args = ap.parse_args(argv)

    from acemd.fit.design import DesignRows
    from acemd.potential import design_kernel
    structures = load_atoms(args.data)[:args.limit]
    natoms = sum(len(a) for a in structures)
    with tempfile.TemporaryDirectory() as tmp:
        pot, origin = basis_potential(args, Path(tmp))
    t0 = time.perf_counter()
    dr = DesignRows(pot)
    t_tables = time.perf_counter() - t0
    dr.rows(structures[0])                       # compile / load the numba cache
    kernel = design_kernel.design_rows_kernel
    t_kernel = 0.0

    def timed(*a):
        nonlocal t_kernel
        t = time.process_time()
        out = kernel(*a)
        t_kernel += time.process_time() - t
        return out

    import acemd.fit.design as design_mod
    design_mod.design_rows_kernel = timed
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    c0 = time.process_time()
    checksum = 0.0
    for atoms in structures:
        rows = dr.rows(atoms, copy=False)
        checksum += float(rows.energy.sum())
    cpu = time.process_time() - c0
    wall = time.perf_counter() - t0
    design_mod.design_rows_kernel = kernel
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nf = dr.ncols
    t = dr.tables
    print(f"basis: {origin}; {nf} functions, {len(t.leaf_prod)} (product, function) leaves, "
          f"{len(t.fac_offsets) - 1} distinct products, {len(t.wnz_channel)} (function, channel) entries")
    print(f"data: {args.data.name}, {len(structures)} structures, {natoms} atoms "
          f"(largest {max(len(a) for a in structures)})")
    print(f"tables built in {t_tables:.2f} s")
    print(f"rows (energy + forces + virial) of all structures: {cpu:.2f} CPU-s on one core "
          f"({wall:.2f} s wall; the wall time includes waiting for a shared core), "
          f"numba pass {t_kernel:.2f} CPU-s ({100 * t_kernel / cpu:.0f} %)")
    print(f"per atom: {1e3 * cpu / natoms:.3f} ms;  per atom x function: {1e9 * cpu / natoms / nf:.0f} ns "
          "(CPU time)")
    print(f"peak RSS {rss1 / 1024:.0f} MB (before the loop {rss0 / 1024:.0f} MB)")
    print(f"(checksum {checksum:.6e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
