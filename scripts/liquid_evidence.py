#!/usr/bin/env python
"""Is it a liquid?  Independent evidence from an MD run: diffusion, g(r), adaptive CNA, q6.

    python scripts/liquid_evidence.py --a 3.63 --temperature 2500 --steps 4000 --out ev/hot
    python scripts/liquid_evidence.py --a 3.80 --temperature 2500 --steps 2000 --out ev/melt
    python scripts/liquid_evidence.py --restart ev/melt/md.ckpt.h5 --temperature 1500 \\
        --pressure 0 --steps 4000 --out ev/npt
    python scripts/liquid_evidence.py --analyse some_trajectory.h5

Runs Langevin NVT (or, with --pressure, stochastic-cell-rescaling NPT) of an fcc cell
(or continues a checkpoint) with acemd's md driver, writing an H5MD trajectory, then
prints, for every selected frame, the volume, the mean plain q6 and the mean
Lechner-Dellago averaged q6 (freud, 12 neighbours; the liquid route's check, crystal
above acemd.free_energy.liquid.CRYSTAL_Q6BAR), the adaptive-CNA fcc/hcp/bcc fractions
(pyscal3) and the mean-square displacement from the first frame; then the diffusion
coefficient (acemd.analysis.msd, fit over 20-80 % of the largest lag) and the maxima of
g(r) over the second half (acemd.analysis.rdf): a liquid has one broad second peak and
no peaks beyond it, a crystal a split second peak (fcc: sqrt(2) and sqrt(3) d_nn).
It also averages the (unwrapped, fractional) positions over the last 1 ps: a crystal's
average is its lattice (fcc by CNA, q6 ~0.55 even when every snapshot looks disordered),
a liquid's is not.  The verdict "diffusing" needs MSD at the end > d_nn^2 and D > 0.05
A^2/ps.

Figures (Cu-PBE-core-rep, 108 atoms, 2 fs, Langevin 0.1 ps; docs/free-energy.md):
a = 3.63 A (12.0 A^3/atom), 2500 K, 8 ps: not melted (MSD flat at ~0.4 A^2, D ~ 0,
~170 kbar, no split second g(r) peak: 2.52 and 4.37 A only), yet adaptive CNA finds
1-21 % crystalline atoms per snapshot (thermal noise) and the plain q6 is 0.39-0.45;
averaged q6 0.29-0.39; its positions averaged over 1 ps are 100 % fcc (q6 0.56).  a = 3.80 A (13.7 A^3/atom), 2500 K:
diffusing within 1 ps, averaged q6 0.12-0.15.  Then NPT at 1500 K, 0 bar: 13.6-14.2
A^3/atom, D ~ 0.36 A^2/ps, averaged q6 0.14-0.16, plain q6 0.36-0.37, 0 % CNA crystal.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
POT = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.yace"

from acemd.analysis.cli import float_above, int_at_least, run  # noqa: E402  (after the path insert)

TEMPLATE = """
[structure]
lattice = "fcc"
element = "Cu"
a = {a}
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{pot}"

[velocities]
temperature = {temperature}
seed = {seed}

[md]
ensemble = "{ensemble}"
timestep = {timestep}
steps = {steps}

[thermostat]
temperature = {temperature}
damping = 0.1
{barostat}
[thermo]
every = {every}
file = "{out}/md.log"

[trajectory]
file = "{out}/md.h5"
every = {every}

