#!/usr/bin/env python
"""Plot dH/dlambda against lambda, forward and backward, from a [free_energy] data file.

    python scripts/plot_free_energy.py free_energy.h5 [-o dhdl.png] [--per-atom]

Each iteration's forward switch (ACE -> reference) and backward switch (reference ->
ACE) is drawn (for the liquid also UF -> ideal gas and back); the area between a
forward and its backward curve is twice the dissipated energy.  Writes a PNG
(matplotlib, Agg backend) and prints the work of every switch.
"""
import argparse

import h5py
import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="HDF5 written by [free_energy] (data key)")
    ap.add_argument("-o", "--output", default="dhdl.png", help="image file (default dhdl.png)")
    ap.add_argument("--per-atom", action="store_true", help="divide by the number of atoms")
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    with h5py.File(args.data, "r") as f:
        n = int(f.attrs.get("n_atoms", 1)) if args.per_atom else 1
        for name in sorted(k for k in f if k.startswith("iteration_")):
            for direction in f[name]:          # forward, backward (and gas_forward, gas_backward: liquid)
                style = "--" if direction.endswith("backward") else "-"
                g = f[name][direction]
                lam, dhdl = g["lambda"][:], g["dH_dlambda"][:] / n
                ax.plot(lam, dhdl, style, lw=0.8, label=f"{name[10:]} {direction}")
                print(f"{name} {direction}: work {g.attrs['work_eV'] / n:+.6f} eV{'/atom' if n > 1 else ''}, "
                      f"{len(lam) - 1} steps")
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel(r"$dH/d\lambda$ (eV" + ("/atom)" if n > 1 else ")"))
    ax.axhline(0.0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=150)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
