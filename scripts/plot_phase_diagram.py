#!/usr/bin/env python
"""Plot G - G_ref against T with error bands, crossings marked, from a phase-mode report.

    python scripts/plot_phase_diagram.py free_energy.yaml [-o phases.png] [--reference NAME] [--all]

Reads the YAML report of ``[free_energy] mode = "melting_temperature" | "transition_temperature"
| "coexistence_line" | "phase_map"`` (docs/phase-diagram.md).  G_ref is the reference phase's
curve (default: the first phase), interpolated onto each curve's grid; the band is the
curve's standard error.  Crossings (T* +- error) are vertical lines with a shaded span.
``--all`` also draws every earlier window's curves from the HDF5 data file (thin lines).
Needs matplotlib (the ``plot`` extra).  Prints the plotted crossings.
"""
import argparse
import sys

import numpy as np
import yaml

from acemd.analysis.cli import check_output, run
from acemd.analysis.errors import AnalysisInputError
from acemd.analysis.filekind import require
from acemd.analysis.plotting import pyplot, save

NEEDED = ("the YAML report of a [free_energy] phase protocol (mode = melting_temperature, "
          "transition_temperature, coexistence_line or phase_map; [free_energy].report)")


def _crossings(result):
    if result.get("status") == "crossing":
        return [result]
    return [t for t in result.get("transitions", []) if t.get("status") == "crossing"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plot_phase_diagram", description=__doc__.splitlines()[0])
    ap.add_argument("report", help="YAML report of a phase mode ([free_energy].report)")
    ap.add_argument("-o", "--output", default="phases.png", help="image file (default phases.png)")
    ap.add_argument("--reference", help="phase whose G is subtracted (default: the first)")
    ap.add_argument("--all", action="store_true", help="also every earlier window's curves (from the data file)")
    args = ap.parse_args(argv)
    check_output(args.output, plot=True)
    require(args.report, "phase_report", NEEDED)
    with open(args.report, encoding="utf-8") as fh:
        rep = yaml.safe_load(fh)
    curves = rep["curves"]
    if not curves:
        raise AnalysisInputError(f"{args.report}: no curves in the report (the protocol stopped before its "
                                 "first sweep?)")
    ref_name = args.reference or next(iter(curves))
    if ref_name not in curves:
        raise AnalysisInputError(f"--reference {ref_name}: not a phase of {args.report} "
                                 f"(phases: {', '.join(curves)})")
    ref = curves[ref_name]
    rt, rg = np.asarray(ref["temperature_K"], float), np.asarray(ref["G"], float)
    order = np.argsort(rt)
    rt, rg = rt[order], rg[order]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        t, g, e = (np.asarray(c[k], float) for k in ("temperature_K", "G", "G_error"))
        o = np.argsort(t)
        t, g, e = t[o], g[o], np.nan_to_num(e[o])
        d = (g - np.interp(t, rt, rg)) * 1000.0
        line, = ax.plot(t, d, "-o", ms=3, label=f"{name} ({c.get('route', '')})")
        ax.fill_between(t, d - 1000 * e, d + 1000 * e, color=line.get_color(), alpha=0.25)
    if args.all:
        import h5py
        from pathlib import Path
        data = Path(rep.get("acemd", {}).get("data_file", Path(args.report).with_suffix(".h5")))
        if not data.exists():
            print(f"warning: --all: the data file {data} named in the report does not exist; drawing the "
                  "report's curves only", file=sys.stderr)
        else:
            with h5py.File(data, "r") as f:
                for key in f.get("curves", {}):
                    g = f["curves"][key]
                    t = g["temperature_K"][()]
                    ax.plot(t, (g["G"][()] - np.interp(t, rt, rg)) * 1000.0, "-", lw=0.5, color="grey")
    for x in _crossings(rep["result"]):
        ax.axvline(x["temperature_K"], color="k", lw=0.8)
        ax.axvspan(x["temperature_K"] - x["error_K"], x["temperature_K"] + x["error_K"], color="k", alpha=0.1)
        print(f"crossing {x['stable_below']} -> {x['stable_above']}: {x['temperature_K']:.2f} +- "
              f"{x['error_K']:.2f} K, latent heat {x['latent_heat_eV_atom']:.5f} eV/atom")
    if rep["result"].get("status") not in ("crossing", "map"):
        print(f"no crossing: {rep['result'].get('message', rep['result'].get('status'))}")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("T (K)")
    ax.set_ylabel(f"G - G({ref_name}) (meV/atom)")
    ax.set_title(f"{rep['mode']} at {rep['pressure_bar']:g} bar", fontsize=9)
    ax.legend(fontsize=8)
    save(fig, args.output, dpi=150)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(run(main))