[checkpoint]
file = "{out}/md.ckpt.h5"
"""


def run_md(a):
    from acemd.cli import main as acemd_main
    from acemd.io.checkpoint import read_checkpoint
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = read_checkpoint(a.restart)["step"] if a.restart else 0
    barostat = "" if a.pressure is None else (f"\n[barostat]\npressure = {a.pressure}\ndamping = 0.2\n"
                                              'coupling = "iso"\n')
    text = TEMPLATE.format(a=a.a, repeat=a.repeat, pot=Path(a.potential).resolve().as_posix(),
                           temperature=a.temperature, seed=a.seed, timestep=a.timestep, steps=start + a.steps,
                           ensemble="nvt-langevin" if a.pressure is None else "npt-crescale", barostat=barostat,
                           every=a.every, out=out.as_posix())
    path = out / "md.toml"
    path.write_text(text)
    argv = [str(path)] + (["--restart", str(Path(a.restart).resolve())] if a.restart else [])
    code = acemd_main(argv)
    if code:
        sys.exit(code)
    return out / "md.h5"


def q6_pair(cell, positions):
    """(mean plain q6, mean averaged q6), 12 nearest neighbours (freud)."""
    import freud
    box = freud.box.Box.from_matrix(cell.T)
    frac = np.linalg.solve(cell.T, positions.T).T % 1.0 - 0.5
    out = []
    for average in (False, True):
        ql = freud.order.Steinhardt(6, average=average)
        ql.compute((box, frac @ cell), neighbors={"num_neighbors": 12})
        out.append(float(np.mean(ql.particle_order)))
    return out


def analyse(h5, every_frame):
    from scipy.signal import find_peaks

    from acemd.analysis.msd import compute_msd, diffusion
    from acemd.analysis.rdf import compute_rdf
    from acemd.analysis.structure import classify_frame
    from acemd.analysis.trajectory import Trajectory
    from acemd.free_energy.liquid import CRYSTAL_Q6BAR
    from ase.data import atomic_numbers
    with Trajectory(h5) as traj:
        n = traj.n_atoms
        numbers = np.array([atomic_numbers.get(s, 0) for s in traj.symbols()])
        frames = np.arange(traj.n_frames)
        print(f"# {h5}: {n} atoms, {traj.n_frames} frames")
        print("#  time[ps]  V[A^3/atom]  q6    q6bar   fcc%   hcp%   bcc%   MSD_from_start[A^2]")
        first = None
        shown = np.unique(np.append(frames[::every_frame], frames[-1]))      # always the last frame
        for fr in traj.frames(["position", "image"], shown):
            u = fr["position"] + fr["image"].astype(float) @ fr.cell
            first = u if first is None else first
            d = u - first
            d -= d.mean(0)
            q6, q6bar = q6_pair(fr.cell, fr["position"])
            c = classify_frame(fr.cell, fr["position"], numbers)
            vol = abs(np.linalg.det(fr.cell)) / n
            print(f"  {fr.time:8.3f}  {vol:10.3f}  {q6:.3f}  {q6bar:.3f}  {100 * c['fcc'] / n:5.1f}  "
                  f"{100 * c['hcp'] / n:5.1f}  {100 * c['bcc'] / n:5.1f}  {np.mean((d * d).sum(1)):8.3f}")
        msd_end = float(np.mean((d * d).sum(1)))
        res = compute_msd(traj, frames)
        fits, (t0, t1) = diffusion(res)
        name = next(iter(fits))
        D, D_err, _ = fits[name]
        half = frames[len(frames) // 2:]
        rdf = compute_rdf(traj, half, bins=120)
        g, r = rdf.g["total"], rdf.r
        peaks, _ = find_peaks(g, prominence=0.2)
        d_nn = float(r[peaks[0]]) if len(peaks) else float("nan")
        second = [p for p in peaks if 1.25 * d_nn < r[p] < 2.1 * d_nn]
        print(f"# D = {D:.3f} +- {D_err:.3f} A^2/ps (MSD = 6 D t + c over lags {t0:.2f}-{t1:.2f} ps)")
        print("# g(r) maxima over the second half (r A: g): "
              + ", ".join(f"{r[p]:.2f}: {g[p]:.2f}" for p in peaks)
              + f"; {len(second)} maxima in the second shell ({1.25 * d_nn:.2f}-{2.1 * d_nn:.2f} A: "
              + ("split: crystal-like" if len(second) > 1 else "one broad peak: a liquid, or a crystal too hot to show its shells") + ")")
        window = frames[traj.times()[frames] >= traj.times()[frames[-1]] - 1.0 - 1e-9]
        mean_frac, cell = 0.0, None
        for fr in traj.frames(["position", "image"], window):
            mean_frac = mean_frac + np.linalg.solve(fr.cell.T, fr["position"].T).T + fr["image"]
            cell = fr.cell
        mean_pos = (mean_frac / len(window)) @ cell
        aq6, aq6bar = q6_pair(cell, mean_pos)
        c = classify_frame(cell, mean_pos, numbers)
        span = traj.times()[frames[-1]] - traj.times()[window[0]]
        print(f"# positions averaged over the last {span:.2f} ps ({len(window)} frames; a crystal's average is its "
              "lattice): "
              f"q6 {aq6:.3f}, averaged q6 {aq6bar:.3f}, fcc/hcp/bcc {100 * c['fcc'] / n:.0f}/{100 * c['hcp'] / n:.0f}/"
              f"{100 * c['bcc'] / n:.0f} %")
        diffusing = msd_end > d_nn ** 2 and D > 0.05
        print(f"# verdict: {'diffusing' if diffusing else 'NOT diffusing'} (MSD at the end {msd_end:.2f} A^2 vs "
              f"d_nn^2 = {d_nn ** 2:.2f}); last averaged q6 {q6bar:.3f} "
              f"({'crystal' if q6bar > CRYSTAL_Q6BAR else 'liquid'} by the liquid route's check, "
              f"threshold {CRYSTAL_Q6BAR})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--analyse", default=None, help="only analyse this H5MD trajectory (needs position, image)")
    ap.add_argument("--potential", default=str(POT))
    ap.add_argument("--a", type=float_above(0.0, "the lattice constant in A"), default=3.63, help="fcc lattice constant of the start (A)")
    ap.add_argument("--repeat", type=int_at_least(1, "the fcc repeat"), default=3, help="fcc repeat (4 n^3 atoms)")
    ap.add_argument("--temperature", type=float_above(0.0, "the temperature in K"), default=2500.0)
    ap.add_argument("--pressure", type=float, default=None, help="bar: NPT (npt-crescale, iso) instead of NVT")
    ap.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=2000)
    ap.add_argument("--timestep", type=float_above(0.0, "the timestep in ps"), default=0.002)
    ap.add_argument("--every", type=int_at_least(1, "the steps between frames"), default=50, help="steps between frames")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--restart", default=None, help="continue from an earlier run's md.ckpt.h5")
    ap.add_argument("--out", default="liquid_evidence")
    ap.add_argument("--print-every", type=int_at_least(1, "the frames between printed rows"), default=5, help="frames between printed rows")
    a = ap.parse_args(argv)
    h5 = Path(a.analyse) if a.analyse else run_md(a)
    analyse(h5, a.print_every)


if __name__ == "__main__":
    sys.exit(run(main))
