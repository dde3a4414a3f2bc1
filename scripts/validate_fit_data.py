"""Read pacemaker's real example datasets with acemd's reader and print what came out.

The tests use acemd's own EMT datasets (tests/data/fit); pacemaker's example pickles may not be
shipped (their licence is not GPL-compatible), so this script is the compatibility check on the
real files.  Get them from a python-ace clone::

    mkdir -p /tmp/pace && git -C <python-ace clone> archive HEAD examples data | tar -x -C /tmp/pace
    python scripts/validate_fit_data.py --pace-examples /tmp/pace

Every pickle under the given folders (``*.pckl*``, ``*.pkl*``, recursively; files may be named
too) goes through :func:`acemd.fit.dataset.load_structures` with every check on.  Per file it
prints the structures, atoms, elements, the range of the fit target per atom (and of the raw
``energy`` when there is one), the columns, the classes the pickle references (read from its
opcodes, not by loading) and the load time.  Exit status 1 when a file fails to load.
"""
from __future__ import annotations

import argparse
import io
import pickletools
import sys
import time
from pathlib import Path

PATTERNS = ("*.pckl", "*.pckl.*", "*.pkl", "*.pkl.*", "*.pickle", "*.pickle.*")


def pickle_bytes(path: Path) -> bytes:
    """The pickle stream, gzip/bz2/xz recognised from the first bytes."""
    import bz2
    import gzip
    import lzma

    raw = path.read_bytes()
    for magic, module in ((b"\x1f\x8b", gzip), (b"BZh", bz2), (b"\xfd7zXZ\x00", lzma)):
        if raw.startswith(magic):
            return module.decompress(raw)
    return raw


def referenced_classes(raw: bytes) -> list[str]:
    """``module.name`` of every GLOBAL/STACK_GLOBAL in a pickle, following the memo."""
    found, pushed, memo = set(), [], {}
    for op, arg, _ in pickletools.genops(io.BytesIO(raw)):
        name = op.name
        if name == "GLOBAL":
            found.add(arg.replace(" ", "."))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, qualname = pushed[-2], pushed[-1]
            found.add(f"{module}.{qualname}")
            pushed[-2:] = [None]
        elif "UNICODE" in name or name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
            pushed.append(arg)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif op.stack_after:
            pushed.append(None)       # any other object: not a class name
    return sorted(found)


def find_files(items) -> list[Path]:
    files = []
    for item in items:
        item = Path(item)
        if item.is_file():
            files.append(item)
        elif item.is_dir():
            files.extend(sorted({p for pat in PATTERNS for p in item.rglob(pat)}))
        else:
            sys.exit(f"--pace-examples {item}: no such file or folder")
    return files


def report(path: Path) -> bool:
    import numpy as np

    from acemd.fit.dataset import DatasetError, load_structures, read_pickled_dataframe

    print(f"\n{path}  ({path.stat().st_size / 1024:.0f} kB)")
    try:
        classes = referenced_classes(pickle_bytes(path))
    except Exception as exc:  # a damaged file: say so, load_structures will name it too
        classes = [f"(opcodes unreadable: {exc})"]
    foreign = [c for c in classes if not c.startswith(("pandas.", "numpy.", "builtins.",
                                                      "copyreg.", "_codecs.", "collections."))]
    print(f"  classes      : {', '.join(foreign)}")
    print(f"  + pandas/numpy: {', '.join(c for c in classes if c not in foreign)}")
    t0 = time.perf_counter()
    try:
        structures = load_structures(path)
    except DatasetError as exc:
        print(f"  FAILED       : {exc}")
        return False
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_structures(path)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = read_pickled_dataframe(path)
    unpickle = time.perf_counter() - t0
    natoms = np.array([s.natoms for s in structures])
    target = np.array([s.energy for s in structures]) / natoms
    raw = [s.raw_energy / s.natoms for s in structures if s.raw_energy is not None]
    elements = sorted({x for s in structures for x in s.atoms.get_chemical_symbols()})
    periodic = sum(bool(s.atoms.pbc.all()) for s in structures)
    print(f"  frame        : {type(df).__module__}.{type(df).__name__}, index "
          f"{type(df.index).__name__}, metadata "
          f"{'yes' if getattr(df, 'metadata', None) is not None else 'no'}")
    print(f"  columns      : {', '.join(map(str, df.columns))}")
    print(f"  structures   : {len(structures)} ({periodic} periodic in 3D), atoms {natoms.sum()} "
          f"({natoms.min()}-{natoms.max()} per structure), elements {' '.join(elements)}")
    print(f"  target/atom  : {target.min():.4f} .. {target.max():.4f} eV "
          f"({'energy_corrected' if 'energy_corrected' in df.columns else 'energy'})")
    if raw:
        print(f"  energy/atom  : {min(raw):.4f} .. {max(raw):.4f} eV (uncorrected)")
    print(f"  stresses     : {sum(s.stress is not None for s in structures)}, "
          f"weights: {sum(s.energy_weight is not None for s in structures)}")
    print(f"  load time    : {seconds:.2f} s (load_structures: unpickle + checks; unpickling "
          f"alone {unpickle:.2f} s; the first call {first:.2f} s, with one-off imports)")
    return True


def warm_up() -> None:
    """One-off imports and numba compilation, so that load times are the files' own."""
    import numpy as np
    from ase import Atoms

    from acemd.fit.dataset import Structure, validate_structures

    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 0, 0]], cell=[3.6, 4, 4], pbc=True)
    validate_structures([Structure(atoms=atoms, energy=-7.0, forces=np.zeros((2, 3)))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pace-examples", nargs="+", required=True, metavar="DIR",
                    help="folders (searched recursively) or pickle files, e.g. a python-ace "
                         "checkout's examples/ and data/")
    args = ap.parse_args(argv)
    files = find_files(args.pace_examples)
    if not files:
        print(f"no pickles under {args.pace_examples}", file=sys.stderr)
        return 1
    warm_up()
    ok = [report(path) for path in files]
    print(f"\n{sum(ok)} of {len(ok)} files loaded")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
