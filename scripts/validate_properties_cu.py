"""Side-by-side validation: the [properties] battery of fcc Cu with Cu-PBE-core-rep.ace against ASE's EMT.

Runs inputs/properties_cu.toml (or --input) in a scratch folder through the acemd command line
(``--ranks N`` with mpiexec) and prints the table of value, reference and difference that
docs/properties.md shows.  EMT is not DFT: the table shows the machinery, not the quality of the fit.

    python scripts/validate_properties_cu.py [--ranks 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "inputs" / "properties_cu.toml"))
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--keep", help="folder to run in and keep (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.ranks < 1:
        p.error(f"--ranks must be >= 1, got {args.ranks}")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="acemd-properties-"))
    folder.mkdir(parents=True, exist_ok=True)
    text = Path(args.input).read_text().replace('"../tests/', f'"{REPO.as_posix()}/tests/')
    (folder / "in.toml").write_text(text)
    cmd = [sys.executable, "-m", "acemd.cli", "in.toml"]
    if args.ranks > 1:
        cmd = [shutil.which("mpiexec") or "mpiexec", "-n", str(args.ranks)] + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        return proc.returncode
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# properties of"))
    print("\n".join(lines[start:]))
    for line in lines:
        if line.lstrip().startswith(("vacancy ", "surface (", "intrinsic", "phase ", "# phases (",
                                     "# vacancy (", "# surfaces (", "# stacking_fault (")):
            print(line)
    print(f"# {args.ranks} rank(s), {time.perf_counter() - t0:.1f} s wall; outputs in {folder}")
    if not args.keep:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
