#!/usr/bin/env python
"""Mean-square displacement per species (unwrapped with the `image` field) and the
self-diffusion coefficient with its block error, streamed over an acemd H5MD trajectory.

    python scripts/acemd_msd.py runs/md.h5 [--max-lag 200] [--fit-range 0.5,2.0] [--frames 100:]
"""
import sys

import numpy as np

from acemd.analysis import msd
from acemd.analysis.cli import add_frame_options, int_at_least, output_prefix, parser, run
from acemd.analysis.table import write_table
from acemd.analysis.trajectory import Trajectory, parse_frames


def main(argv=None):
    p = parser("acemd_msd", "MSD(t) per species and the diffusion coefficient D from MSD = 6 D t + c, "
               "with a standard error from blocks of time origins.",
               "H5MD trajectory with the 'image' field")
    p.add_argument("--max-lag", type=int_at_least(1, "the largest lag in frames"), default=None, metavar="FRAMES",
                   help="largest lag in selected frames (default: half the selection)")
    p.add_argument("--origin-every", type=int_at_least(1, "the frames between time origins"), default=None,
                   metavar="FRAMES",
                   help="frames between time origins (default: max-lag/50, at least 1)")
    p.add_argument("--fit-range", default=None, metavar="T0,T1",
                   help="lag-time window (ps) of the linear fit (default: 20-80 %% of the largest lag)")
    p.add_argument("--blocks", type=int_at_least(2, "the number of blocks of the error of D"), default=5,
                   help="blocks of time origins for the error of D")
    add_frame_options(p)
    args = p.parse_args(argv)
    fit_range = None
    if args.fit_range is not None:
        try:
            fit_range = tuple(float(x) for x in args.fit_range.split(","))
            if not (len(fit_range) == 2 and 0.0 <= fit_range[0] < fit_range[1] < float("inf")):
                raise ValueError
        except ValueError:
            p.error(f"--fit-range {args.fit_range!r}: expected T0,T1 in ps with 0 <= T0 < T1")
    prefix = output_prefix(args, "_msd")
    with Trajectory(args.input) as traj:
        frames = parse_frames(args.frames, traj.n_frames, args.every)
        res = msd.compute_msd(traj, frames, args.max_lag, args.origin_every, args.blocks)
    msd.check_fit_window(res, fit_range)
    fits, window = msd.diffusion(res, fit_range)
    cols = [("lag_time", "ps", res.lag_time)] + [(f"msd_{k}", "Angstrom^2", v) for k, v in res.msd.items()]
    cols.append(("n_origins", None, res.counts.astype(np.int64)))
    comments = [f"source: {args.input}, {len(frames)} frames, unwrapped with the image field",
                f"fit window {window[0]:g}..{window[1]:g} ps, MSD = 6 D t + c, error from {args.blocks} "
                "blocks of time origins"]
    for k, (d, err, _) in fits.items():
        comments.append(f"D_{k} = {d:.6g} +- {err:.3g} Angstrom^2/ps = {d * msd.A2_PER_PS_TO_CM2_PER_S:.6g} "
                        f"+- {err * msd.A2_PER_PS_TO_CM2_PER_S:.3g} cm^2/s")
    table = write_table(prefix.with_suffix(".csv"), cols, comments)
    for line in comments[2:]:
        print(line)
    print(f"table: {table}")
    if not args.no_plot:
        print(f"plot: {msd.plot(res, fits, window, prefix.with_suffix('.png'), str(args.input))}")


if __name__ == "__main__":
    sys.exit(run(main))
