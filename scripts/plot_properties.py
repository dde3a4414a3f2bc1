"""Figures of a [properties] run from its HDF5 data: E(V) with the Birch-Murnaghan fit, the GSF curve,
phonon bands (when computed), and the scorecard of every entry against the reference.

    python scripts/plot_properties.py properties.h5 [--out properties.png]

Every panel overlays the reference (dashed) when the run had one.  Phonon DOS and QHA curves:
scripts/plot_phonons.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _eos(ax, f):
    from acemd.properties.eos import birch_murnaghan, fit_eos
    for label, style in (("acemd", "-"), ("reference", "--")):
        if f"{label}/eos" not in f:
            continue
        g = f[f"{label}/eos"]
        v, e = g["volume"][()], g["energy"][()]
        fit = fit_eos(v, e)
        vv = np.linspace(v.min(), v.max(), 200)
        line, = ax.plot(vv, birch_murnaghan(vv, *fit["parameters"]) - fit["E0"], style,
                        label=f"{label}: B0 = {fit['B0']:.1f} GPa")
        ax.plot(v, e - fit["E0"], "o", color=line.get_color())
    ax.set_xlabel("V (Å³/atom)")
    ax.set_ylabel("E − E0 (eV/atom)")
    ax.set_title("equation of state (Birch-Murnaghan)")
    ax.legend(fontsize=8)


def _gsf(ax, f):
    for label, style in (("acemd", "o-"), ("reference", "s--")):
        if f"{label}/stacking_fault" in f:
            g = f[f"{label}/stacking_fault"]
            ax.plot(g["u"][()], g["gsf"][()], style, label=label)
    ax.set_xlabel("slip u (fraction of the period)")
    ax.set_ylabel("γ (mJ/m²)")
    ax.set_title("generalized stacking fault")
    ax.legend(fontsize=8)


def _bands(ax, f):
    for label, style in (("acemd", "-"), ("reference", "--")):
        if f"{label}/phonons/bands" not in f:
            continue
        bands = f[f"{label}/phonons/bands"]
        color = None
        for name in sorted(bands):
            d, w = bands[name]["distances"][()], bands[name]["frequencies"][()]
            lines = ax.plot(d, w, style, color=color, lw=1, label=label if color is None else None)
            color = lines[0].get_color()
    ax.set_ylabel("frequency (THz)")
    ax.set_title("phonon bands")
    ax.legend(fontsize=8)


def _scorecard(ax, f):
    e = f["entries"]
    names = [n.decode() if isinstance(n, bytes) else n for n in e["name"][()]]
    value, ref = e["value"][()], e["reference"][()]
    keep = [i for i, n in enumerate(names) if np.isfinite(ref[i]) and abs(ref[i]) > 1e-6
            and not n.startswith("phonons.") or (n in ("phonons.max_frequency",) and np.isfinite(ref[i]))]
    rel = np.array([100 * (value[i] - ref[i]) / abs(ref[i]) for i in keep])
    y = np.arange(len(keep))
    ax.barh(y, np.clip(rel, -60, 60), color=["tab:red" if abs(r) > 10 else "tab:blue" for r in rel])
    ax.set_yticks(y, [names[i] for i in keep], fontsize=7)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("(acemd − reference)/|reference| (%), clipped at ±60")
    ax.set_title("scorecard")
    ax.invert_yaxis()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="the HDF5 file of [properties].data")
    p.add_argument("--out", help="figure file (default: the data file with .png)")
    args = p.parse_args(argv)
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = Path(args.data)
    if not path.is_file():
        p.error(f"data file not found: {path}")
    with h5py.File(path, "r") as f:
        panels = [fn for key, fn in (("acemd/eos", _eos), ("acemd/stacking_fault", _gsf),
                                     ("acemd/phonons/bands", _bands), ("entries", _scorecard)) if key in f]
        if not panels:
            p.error(f"{path}: no eos, stacking_fault, phonons or entries group: not a [properties] data file?")
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5.0))
        for ax, fn in zip(np.atleast_1d(axes), panels):
            fn(ax, f)
    fig.tight_layout()
    out = args.out or str(path.with_suffix(".png"))
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
