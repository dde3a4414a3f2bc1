#!/usr/bin/env python
"""Stress against strain for each applied Voigt strain of an [elastic] run (PNG).

    python scripts/plot_elastic.py elastic.h5 [-o stress_strain.png]

One panel per applied strain e_j (xx, yy, zz, yz, xz, xy): the six stress
components (GPa) at every strain with the fitted lines s_i = s0_i + C_ij e_j.  Data from a
finite-temperature run (temperature > 0) are drawn with their standard errors as error bars.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from acemd.analysis.cli import check_output, run
from acemd.analysis.errors import AnalysisInputError
from acemd.analysis.filekind import require
from acemd.analysis.plotting import pyplot, save

NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


def load(path):
    import h5py
    require(path, "elastic", "an acemd [elastic] data file ([elastic].data, e.g. elastic.h5)")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("component", "strain", "stress", "C", "reference_stress") if k not in f]
        if missing:
            method = f.attrs.get("method", "")
            why = (" (method = \"fluctuation\": no strained cells; its tensor is in the report)"
                   if method == "fluctuation" else "")
            raise AnalysisInputError(f"{path}: no stress-strain data to plot, missing {', '.join(missing)}{why}")
        data = {k: f[k][()] for k in ("component", "strain", "stress", "C", "reference_stress")}
        data["C_error"] = f["C_error"][()] if "C_error" in f else np.zeros((6, 6))
        # temperature > 0: stress errors (error bars) and the fitted intercept per strain column
        data["stress_error"] = f["stress_error"][()] if "stress_error" in f else None
        data["intercept"] = f["intercept"][()] if "intercept" in f else None
        data["temperature"] = float(f.attrs.get("temperature_K", 0.0))
        return data


def plot(data, output):
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharex=True)
    for j, ax in enumerate(axes.ravel()):
        sel = data["component"] == j
        hot = data["stress_error"] is not None
        if hot:      # finite temperature: no zero-strain run; means with their standard errors
            e, s, err = data["strain"][sel], data["stress"][sel], data["stress_error"][sel]
        else:
            e = np.concatenate([[0.0], data["strain"][sel]])
            s = np.vstack([data["reference_stress"], data["stress"][sel]])
        order = np.argsort(e)
        grid = np.linspace(min(e.min(), 0.0), max(e.max(), 0.0), 2)
        for i in range(6):
            label = f"$\\sigma_{{{NAMES[i]}}}$"
            if hot:
                line = ax.errorbar(e[order], s[order, i], yerr=err[order, i], fmt="o", ms=4, capsize=3,
                                   label=label).lines[0]
                intercept = data["intercept"][i, j]
            else:
                line, = ax.plot(e[order], s[order, i], "o", ms=4, label=label)
                intercept = data["reference_stress"][i]
            ax.plot(grid, intercept + data["C"][i, j] * grid, "-", color=line.get_color(), lw=1)
        ax.set_title(f"applied $e_{{{NAMES[j]}}}$: C$_{{{j + 1}{j + 1}}}$ = {data['C'][j, j]:.1f} "
                     f"± {data['C_error'][j, j]:.2f} GPa")
        ax.set_xlabel("strain (Voigt, engineering shear)")
        ax.set_ylabel("stress (GPa, tensile > 0)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    save(fig, output, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(prog="plot_elastic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="the [elastic] data file (elastic.h5)")
    p.add_argument("-o", "--output", default=None, help="PNG to write (default: <data>_stress_strain.png)")
    args = p.parse_args(argv)
    output = args.output or str(Path(args.data).with_suffix("")) + "_stress_strain.png"
    check_output(output, plot=True)
    data = load(args.data)
    plot(data, output)
    print(f"wrote {output}" + (f" (error bars: standard errors at {data['temperature']:g} K)"
                               if data["stress_error"] is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
