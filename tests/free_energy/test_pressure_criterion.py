"""The NPT stage's pressure criterion: |<P> - P| < max(pressure_tolerance, 3 SE(<P>)), SE from
block averages.  Synthetic AR(1) pressure series have a known standard error of the mean,
sigma sqrt((1 + phi) / ((1 - phi) n)), against which the block estimate is checked."""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.free_energy.solid import Progress, equilibrate_volume, pressure_convergence
from acemd.integrators import StochasticCellRescaling


def _ar1(n, phi, sigma, seed):
    """AR(1) series with stationary standard deviation ``sigma`` and lag-1 correlation ``phi``."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sigma * np.sqrt(1.0 - phi ** 2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_block_standard_error_matches_the_ar1_value():
    n, phi, sigma = 4000, 0.9, 5000.0                      # 5 kbar scatter, correlation time ~ 19 samples
    exact = sigma * np.sqrt((1 + phi) / ((1 - phi) * n))
    errors = [pressure_convergence(_ar1(n, phi, sigma, s), 0.0, 200.0, min_block_samples=200)["standard_error_bar"]
              for s in range(40)]
    print(f"\nAR(1) SE of the mean: block estimate {np.mean(errors):.1f} (rms over 40 series), exact {exact:.1f} bar")
    assert np.sqrt(np.mean(np.square(errors))) == pytest.approx(exact, rel=0.2)


def test_a_mean_within_three_standard_errors_is_accepted_beyond_the_tolerance():
    p = _ar1(4000, 0.9, 5000.0, 1)
    p += 0.0 - p.mean() + 400.0                             # 400 bar off: outside 200 bar, inside 3 SE (~1 kbar)
    res = pressure_convergence(p, 0.0, 200.0, min_block_samples=200)
    print(f"\n{res}")
    assert res["converged"] and res["accepted_deviation_bar"] == pytest.approx(3 * res["standard_error_bar"])
    assert res["standard_error_bar"] > 200.0
    off = pressure_convergence(p + 5000.0, 0.0, 200.0, min_block_samples=200)
    assert not off["converged"] and off["standard_error_bar"] == pytest.approx(res["standard_error_bar"])


def test_quiet_series_uses_the_tolerance_and_too_few_samples_give_no_error():
    quiet = 150.0 + _ar1(1000, 0.5, 10.0, 2)               # SE ~ 0.5 bar: the tolerance rules
    res = pressure_convergence(quiet, 0.0, 200.0, min_block_samples=10)
    assert res["converged"] and res["accepted_deviation_bar"] == 200.0
    assert not pressure_convergence(quiet + 100.0, 0.0, 200.0, min_block_samples=10)["converged"]
    short = pressure_convergence(_ar1(30, 0.9, 5000.0, 3) + 1000.0, 0.0, 200.0, min_block_samples=20)
    assert np.isnan(short["standard_error_bar"]) and short["error_blocks"] == 1
    assert short["accepted_deviation_bar"] == 200.0 and not short["converged"]


def test_small_cell_npt_reports_the_error_and_accepts_by_it(tmp_path):
    """32 Cu atoms (Cu-I.yace) at 1000 K: block means scatter by kilobars; the stage reports the
    standard error and the accepted deviation max(200 bar, 3 SE) of the running mean."""
    from acemd.config import parse_config
    from acemd.drivers.free_energy import FreeEnergyRun
    from engine_helpers import POTENTIALS
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.66
repeat = [2, 2, 2]

[potential]
file = "{(POTENTIALS / 'Cu-I.yace').as_posix()}"

[free_energy]
temperature = 1000.0
timestep = 0.002
barostat_damping = 0.1
"""
    path = tmp_path / "fe.toml"
    path.write_text(text)
    run = FreeEnergyRun(parse_config(text, path), text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    sim = run.simulation
    sim.engine.state.velocities = run._thermalise(1000.0, 1) or sim.state.velocities

    def factory():
        return StochasticCellRescaling(0.002, 1000.0, 0.0, damping=0.1, barostat_damping=0.1, coupling="iso",
                                       compressibility_per_bar=1e-6, seed=3)
    cell, mean_p, converged, blocks = equilibrate_volume(sim, factory, 0.0, 1000, 6, 200.0,
                                                         Progress(lambda s: None, 6000), min_error_block_steps=100)
    last = blocks[-1]
    print(f"\n32 Cu atoms NPT: block means {[round(b['block_mean_pressure_bar']) for b in blocks]} bar, running mean "
          f"{mean_p:.0f} +- {last['standard_error_bar']:.0f} bar, accepted deviation {last['accepted_deviation_bar']:.0f}, "
          f"converged {converged} after {len(blocks)} blocks")
    assert np.isfinite(last["standard_error_bar"]) and last["standard_error_bar"] > 0
    assert last["accepted_deviation_bar"] == pytest.approx(max(200.0, 3 * last["standard_error_bar"]))
    assert converged == (abs(mean_p) < last["accepted_deviation_bar"])
    assert converged and last["accepted_deviation_bar"] > 200.0          # 3 SE, not the tolerance, decided
