#!/usr/bin/env python
"""Radial distribution functions (total and per species pair) and coordination numbers of an
acemd H5MD trajectory, computed with freud, streamed frame by frame.

    python scripts/acemd_rdf.py runs/md.h5 [--r-max 8] [--bins 200] [--frames 100: --every 5]
"""
import sys

from acemd.analysis import rdf
from acemd.analysis.cli import (add_frame_options, add_threads_option, float_above, int_at_least, output_prefix,
                                parser, run)
from acemd.analysis.neighbors import set_threads
from acemd.analysis.table import write_table
from acemd.analysis.trajectory import Trajectory, parse_frames


def main(argv=None):
    p = parser("acemd_rdf", "RDF g(r), total and partial, with running coordination numbers n(r) "
               "and the neighbour shells (freud).", "H5MD trajectory ([trajectory].file)")
    p.add_argument("--r-max", type=float_above(0.0, "the largest distance in Å"), default=None,
                   help=f"largest distance (Å); default min({rdf.DEFAULT_R_MAX:g}, half the smallest cell width); "
                        "the cost grows as r_max^3")
    p.add_argument("--r-min", type=float_above(0.0, "the smallest distance in Å", inclusive=True), default=0.0,
                   help="smallest distance (Å)")
    p.add_argument("--bins", type=int_at_least(1, "the number of bins"), default=200, help="number of bins")
    p.add_argument("--shells", type=int_at_least(0, "the number of shells"), default=4,
                   help="neighbour shells to report")
    add_frame_options(p)
    add_threads_option(p)
    args = p.parse_args(argv)
    if args.r_max is not None and args.r_min >= args.r_max:
        p.error(f"--r-min {args.r_min:g} Å must be below --r-max {args.r_max:g} Å")
    prefix = output_prefix(args, "_rdf")
    set_threads(args.threads)
    with Trajectory(args.input) as traj:
        frames = parse_frames(args.frames, traj.n_frames, args.every)
        res = rdf.compute_rdf(traj, frames, args.r_max, args.bins, args.r_min)
        t0, t1 = traj.times()[frames[[0, -1]]]
    shells = rdf.coordination_shells(res.r, res.g["total"], res.n["total"], res.r_edges, args.shells)
    cols = [("r", "Angstrom", res.r)]
    cols += [(f"g_{k}", None, v) for k, v in res.g.items()]
    cols += [(f"n_{k}", None, v) for k, v in res.n.items()]
    comments = [f"source: {args.input}, {res.n_frames} frames, t = {t0:g} .. {t1:g} ps",
                "r: bin centre (Angstrom); g_X-Y: partial RDF; n_X-Y: mean number of Y atoms within the "
                "bin's outer edge of an X atom (n_total: any atom around any atom)"]
    comments += [f"shell {i + 1}: peak {s[0]:.4f} Angstrom, {s[1]:.4f}..{s[2]:.4f} Angstrom, "
                 f"coordination {s[3]:.4f}" for i, s in enumerate(shells)]
    table = write_table(prefix.with_suffix(".csv"), cols, comments)
    for i, s in enumerate(shells):
        print(f"shell {i + 1}: peak at {s[0]:.3f} Å, up to {s[2]:.3f} Å: coordination number {s[3]:.3f}")
    print(f"table: {table}")
    if not args.no_plot:
        print(f"plot: {rdf.plot(res, shells, prefix.with_suffix('.png'), f'{args.input} ({res.n_frames} frames)')}")


if __name__ == "__main__":
    sys.exit(run(main))
