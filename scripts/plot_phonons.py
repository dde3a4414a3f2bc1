#!/usr/bin/env python
"""Phonon bands + DOS and the QHA curves of a [properties] run, the reference overlaid.

Reads the HDF5 data file (``[properties].data``) and the report (``[properties].report``, for the
band labels) of a run that computed ``phonons`` and/or ``qha`` (docs/properties-phonons.md):

    python scripts/plot_phonons.py properties.h5 --report properties.yaml -o phonons.png
    # writes phonons.png (bands + DOS) and phonons_qha.png (V, beta, Cp, B, G - E0 vs T)

acemd's curves are solid, the reference's dashed; the QHA's quantum curves are drawn with the
classical limit (thin) beside them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np


def _bands(group):
    segs = sorted(k for k in group["bands"])
    return [(np.asarray(group["bands"][k]["distances"]), np.asarray(group["bands"][k]["frequencies"]))
            for k in segs]


def plot_bands(ax_b, ax_d, h5, labels):
    styles = {"acemd": dict(color="C0", ls="-", lw=1.2), "reference": dict(color="C3", ls="--", lw=1.0)}
    ticks, ref_segments = None, None
    for label in ("acemd", "reference"):
        if label not in h5 or "phonons" not in h5[label]:
            continue
        g = h5[label]["phonons"]
        bands = _bands(g)
        if label == "acemd" or ticks is None:
            ref_segments = [d for d, _ in bands]
        for k, (d, f) in enumerate(bands):
            x = ref_segments[k] if len(ref_segments[k]) == len(d) else d   # the reference on acemd's q axis
            for j, col in enumerate(f.T):
                ax_b.plot(x, col, **styles[label], label=label if (k == 0 and j == 0) else None)
        if ticks is None:
            ticks = [ref_segments[0][0]] + [s[-1] for s in ref_segments]
        dos_f, dos = np.asarray(g["dos_frequencies"]), np.asarray(g["dos"])
        ax_d.plot(dos, dos_f, **styles[label])
    if ticks is not None:
        for t in ticks:
            ax_b.axvline(t, color="0.7", lw=0.6)
        if labels:
            names = [labels[0][0]]
            for k, (a, b) in enumerate(labels):
                nxt = labels[k + 1][0] if k + 1 < len(labels) else None
                names.append(b if nxt in (None, b) else f"{b}|{nxt}")
            ax_b.set_xticks(ticks[:len(names)])
            ax_b.set_xticklabels(names)
        ax_b.set_xlim(ticks[0], ticks[-1])
    ax_b.axhline(0.0, color="0.5", lw=0.6)
    ax_b.set_ylabel("frequency (THz)")
    ax_b.legend(loc="lower right", fontsize=8)
    ax_d.set_xlabel("DOS (1/THz)")
    ax_d.tick_params(labelleft=False)


def plot_qha(axes, h5):
    quantities = [("V", "V (Å$^3$/atom)", 1.0), ("beta", r"$\beta$ (10$^{-6}$/K)", 1e6), ("Cp", "C$_p$ (k$_B$/atom)", 1.0),
                  ("B", "B (GPa)", 1.0), ("G", "G - E$_0$ (meV/atom)", 1e3)]
    colors = {"acemd": "C0", "reference": "C3"}
    for label in ("acemd", "reference"):
        if label not in h5 or "qha" not in h5[label]:
            continue
        g = h5[label]["qha"]
        e0 = float(np.asarray(g["classical"]["G"])[0])
        for ax, (key, name, scale) in zip(axes, quantities):
            for kind, lw, ls in (("quantum", 1.4, "-"), ("classical", 0.8, ":")):
                t = np.asarray(g[kind]["temperature"])
                y = np.asarray(g[kind][key]) - (e0 if key == "G" else 0.0)
                if kind == "classical" and key in ("beta", "Cp"):
                    # classical C and beta: T = 0 is a limit, the finite differences next to it are not
                    keep = t >= 2 * (t[1] - t[0])
                    t, y = t[keep], y[keep]
                ax.plot(t, scale * y, color=colors[label], lw=lw, ls=ls if label == "acemd" else "--",
                        label=f"{label} {kind}")
            ax.set_ylabel(name)
            ax.set_xlabel("T (K)")
        if "cross_check" in g:
            cc = g["cross_check"]
            T = np.asarray(cc["T"])
            axes[0].errorbar(T, np.asarray(cc["V_MD"]), yerr=np.asarray(cc["V_MD_error"]), fmt="ks", ms=4,
                             label="NPT MD (Frenkel-Ladd route)")
            axes[4].errorbar(T, 1e3 * (np.asarray(cc["G_FL"]) - e0), yerr=1e3 * np.asarray(cc["G_FL_error"]), fmt="ks",
                             ms=4, label="Frenkel-Ladd")
    axes[0].legend(fontsize=7)
    axes[4].legend(fontsize=7)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="the [properties] HDF5 file")
    ap.add_argument("--report", help="the [properties] report (YAML/JSON) for the band labels")
    ap.add_argument("-o", "--output", default="phonons.png")
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = None
    if args.report:
        import yaml
        rep = yaml.safe_load(Path(args.report).read_text())
        labels = (rep.get("properties", {}).get("phonons", {}).get("info", {}) or {}).get("band_labels")
    out = Path(args.output)
    with h5py.File(args.data, "r") as h5:
        if any(lab in h5 and "phonons" in h5[lab] for lab in ("acemd", "reference")):
            fig, (ax_b, ax_d) = plt.subplots(1, 2, figsize=(9, 4.5), sharey=True,
                                             gridspec_kw={"width_ratios": [3, 1], "wspace": 0.05})
            plot_bands(ax_b, ax_d, h5, labels)
            fig.savefig(out, dpi=150, bbox_inches="tight")
            print(f"wrote {out}")
        if any(lab in h5 and "qha" in h5[lab] for lab in ("acemd", "reference")):
            fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
            plot_qha(axes, h5)
            fig.tight_layout()
            q = out.with_name(out.stem + "_qha" + out.suffix)
            fig.savefig(q, dpi=150, bbox_inches="tight")
            print(f"wrote {q}")


if __name__ == "__main__":
    main()
