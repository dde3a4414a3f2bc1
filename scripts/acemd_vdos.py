#!/usr/bin/env python
"""Velocity autocorrelation function and vibrational density of states of an acemd H5MD
trajectory (needs the `velocity` field, frames written often: Nyquist 1/(2 dt)).

    python scripts/acemd_vdos.py runs/md.h5 [--max-lag 500] [--temperature 300]
"""
import sys

from acemd.analysis import vdos
from acemd.analysis.cli import add_frame_options, float_above, int_at_least, output_prefix, parser, run
from acemd.analysis.table import write_table
from acemd.analysis.trajectory import Trajectory, parse_frames


def main(argv=None):
    p = parser("acemd_vdos", "Mass-weighted VACF C(t) and VDOS g(nu), normalised so that the integral of "
               "g is the number of degrees of freedom (3N-3 at the kinetic temperature).",
               "H5MD trajectory with the 'velocity' field")
    p.add_argument("--max-lag", type=int_at_least(1, "the largest lag in frames"), default=None, metavar="FRAMES",
                   help="largest lag of C(t) in selected frames (default: half the selection); "
                        "the frequency resolution is 1/(2 max_lag dt)")
    p.add_argument("--temperature", type=float_above(0.0, "the temperature in K"), default=None, metavar="K",
                   help="temperature of the normalisation (default: kinetic temperature of the frames, 3N-3 dof)")
    add_frame_options(p)
    args = p.parse_args(argv)
    prefix = output_prefix(args, "_vdos")
    with Trajectory(args.input) as traj:
        frames = parse_frames(args.frames, traj.n_frames, args.every)
        res = vdos.compute_vdos(traj, frames, args.max_lag, args.temperature)
    integral = vdos.integral(res)
    comments = [f"source: {args.input}, {res.n_frames} frames, {res.n_atoms} atoms",
                f"T = {res.temperature:.6g} K (kinetic temperature of the frames {res.kinetic_temperature:.6g} K)",
                f"integral of vdos = {integral:.8g} (3N-3 = {3 * res.n_atoms - 3})",
                "vacf = sum_i m_i <v_i(0).v_i(t)> (eV); vdos in 1/THz"] + [f"warning: {w}" for w in res.warnings]
    table = write_table(prefix.with_suffix(".csv"), [
        ("lag_time", "ps", res.lag_time), ("vacf", "eV", res.vacf), ("vacf_normalized", None, res.vacf / res.vacf[0]),
        ("frequency", "THz", res.frequency), ("vdos", "THz^-1", res.vdos)], comments)
    print(comments[1])
    print(comments[2])
    print(f"table: {table}", flush=True)
    for line in res.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if not args.no_plot:
        print(f"plot: {vdos.plot(res, prefix.with_suffix('.png'), str(args.input))}")


if __name__ == "__main__":
    sys.exit(run(main))
