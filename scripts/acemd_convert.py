#!/usr/bin/env python
"""Convert an acemd H5MD trajectory to extended XYZ (ASE, OVITO) or to an ASE .traj file.

    python scripts/acemd_convert.py runs/md.h5 out.extxyz [--every 10] [--frames 100:]
    python scripts/acemd_convert.py runs/md.h5 out.traj
"""
import argparse
import sys

from acemd.analysis.cli import HelpFormatter, add_frame_options, check_output, run
from acemd.analysis.convert import check_format, convert
from acemd.analysis.trajectory import Trajectory, parse_frames


def main(argv=None):
    p = argparse.ArgumentParser(prog="acemd_convert", formatter_class=HelpFormatter,
                                description="H5MD -> extended XYZ (.extxyz/.xyz, full precision) or ASE "
                                            "trajectory (.traj), chosen by the output's extension.")
    p.add_argument("input", help="H5MD trajectory ([trajectory].file)")
    p.add_argument("output", help="output file: .extxyz, .xyz or .traj")
    add_frame_options(p)
    args = p.parse_args(argv)
    check_format(args.output)
    check_output(args.output, "output")
    with Trajectory(args.input) as traj:
        frames = parse_frames(args.frames, traj.n_frames, args.every)
        n = convert(traj, frames, args.output)
    print(f"{n} frames written to {args.output}")


if __name__ == "__main__":
    sys.exit(run(main))
