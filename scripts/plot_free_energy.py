#!/usr/bin/env python
"""Plot dH/dlambda against lambda, forward and backward, from a [free_energy] data file;
with --curve, the swept G(T) (or F(T)) or G(P) with its error band.

    python scripts/plot_free_energy.py free_energy.h5 [-o dhdl.png] [--per-atom]
    python scripts/plot_free_energy.py free_energy.h5 --curve [-o curve.png] [--minus-linear]

Each iteration's forward switch (ACE -> reference) and backward switch (reference ->
ACE) is drawn (for the liquid also UF -> ideal gas and back); the area between a
forward and its backward curve is twice the dissipated energy.  Writes a PNG
(matplotlib, Agg backend) and prints the work of every switch.

--curve (``mode = "temperature_sweep"`` or ``"pressure_sweep"``): G (NPT) or F (NVT)
against T, or G against P, with the band +- 2 standard errors, the forward-only and
backward-only curves (dashed) and, in a lower panel, the hysteresis.  The curves are
nearly straight over a wide range; --minus-linear subtracts the straight line through
the end points so the curvature and the error band show.  Prints the table.
"""
import argparse
import sys

import h5py
import numpy as np

from acemd.analysis.cli import check_output, run
from acemd.analysis.errors import AnalysisInputError
from acemd.analysis.filekind import require
from acemd.analysis.plotting import pyplot, save

NEEDED = "a [free_energy] data file ([free_energy].data, e.g. free_energy.h5)"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plot_free_energy", description=__doc__.splitlines()[0])
    ap.add_argument("data", help="HDF5 written by [free_energy] (data key)")
    ap.add_argument("-o", "--output", help="image file (default dhdl.png, with --curve curve.png)")
    ap.add_argument("--per-atom", action="store_true", help="divide by the number of atoms")
    ap.add_argument("--curve", action="store_true", help="plot the swept curve instead of dH/dlambda")
    ap.add_argument("--minus-linear", action="store_true",
                    help="--curve: subtract the straight line through the end points")
    args = ap.parse_args(argv)
    if args.minus_linear and not args.curve:
        ap.error("--minus-linear applies to --curve only; add --curve")
    if args.per_atom and args.curve:
        ap.error("--per-atom applies to the dH/dlambda plot; the --curve values are already per atom")
    args.output = args.output or ("curve.png" if args.curve else "dhdl.png")
    check_output(args.output, plot=True)
    require(args.data, "free_energy", NEEDED)
    if args.curve:
        return plot_curve(args)
    with h5py.File(args.data, "r") as f:
        iterations = sorted(k for k in f if k.startswith("iteration_"))
        if not iterations:
            sweep = [m for m in ("temperature_sweep", "pressure_sweep") if m in f]
            hint = f"; it holds a {sweep[0]}: plot it with --curve" if sweep else ""
            raise AnalysisInputError(f"{args.data}: no switching iteration (no iteration_NNN group){hint}")
        n = int(f.attrs.get("n_atoms", 1)) if args.per_atom else 1
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in iterations:
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
    save(fig, args.output, dpi=150)
    print(f"wrote {args.output}")


def plot_curve(args):
    with h5py.File(args.data, "r") as f:
        mode = next((m for m in ("temperature_sweep", "pressure_sweep") if m in f), None)
        if mode is None:
            raise AnalysisInputError(f"{args.data}: --curve needs the data file of mode = \"temperature_sweep\" or "
                                     "\"pressure_sweep\" (no such group here); leave out --curve for dH/dlambda")
        if "curve" not in f[mode]:
            raise AnalysisInputError(f"{args.data}: /{mode} has no curve (a run stopped before its report?)")
        c = {k: v[()] for k, v in f[f"{mode}/curve"].items()}
        attrs = dict(f[f"{mode}/curve"].attrs)
        units = attrs.get("units", "")
    if mode == "temperature_sweep":
        x, xlabel = c["temperature"], "T (K)"
        y, name = (c["F"], "F") if attrs.get("ensemble") == "nvt" else (c["G"], "G")
    else:
        x, xlabel, y, name = c["pressure"], "P (bar)", c["G"], "G"
    err, fw, bw = c["G_error"], c["G_forward"] - c["G"] + y, c["G_backward"] - c["G"] + y
    base = np.zeros_like(x)
    if args.minus_linear:
        base = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.fill_between(x, y - base - 2 * err, y - base + 2 * err, alpha=0.3, label=r"$\pm 2\sigma$")
    ax.plot(x, y - base, "o-", ms=3, label=name)
    ax.plot(x, fw - base, "--", lw=0.8, label="forward")
    ax.plot(x, bw - base, ":", lw=0.8, label="backward")
    ax.set_ylabel(f"{name}" + (" - linear" if args.minus_linear else "") + " (eV/atom)")
    ax.legend(fontsize=8)
    ax2.plot(x, c["hysteresis"] * 1000, "k-", lw=0.8)
    ax2.set_ylabel("hysteresis (meV/atom)")
    ax2.set_xlabel(xlabel)
    save(fig, args.output, dpi=150)
    print(f"# {mode}: {units}")
    print("#  x            G            +-         hysteresis   V")
    for row in zip(x, y, err, c["hysteresis"], c["V"]):
        print("  {:10.2f}  {:+.6f}  {:.6f}  {:+.6f}  {:.4f}".format(*row))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(run(main))
