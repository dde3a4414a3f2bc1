"""Thermo log: header with units, aligned rows loadable by numpy, progress and summary
lines, restart segments, read_thermo round trip."""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.io.thermo import ThermoLog, read_thermo

COMM = MPI.COMM_SELF
COLUMNS = [("Step", "", "{:d}"), ("Time", "ps", "{:.6f}"), ("Temp", "K", "{:.4f}"),
           ("PotEng", "eV", "{:.8f}"), ("KinEng", "eV", "{:.8f}"), ("TotEng", "eV", "{:.8f}"),
           ("Press", "bar", "{:.4f}"), ("Volume", "A^3", "{:.4f}"), ("Conserved", "eV", "{:.8f}")]
DT = 0.002


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def values(step, rng):
    pe = -350.0 + rng.normal()
    ke = 4.0 + rng.random()
    return {"Time": step * DT, "Temp": 300 + 10 * rng.normal(), "PotEng": pe, "KinEng": ke,
            "TotEng": pe + ke, "Press": 1e4 * rng.normal(), "Volume": 1234.5 + rng.random(),
            "Conserved": pe + ke + 1e-6}


def run_log(path, steps, clock, stream, rng, per_step_s=0.01, **kw):
    log = ThermoLog(COMM, COLUMNS, log_path=path, stream=stream, clock=clock, **kw)
    written = {}
    for s in steps:
        v = values(s, rng)
        written[s] = v
        log.row(s, v)
        clock.t += per_step_s * 100
    return log, written


def test_table_round_trip_header_units_and_loadtxt(tmp_path):
    path = tmp_path / "thermo.log"
    stream = io.StringIO()
    rng = np.random.default_rng(0)
    clock = FakeClock()
    log, written = run_log(path, range(0, 1001, 100), clock, stream, rng, total_steps=1000,
                           every=100, preamble=["acemd test", "units metal"], progress_every_s=1e9)
    log.close(extra=["bye"])
    text = path.read_text()
    assert text == stream.getvalue()          # same lines on stdout and in the file
    lines = text.splitlines()
    header = next(l for l in lines if l.startswith("#") and "Step" in l)
    assert header.split()[1:] == ["Step", "Time[ps]", "Temp[K]", "PotEng[eV]", "KinEng[eV]",
                                  "TotEng[eV]", "Press[bar]", "Volume[A^3]", "Conserved[eV]"]
    assert lines[0] == "# info: acemd test"
    rows = [l for l in lines if not l.startswith("#")]
    assert len(rows) == 11
    # aligned: every column ends at the same character position as its header label
    ends = [i for i in range(2, len(header)) if header[i - 1] != " " and (i == len(header) or header[i] == " ")]
    for row in rows:
        assert len(row) == len(header)
        assert all(row[e - 1] != " " and (e == len(row) or row[e] == " ") for e in ends)
    table = np.loadtxt(path)                  # comment lines start with '#'
    assert table.shape == (11, 9)
    data, units = read_thermo(path, with_units=True)
    assert list(data) == [c[0] for c in COLUMNS]
    assert units["Temp"] == "K" and units["Step"] == "" and units["Volume"] == "A^3"
    assert data["Step"].dtype == np.int64
    np.testing.assert_array_equal(data["Step"], np.arange(0, 1001, 100))
    np.testing.assert_array_equal(table[:, 0], data["Step"])
    for name, _, _ in COLUMNS[1:]:
        np.testing.assert_allclose(data[name], [written[s][name] for s in data["Step"]],
                                   rtol=1e-7, atol=1e-4, err_msg=name)
    summary = [l for l in lines if l.startswith("# summary:")]
    assert len(summary) == 1
    # 1000 steps in 10 s of fake wall time: 100 steps/s; dt 2 fs -> 17.28 ns/day
    assert "1000 steps" in summary[0] and "100 steps/s" in summary[0] and "17.28 ns/day" in summary[0]
    assert lines[-1] == "# info: bye"


def test_progress_lines(tmp_path):
    stream = io.StringIO()
    clock = FakeClock()
    rng = np.random.default_rng(1)
    log, _ = run_log(None, range(0, 501, 100), clock, stream, rng, per_step_s=0.02,
                     total_steps=1000, progress_every_s=3.0)
    log.close()
    prog = [l for l in stream.getvalue().splitlines() if l.startswith("# progress:")]
    # rows every 2 s of wall time, progress at most every 3 s -> after steps 200 and 400
    assert len(prog) == 2
    first = prog[0]
    assert "20.0%" in first and "step 200/1000" in first and "elapsed 00:00:04" in first
    assert "50 steps/s" in first and "8.64 ns/day" in first and "ETA 00:00:16" in first
    assert stream.getvalue().count("#") >= 4


def test_progress_line_on_last_step_and_timestep_option():
    stream = io.StringIO()
    clock = FakeClock()
    log = ThermoLog(COMM, [("Step", "", "d"), ("Temp", "K", ".2f")], stream=stream, clock=clock,
                    total_steps=20, timestep_ps=0.001, progress_every_s=1e9)
    log.row(0, {"Temp": 1.0})
    clock.t += 2.0
    log.row(20, {"Temp": 2.0})        # the final step always reports progress
    log.close()
    out = stream.getvalue()
    assert "# progress: 100.0% | step 20/20" in out and "0.864 ns/day" in out and "ETA 00:00:00" in out


def test_restart_append_merges_segments(tmp_path):
    path = tmp_path / "thermo.log"
    rng = np.random.default_rng(2)
    clock = FakeClock()
    log, first = run_log(path, range(0, 501, 100), clock, None, rng, total_steps=1000)
    log.close()            # (a killed run would not even get here)
    # restart from the checkpoint at step 300: rows 400, 500 are recomputed
    log, second = run_log(path, range(300, 1001, 100), clock, None, rng, total_steps=1000,
                          start_step=300, append=True, preamble=["restart from step 300"])
    log.close()
    data = read_thermo(path)
    np.testing.assert_array_equal(data["Step"], np.arange(0, 1001, 100))
    expect = [first[s]["Temp"] if s < 300 else second[s]["Temp"] for s in data["Step"]]
    np.testing.assert_allclose(data["Temp"], expect, atol=1e-4)
    assert "# info: starting at step 300" in path.read_text()


def test_step_filled_from_argument_and_errors(tmp_path):
    stream = io.StringIO()
    log = ThermoLog(COMM, [("Step", "", "{:d}"), ("E", "eV", "%.3f")], stream=stream)
    log.row(7, {"E": 1.23456})
    assert stream.getvalue().splitlines()[-1].split() == ["7", "1.235"]
    with pytest.raises(KeyError, match="no value for column 'E'"):
        log.row(8, {})
    with pytest.raises(ValueError, match="cannot format"):
        log.row(8, {"E": "abc"})
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="after close"):
        log.row(9, {"E": 1.0})
    with pytest.raises(ValueError, match="must be a word"):
        ThermoLog(COMM, [("Pot Eng", "eV", ".3f")], stream=None)
    with pytest.raises(ValueError, match="bad column format"):
        ThermoLog(COMM, [("E", "eV", "{:q}")], stream=None)
    with pytest.raises(ValueError, match="appears twice"):
        ThermoLog(COMM, [("E", "eV", ".3f"), ("E", "eV", ".3f")], stream=None)
    with pytest.raises(FileNotFoundError, match="thermo log not found"):
        read_thermo(tmp_path / "missing.log")
    bad = tmp_path / "bad.log"
    bad.write_text("# Step E[eV]\n 1 2 3\n")
    with pytest.raises(ValueError, match="3 values, header has 2"):
        read_thermo(bad)
