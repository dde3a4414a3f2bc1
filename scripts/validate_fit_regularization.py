"""Compare acemd's regularisers (``acemd.fit.regularization``) with pacemaker's TensorFlow model.

Two pythons run this script:

* **pacemaker's TensorFlow side**: a Python 3.9 venv with pyace, TensorFlow and TensorPotential
  (``python3.9 -m venv /tmp/venv_tp && /tmp/venv_tp/bin/pip install "numpy<=1.26.4" "pandas<=2.0"
  tensorflow-cpu python-ace==0.2.8 "ruamel.yaml<0.18" pyyaml ase scipy``, then ``pip install --no-deps``
  a checkout of github:ICAMS/TensorPotential); ``/tmp/venv_tp/bin/python
  scripts/validate_fit_regularization.py --reference`` loads every B-basis ``.yaml`` of
  tests/data/potentials into TensorPotential's ``ACE`` model with ``compute_smoothness=True`` and writes
  its smoothness terms (P0, P1, P2: ``ACE.aux``) and its ``reg_l1``, ``reg_l2`` to
  ``tests/data/fit/tensorpotential_regularization.json`` (numbers only).
* **acemd's** (``python scripts/validate_fit_regularization.py``) computes the same from the same files
  (``acemd.fit.basis_file.spec_from_file``, ``smoothness_grids``, ``smoothness_terms``,
  ``coefficient_penalty``) and prints the relative deviations (tests/test_fit_regularization.py checks
  the same file).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POTENTIALS = ROOT / "tests" / "data" / "potentials"
REFERENCE = ROOT / "tests" / "data" / "fit" / "tensorpotential_regularization.json"


def write_reference():
    import types

    import numpy as np
    from pyace.basis import BBasisConfiguration
    from tensorpotential.potentials.ace import ACE

    out = {}
    for path in sorted(POTENTIALS.glob("*.yaml")):
        ace = ACE(BBasisConfiguration(str(path)), compute_smoothness=True)
        ace.index = types.SimpleNamespace(bond_combs=list(ace.bond_combs))    # every ordered bond of the basis
        ace.compute_smoothness_reg()
        ace.compute_regularization()
        out[path.name] = {"P": [float(np.ravel(a.numpy())[0]) for a in ace.aux],
                          "l1": float(ace.reg_l1.numpy()), "l2": float(ace.reg_l2.numpy()),
                          "ordered_bonds": len(ace.bond_combs)}
        print(path.name, out[path.name])
    REFERENCE.write_text(json.dumps({"source": "TensorPotential (github:ICAMS/TensorPotential) with pyace 0.2.8",
                                     "potentials": out}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


def acemd_terms(path):
    """(P0, P1, P2), sum |c| and sum c^2 of a B-basis file, as acemd computes them."""
    import numpy as np

    from acemd.fit.basis_file import spec_from_file
    from acemd.fit.regularization import coefficient_penalty, smoothness_grids, smoothness_terms

    spec, coeffs, crad = spec_from_file(path)
    bonds = {}
    for b in spec.blocks:
        if b.bond is not None and len(b.elements) <= 2:
            bonds.setdefault(tuple(sorted((b.elements[0], b.elements[-1]))), b.bond)
    P, _ = smoothness_terms({p: crad[p] for p in bonds}, smoothness_grids(bonds))
    c = np.concatenate([np.ravel(x) for x in coeffs])
    return P, coefficient_penalty(c, 1.0, 0.0)[0], coefficient_penalty(c, 0.0, 1.0)[0]


def compare():
    data = json.loads(REFERENCE.read_text())["potentials"]
    worst = 0.0
    for name, ref in data.items():
        P, l1, l2 = acemd_terms(POTENTIALS / name)
        dev = [abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(P, ref["P"])]
        worst = max(worst, *dev)
        print(f"{name:26s} P0 {P[0]:.10g} P1 {P[1]:.10g} P2 {P[2]:.10g}  relative deviation "
              f"{dev[0]:.1e} {dev[1]:.1e} {dev[2]:.1e};  L1 {l1:.6g} (TP {ref['l1']:.6g}), L2 {l2:.6g} "
              f"(TP {ref['l2']:.6g})")
    print(f"largest relative deviation of P0..P2 from TensorPotential: {worst:.1e}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", action="store_true", help="write the reference with TensorPotential")
    args = p.parse_args(argv)
    if args.reference:
        write_reference()
        return 0
    return compare()


if __name__ == "__main__":
    sys.exit(main())
