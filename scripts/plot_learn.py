#!/usr/bin/env python
"""Plots of an ``acemd learn`` run from its report.yaml: fit errors, dataset size and labels, and the
max extrapolation grade of every exploration, per iteration (the figure ``acemd learn`` writes as
report.png when matplotlib is installed).

    python scripts/plot_learn.py runs/learn_cu_emt/report.yaml [-o learn.png]
"""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", help="report.yaml of an acemd learn run")
    p.add_argument("-o", "--output", help="image file (default: report.png next to the report)")
    args = p.parse_args(argv)
    import yaml
    from acemd.learn.report import plot_report
    path = Path(args.report)
    try:
        report = yaml.safe_load(path.read_text())
        if not isinstance(report, dict) or "history" not in report:
            raise ValueError("not an acemd learn report (no history)")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"plot_learn.py: error: {path}: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output) if args.output else path.with_name("report.png")
    plot_report(report, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
