#!/usr/bin/env python
"""Plots of an `acemd fit` result: energy and force parity, error against energy above the minimum,
and (with a committee) predicted uncertainty against the true error.

    python scripts/plot_fit.py output_potential_predictions.npz [-o fit.png]

Reads the ``*_predictions.npz`` that ``acemd fit`` writes next to the potential (energies in
eV/atom, forces in eV/Å); errors are plotted in meV/atom and meV/Å.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REQUIRED = ("energy_ref", "energy_pred", "forces_ref", "forces_pred", "structure_subset", "e_above_min")


def load(path: Path) -> dict:
    if not path.is_file():
        sys.exit(f"plot_fit.py: {path}: no such file (give the *_predictions.npz written by acemd fit)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:        # noqa: BLE001 - any unreadable file gets one message
        sys.exit(f"plot_fit.py: {path}: not a numpy .npz archive ({exc})")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        sys.exit(f"plot_fit.py: {path}: not an acemd fit predictions file (missing {', '.join(missing)}); "
                 "give the *_predictions.npz written by acemd fit")
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=None, help="image file (default: next to the input)")
    args = ap.parse_args(argv)
    data = load(args.predictions)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subset = data["structure_subset"].astype(str)
    atom_subset = np.repeat(subset, data["structure_natoms"])
    has_std = "energy_std" in data and np.isfinite(data["energy_std"]).any()
    ncols = 4 if has_std else 3
    fig, axes = plt.subplots(1, ncols, figsize=(4.4 * ncols, 4.2))
    colours = {"train": "tab:blue", "test": "tab:orange"}

    ax = axes[0]
    for s, col in colours.items():
        m = subset == s
        if m.any():
            rmse = 1e3 * np.sqrt(np.mean((data["energy_pred"][m] - data["energy_ref"][m]) ** 2))
            ax.scatter(data["energy_ref"][m], data["energy_pred"][m], s=6, c=col,
                       label=f"{s}: RMSE {rmse:.2f} meV/atom")
    lim = [min(data["energy_ref"].min(), data["energy_pred"].min()),
           max(data["energy_ref"].max(), data["energy_pred"].max())]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set(xlabel="reference energy (eV/atom)", ylabel="ACE energy (eV/atom)", title="energy parity")
    ax.legend(fontsize=8)

    ax = axes[1]
    for s, col in colours.items():
        m = atom_subset == s
        if m.any():
            fr, fp = data["forces_ref"][m].ravel(), data["forces_pred"][m].ravel()
            rmse = 1e3 * np.sqrt(np.mean((fp - fr) ** 2))
            ax.scatter(fr, fp, s=2, c=col, label=f"{s}: RMSE {rmse:.1f} meV/Å")
    lim = [data["forces_ref"].min(), data["forces_ref"].max()]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set(xlabel="reference force component (eV/Å)", ylabel="ACE force component (eV/Å)",
           title="force parity")
    ax.legend(fontsize=8)

    ax = axes[2]
    for s, col in colours.items():
        m = subset == s
        if m.any():
            ax.scatter(data["e_above_min"][m], 1e3 * np.abs(data["energy_pred"][m] - data["energy_ref"][m]),
                       s=6, c=col, label=s)
    ax.set(xlabel="energy above the minimum (eV/atom)", ylabel="|energy error| (meV/atom)",
           yscale="log", title="error against energy")
    ax.legend(fontsize=8)

    if has_std:
        ax = axes[3]
        err = 1e3 * np.abs(data["energy_pred"] - data["energy_ref"])
        std = 1e3 * data["energy_std"]
        for s, col in colours.items():
            m = subset == s
            if m.any():
                ax.scatter(std[m], err[m], s=6, c=col, label=s)
        top = max(np.nanmax(std), np.nanmax(err))
        ax.plot([0, top], [0, top], "k-", lw=0.6)
        ax.set(xlabel="committee spread (meV/atom)", ylabel="|energy error| (meV/atom)", xscale="log",
               yscale="log", title="uncertainty against error")
        ax.legend(fontsize=8)

    fig.tight_layout()
    out = args.output or args.predictions.with_name(args.predictions.name.replace(".npz", "") + ".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
