#!/usr/bin/env python
"""Histogram of the extrapolation grade gamma over a run: per-atom `gamma` of an H5MD trajectory,
its `max_gamma` observable, or the MaxGamma column of a thermo log.

    python scripts/acemd_gamma.py runs/md.h5 [--bins 50] [--linear] [--thresholds 1,5,25]
"""
import sys

from acemd.analysis import gamma
from acemd.analysis.cli import int_at_least, output_prefix, parser, run
from acemd.analysis.errors import AnalysisInputError
from acemd.analysis.table import write_table
from acemd.analysis.trajectory import Trajectory, is_hdf5, parse_frames


def main(argv=None):
    p = parser("acemd_gamma", "Histogram of the extrapolation grade (dimensionless) and the fraction "
               "above each threshold.", "H5MD trajectory (gamma field or max_gamma) or thermo log (MaxGamma)")
    p.add_argument("--source", choices=("auto", "atoms", "max"), default="auto",
                   help="trajectory: per-atom gamma ('atoms') or the per-frame maximum ('max')")
    p.add_argument("--bins", type=int_at_least(1, "the number of bins"), default=50, help="number of bins")
    p.add_argument("--linear", action="store_true", help="linear bins (default logarithmic)")
    p.add_argument("--thresholds", default="1,5,25", help="comma list of gamma thresholds to report")
    p.add_argument("--frames", default=None, help="trajectory frames (start:stop[:step] or a list)")
    args = p.parse_args(argv)
    try:
        thresholds = [float(x) for x in args.thresholds.split(",") if x.strip()]
        if not all(t >= 0 and t < float("inf") for t in thresholds):
            raise ValueError
    except ValueError:
        p.error(f"--thresholds {args.thresholds!r}: expected finite numbers >= 0 separated by commas")
    prefix = output_prefix(args, "_gamma")
    frames = None
    if is_hdf5(args.input):
        if args.frames is not None:
            with Trajectory(args.input) as traj:
                frames = parse_frames(args.frames, traj.n_frames)
    elif args.frames is not None or args.source != "auto":
        option = "--frames" if args.frames is not None else f"--source {args.source}"
        raise AnalysisInputError(f"{option}: applies to an H5MD trajectory; {args.input} is read as a thermo "
                                 "log (every MaxGamma row): leave the option out")
    h = gamma.gamma_histogram(args.input, frames, args.bins, not args.linear, thresholds, args.source)
    comments = [f"source: {args.input}: {h.what}, {h.n_values} values, max gamma {h.maximum:.6g}",
                "gamma is dimensionless; count: values in [gamma_lo, gamma_hi)"]
    comments += [f"above {t:g}: {100 * f:.6g} %" for t, f in h.above.items()]
    table = write_table(prefix.with_suffix(".csv"), [
        ("gamma_lo", None, h.edges[:-1]), ("gamma_hi", None, h.edges[1:]), ("count", None, h.counts),
        ("fraction", None, h.counts / max(1, h.n_values))], comments)
    print(comments[0])
    for line in comments[2:]:
        print(line)
    print(f"table: {table}")
    if not args.no_plot:
        print(f"plot: {gamma.plot(h, prefix.with_suffix('.png'), str(args.input))}")


if __name__ == "__main__":
    sys.exit(run(main))
