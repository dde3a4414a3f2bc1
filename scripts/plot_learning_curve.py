#!/usr/bin/env python
"""Plot the learning curve of a ladder fit: train and test RMSE against the number of functions.

    python scripts/plot_learning_curve.py out/metrics.yaml [-o learning_curve.png]

Reads ``learning_curve`` from the metrics YAML that the nonlinear `acemd fit` writes (one row per ladder
step: functions, train/test RMSE of energies in meV/atom and of force components in meV/Å) and draws
energy and force errors side by side, log scale.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path, help="the fit's metrics YAML (output.metrics_file)")
    ap.add_argument("-o", "--output", type=Path, default=None, help="image file (default: next to the metrics)")
    args = ap.parse_args(argv)
    import yaml
    if not args.metrics.is_file():
        sys.exit(f"{args.metrics}: no such file")
    metrics = yaml.safe_load(args.metrics.read_text())
    curve = metrics.get("learning_curve") if isinstance(metrics, dict) else None
    if not curve:
        sys.exit(f"{args.metrics}: no learning_curve (written by the nonlinear acemd fit)")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = [row["functions"] for row in curve]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, unit in ((axes[0], "E", "meV/atom"), (axes[1], "F", "meV/Å")):
        for subset, style in (("train", "o-"), ("test", "s--")):
            ax.plot(n, [row[f"{subset}_{key}"] for row in curve], style, label=subset)
        ax.set_xlabel("number of functions")
        ax.set_ylabel(f"RMSE {'energy' if key == 'E' else 'force components'} ({unit})")
        ax.set_yscale("log")
        ax.legend()
    fig.suptitle(f"learning curve: {Path(metrics.get('potential', args.metrics)).name}")
    fig.tight_layout()
    out = args.output or args.metrics.with_name(args.metrics.stem + "_learning_curve.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    print(f"{'functions':>9} {'train E':>9} {'train F':>9} {'test E':>9} {'test F':>9}")
    for row in curve:
        print(f"{row['functions']:9d} {row['train_E']:9.3f} {row['train_F']:9.3f} {row['test_E']:9.3f} "
              f"{row['test_F']:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
