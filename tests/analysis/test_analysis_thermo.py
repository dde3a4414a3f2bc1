"""acemd_thermo.py on a real (restarted) run: means equal numpy's on the same rows; the
statistics functions against analytic results on synthetic series."""
import numpy as np
import pytest

from acemd.analysis import thermo
from acemd.analysis.table import read_table
from acemd.io.thermo import read_thermo

from analysis_helpers import is_png, run_script


def test_thermo_script_means_equal_numpy(crystal, tmp_path):
    prefix = tmp_path / "th"
    assert run_script("acemd_thermo", crystal.log, "-o", prefix, "--equilibration", "0.2") == 0
    table, units = read_table(prefix.with_suffix(".csv"), with_units=True)
    assert is_png(prefix.with_suffix(".png"))
    data = read_thermo(crystal.log)
    # the log of the run and its restart is one series of steps 0, 5, ..., 500
    assert np.array_equal(data["Step"], np.arange(0, 501, 5))
    keep = data["Time"] >= 0.2 - 1e-12
    for row, name in enumerate(table["column"]):
        ref = data[name][keep]
        assert table["mean"][row] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-9), name
        assert table["std"][row] == pytest.approx(ref.std(ddof=1), rel=1e-6, abs=1e-9), name
        assert table["n_samples"][row] == keep.sum()
    assert list(table["column"]) == ["Temp", "Press", "PotEng", "TotEng", "Volume", "Conserved"]
    assert list(table["unit"]) == ["K", "bar", "eV", "eV", "A^3", "eV"]


def test_thermo_from_h5md_observables(crystal, tmp_path):
    prefix = tmp_path / "thh"
    assert run_script("acemd_thermo", crystal.h5, "-o", prefix, "--equilibration", "0", "--no-plot") == 0
    table = read_table(prefix.with_suffix(".csv"))
    import h5py
    with h5py.File(crystal.h5, "r") as f:
        temp = f["observables/temperature/value"][:]
    row = list(table["column"]).index("Temp")
    assert table["mean"][row] == pytest.approx(temp.mean(), rel=1e-12)
    assert table["n_samples"][row] == crystal.n_frames
    assert not prefix.with_suffix(".png").exists()


def test_statistical_inefficiency_of_ar1_process():
    """AR(1) x_t = phi x_{t-1} + noise has g = (1 + phi)/(1 - phi)."""
    rng = np.random.default_rng(1)
    phi, n = 0.8, 200_000
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    assert thermo.statistical_inefficiency(x) == pytest.approx((1 + phi) / (1 - phi), rel=0.1)
    # block standard error: sqrt(g var / n) for blocks much longer than the correlation time
    se = thermo.block_standard_error(x, 20)
    assert se == pytest.approx(np.sqrt(9.0 * x.var() / n), rel=0.4)


def test_block_error_and_inefficiency_of_white_noise():
    x = np.random.default_rng(2).normal(3.0, 2.0, size=50_000)
    assert thermo.statistical_inefficiency(x) == pytest.approx(1.0, abs=0.1)
    errs = [thermo.block_standard_error(np.random.default_rng(s).normal(size=5000), 10) for s in range(40)]
    assert np.mean(errs) == pytest.approx(1 / np.sqrt(5000), rel=0.15)


def test_equilibration_detected_after_a_relaxation():
    """A series relaxing exponentially (tau = 60 samples, from 10 sigma), then stationary noise: t0 falls
    where the drift has sunk into the noise (between 1.7 and 12 tau), and the mean after t0 is unbiased."""
    rng = np.random.default_rng(3)
    t = np.arange(3000)
    x = 10.0 * np.exp(-t / 60.0) + rng.normal(size=t.size)
    t0 = thermo.detect_equilibration(x)
    assert 100 <= t0 <= 750
    assert abs(x[t0:].mean()) < 3 * thermo.block_standard_error(x[t0:], 10) + 0.05
    assert x.mean() > 0.15          # the whole series is biased by the drift
    data = {"Time": t * 0.01, "PotEng": x}
    t_eq, how = thermo.equilibration_time(data, "auto", "PotEng")
    assert t_eq == pytest.approx(t0 * 0.01) and "pymbar" in how


def test_thermo_with_max_gamma_column(gamma_run, tmp_path):
    prefix = tmp_path / "thg"
    assert run_script("acemd_thermo", gamma_run.log, "-o", prefix, "--equilibration", "0") == 0
    assert is_png(prefix.with_suffix(".png"))
    table = read_table(prefix.with_suffix(".csv"))
    assert list(table["column"])[-1] == "MaxGamma"
    assert table["mean"][-1] == pytest.approx(read_thermo(gamma_run.log)["MaxGamma"].mean(), rel=1e-12)
