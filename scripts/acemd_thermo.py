#!/usr/bin/env python
"""Thermodynamic averages of an acemd run (thermo log or H5MD observables): table + plot.

    python scripts/acemd_thermo.py runs/md.log [--equilibration auto|PS] [--columns Temp,Press]
"""
import sys

import numpy as np

from acemd.analysis import thermo
from acemd.analysis.cli import int_at_least, output_prefix, parser, run
from acemd.analysis.table import write_table


def main(argv=None):
    p = parser("acemd_thermo", "Means, block-averaged standard errors and statistical inefficiencies "
               "of the thermo columns after an equilibration time; time-series plot.",
               "thermo log ([thermo].file) or H5MD trajectory with /observables")
    p.add_argument("--equilibration", default="auto", metavar="PS|auto",
                   help="time (ps) after which samples count; 'auto': detected (pymbar) on --detect-column")
    p.add_argument("--detect-column", default="PotEng", help="column the automatic detection looks at")
    p.add_argument("--columns", default=None,
                   help=f"comma list of columns (default: those of {','.join(thermo.DEFAULT_COLUMNS)} present)")
    p.add_argument("--blocks", type=int_at_least(2, "the number of blocks of the standard error"), default=5,
                   help="number of blocks of the standard error")
    args = p.parse_args(argv)
    cols = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    if args.columns is not None and not cols:
        p.error(f"--columns {args.columns!r}: give column names separated by commas, e.g. Temp,Press")
    prefix = output_prefix(args, "_thermo")
    data, units = thermo.load_series(args.input)
    if cols:
        missing = [c for c in cols if c not in data]
        if missing:
            raise thermo.AnalysisInputError(f"{args.input}: no column(s) {', '.join(missing)} "
                                            f"(have {', '.join(data)})")
    t_eq, how, stats, cols = thermo.summarize(data, units, cols, args.equilibration, args.detect_column,
                                              args.blocks)
    table = write_table(prefix.with_suffix(".csv"), [
        ("column", None, np.array([s.name for s in stats])), ("unit", None, np.array([s.unit for s in stats])),
        ("mean", None, np.array([s.mean for s in stats])), ("std", None, np.array([s.std for s in stats])),
        ("sem_block", None, np.array([s.sem_block for s in stats])),
        ("stat_inefficiency", None, np.array([s.g for s in stats])),
        ("n_samples", None, np.array([s.n_samples for s in stats])),
        ("n_independent", None, np.array([s.n_independent for s in stats]))],
        comments=[f"source: {args.input}", f"equilibration time: {t_eq:g} ps ({how})",
                  f"standard error from {args.blocks} blocks; statistical inefficiency from pymbar",
                  "each row's values are in the unit named in its 'unit' column"])
    print(f"equilibration: {t_eq:g} ps ({how})")
    for s in stats:
        print(f"{s.name:>10s} = {s.mean:.8g} ± {s.sem_block:.3g} {s.unit}  (g = {s.g:.3g}, "
              f"{s.n_samples} samples)")
    print(f"table: {table}")
    if not args.no_plot:
        print(f"plot: {thermo.plot(data, units, cols, t_eq, stats, prefix.with_suffix('.png'))}")


if __name__ == "__main__":
    sys.exit(run(main))
