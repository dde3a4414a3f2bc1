#!/usr/bin/env python
"""Per-frame fractions of fcc, hcp, bcc, icosahedral and other atoms (adaptive common-neighbour
analysis, pyscal3) along an acemd H5MD trajectory: tells whether a crystal melted or transformed.

    python scripts/acemd_structure.py runs/md.h5 [--every 10]
"""
import sys

from acemd.analysis import structure
from acemd.analysis.cli import add_frame_options, add_threads_option, output_prefix, parser, run
from acemd.analysis.neighbors import set_threads
from acemd.analysis.table import write_table
from acemd.analysis.trajectory import Trajectory, parse_frames


def main(argv=None):
    p = parser("acemd_structure", "Adaptive CNA (fcc/hcp/bcc/ico/other) per frame; fractions in percent.",
               "H5MD trajectory ([trajectory].file)")
    add_frame_options(p)
    add_threads_option(p)
    args = p.parse_args(argv)
    prefix = output_prefix(args, "_structure")
    set_threads(args.threads)
    with Trajectory(args.input) as traj:
        frames = parse_frames(args.frames, traj.n_frames, args.every)
        res = structure.compute_structure(traj, frames)
    cols = [("step", None, res.step), ("time", "ps", res.time)]
    cols += [(t, "%", 100.0 * res.fractions[t]) for t in structure.TYPES]
    table = write_table(prefix.with_suffix(".csv"), cols,
                        [f"source: {args.input}, {res.n_atoms} atoms, {len(res.time)} frames",
                         "adaptive common-neighbour analysis (Stukowski 2012) by pyscal3; percent of atoms"])
    last = ", ".join(f"{t} {100 * res.fractions[t][-1]:.1f} %" for t in structure.TYPES)
    first = ", ".join(f"{t} {100 * res.fractions[t][0]:.1f} %" for t in structure.TYPES)
    print(f"first frame (t = {res.time[0]:g} ps): {first}")
    print(f"last frame (t = {res.time[-1]:g} ps): {last}")
    print(f"table: {table}")
    if not args.no_plot:
        print(f"plot: {structure.plot(res, prefix.with_suffix('.png'), str(args.input))}")


if __name__ == "__main__":
    sys.exit(run(main))
