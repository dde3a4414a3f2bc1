"""Bad input to the analysis scripts: one line naming the file and what is missing, exit status 1,
no traceback (run as real commands); every script answers --help."""
import numpy as np
import pytest

from analysis_helpers import SCRIPTS, is_png, load_script, run_command, run_script

SCRIPT_NAMES = ["acemd_thermo", "acemd_rdf", "acemd_msd", "acemd_vdos", "acemd_structure",
                "acemd_convert", "acemd_gamma"]


def _one_line_error(rc, out, err, *words):
    assert rc == 1, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_msd_without_image_field(gamma_run):
    _one_line_error(*run_command("acemd_msd", gamma_run.h5), str(gamma_run.h5), "'image'",
                    "[trajectory].fields")


def test_vdos_without_velocity_field(gamma_run):
    _one_line_error(*run_command("acemd_vdos", gamma_run.h5), str(gamma_run.h5), "'velocity'")


def test_not_acemd_output(crystal, tmp_path):
    # a text file given as a trajectory, an HDF5 file that is not H5MD (the checkpoint), a binary
    # file given as a thermo log, and a missing file
    _one_line_error(*run_command("acemd_rdf", crystal.log), str(crystal.log), "not an HDF5 file")
    _one_line_error(*run_command("acemd_structure", crystal.ckpt), str(crystal.ckpt),
                    "not an acemd H5MD trajectory")
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 10)
    _one_line_error(*run_command("acemd_thermo", png), str(png), "thermo log")
    missing = tmp_path / "nothing.h5"
    _one_line_error(*run_command("acemd_convert", missing, tmp_path / "o.extxyz"), str(missing), "not found")


def test_bad_options(crystal, gamma_run, tmp_path):
    _one_line_error(*run_command("acemd_rdf", crystal.h5, "--r-max", "20"), "--r-max", "half the cell")
    _one_line_error(*run_command("acemd_convert", crystal.h5, tmp_path / "o.pdb"), "o.pdb", ".extxyz")
    _one_line_error(*run_command("acemd_msd", crystal.h5, "--frames", "5:3"), "--frames", "no frame")
    _one_line_error(*run_command("acemd_gamma", crystal.h5), str(crystal.h5), "'gamma'")


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_help(name, capsys):
    assert (SCRIPTS / f"{name}.py").exists()
    with pytest.raises(SystemExit) as exc:
        load_script(name).main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name}") and "--" in out


# --------------------------------------------------------------------------------------------------
# issue 27 (Bad 6): every script validates its options and its input file's kind, before any output


def _files(folder):
    """{name: bytes} of every file under ``folder``."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _call(name, *argv):
    """Run scripts/<name>.py in-process through its error wrapper: (status, stdout, stderr); argparse's
    usage errors end in SystemExit(2).  An exception no check caught propagates (fails the test)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = run_script(name, *argv)
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _refused(rc, err, status, *words):
    """Exit ``status``; the last stderr line is the error and names every word (option, file, fix)."""
    assert rc == status, err
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert "error: " in last, err
    for w in words:
        assert str(w) in last, (w, last)
    if status == 1:
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err


# (script, options, status, words the message must hold); FILE: the crystal's trajectory, LOG: its log
OPTION_CASES = [
    ("acemd_rdf", ["FILE", "--bins", "0"], 2, ["--bins", "at least 1", "got 0"]),
    ("acemd_rdf", ["FILE", "--r-max", "-3"], 2, ["--r-max", "above 0", "got -3"]),
    ("acemd_rdf", ["FILE", "--r-max", "nan"], 2, ["--r-max", "finite"]),
    ("acemd_rdf", ["FILE", "--r-min", "4", "--r-max", "3"], 2, ["--r-min 4", "below --r-max 3"]),
    ("acemd_rdf", ["FILE", "--r-min", "7"], 1, ["--r-min 7", "below r_max", "half the cell width"]),
    ("acemd_rdf", ["FILE", "--threads", "0"], 2, ["--threads", "at least 1"]),
    ("acemd_rdf", ["FILE", "--shells", "-1"], 2, ["--shells", "at least 0"]),
    ("acemd_thermo", ["LOG", "--blocks", "0"], 2, ["--blocks", "at least 2", "got 0"]),
    ("acemd_thermo", ["LOG", "--blocks", "1"], 2, ["--blocks", "at least 2"]),
    ("acemd_thermo", ["LOG", "--blocks", "5000", "--equilibration", "0"], 1, ["--blocks 5000", "samples",
                                                                              "use at most"]),
    ("acemd_thermo", ["LOG", "--columns", ","], 2, ["--columns", "e.g. Temp,Press"]),
    ("acemd_thermo", ["LOG", "--equilibration", "nan"], 1, ["--equilibration", "finite time"]),
    ("acemd_msd", ["FILE", "--origin-every", "0"], 2, ["--origin-every", "at least 1"]),
    ("acemd_msd", ["FILE", "--blocks", "0"], 2, ["--blocks", "at least 2"]),
    ("acemd_msd", ["FILE", "--max-lag", "0"], 2, ["--max-lag", "at least 1"]),
    ("acemd_msd", ["FILE", "--fit-range", "2,1"], 2, ["--fit-range", "T0 < T1"]),
    ("acemd_msd", ["FILE", "--fit-range", "100,200"], 1, ["--fit-range 100,200", "holds 0 lag",
                                                          "window inside the lags"]),
    ("acemd_msd", ["FILE", "--frames", "0,1"], 1, ["default fit window", "more frames"]),
    ("acemd_vdos", ["FILE", "--temperature", "-5"], 2, ["--temperature", "above 0"]),
    ("acemd_vdos", ["FILE", "--max-lag", "0"], 2, ["--max-lag", "at least 1"]),
    ("acemd_vdos", ["FILE", "--max-lag", "500"], 1, ["--max-lag 500", "between 1 and 100"]),
    ("acemd_vdos", ["FILE", "--frames", "0"], 1, ["VACF/VDOS needs at least 2 frames", "--frames"]),
    ("acemd_structure", ["FILE", "--every", "0"], 2, ["--every", "at least 1"]),
    ("acemd_gamma", ["LOG", "--bins", "0"], 2, ["--bins", "at least 1"]),
    ("acemd_gamma", ["LOG", "--thresholds", "1,x"], 2, ["--thresholds", "numbers"]),
    ("acemd_gamma", ["LOG", "--frames", "1:"], 1, ["--frames", "thermo log", "leave the option out"]),
]


@pytest.mark.parametrize("name, argv, status, words", OPTION_CASES,
                         ids=[f"{c[0]}{''.join(c[1][1:])}" for c in OPTION_CASES])
def test_bad_option_values_are_refused_before_any_output(crystal, tmp_path, name, argv, status, words):
    (tmp_path / "out.csv").write_text("earlier table\n")
    (tmp_path / "out.png").write_bytes(b"earlier plot")
    before, inputs = _files(tmp_path), _files(crystal.folder)
    argv = [{"FILE": crystal.h5, "LOG": crystal.log}.get(a, a) for a in argv] + ["-o", tmp_path / "out"]
    rc, out, err = _call(name, *argv)
    _refused(rc, err, status, *words)
    assert _files(tmp_path) == before and _files(crystal.folder) == inputs


def test_output_paths_are_checked_before_the_analysis(crystal, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = _call("acemd_rdf", crystal.h5, "-o", blocker / "rdf")
    _refused(rc, err, 1, "-o/--output", str(blocker), "is a file, not a folder")
    rc, _, err = _call("acemd_convert", crystal.h5, blocker / "o.extxyz")
    _refused(rc, err, 1, str(blocker), "is a file, not a folder")
    (tmp_path / "t.csv").mkdir()
    rc, _, err = _call("acemd_rdf", crystal.h5, "-o", tmp_path / "t")
    _refused(rc, err, 1, str(tmp_path / "t.csv"), "is a folder")
    assert _files(tmp_path) == {blocker.relative_to(tmp_path): b"x"}


def test_a_file_of_another_kind_names_what_it_is_and_its_script(crystal, driver_files, tmp_path):
    d = driver_files
    (tmp_path / "plot.png").write_bytes(b"earlier plot")
    before, inputs = _files(tmp_path), _files(d.folder)
    png = ["-o", tmp_path / "plot.png"]
    cases = [
        ("plot_free_energy", [d.elastic], ["not a [free_energy] data file", "[elastic] data file",
                                           "plot_elastic.py"]),
        ("plot_free_energy", [crystal.h5], ["not a [free_energy] data file", "H5MD trajectory", "acemd_rdf.py"]),
        ("plot_free_energy", [crystal.ckpt], ["checkpoint", "--restart"]),
        ("plot_free_energy", [d.free_energy, "--curve"], ["temperature_sweep", "leave out --curve"]),
        ("plot_free_energy", [d.free_energy, "-o", tmp_path / "plot.txt"], ["plot.txt", "image format", ".png"]),
        ("plot_elastic", [d.free_energy], ["not an acemd [elastic] data file", "plot_free_energy.py"]),
        ("plot_elastic", [d.elastic_report], ["not an acemd [elastic] data file", "report"]),
        ("plot_phase_diagram", [d.free_energy_report], ["not the YAML report of a [free_energy] phase protocol",
                                                        "report"]),
        ("plot_phase_diagram", [d.free_energy_input], ["phase protocol", "no acemd output"]),
        ("plot_phase_diagram", [tmp_path / "missing.yaml"], ["missing.yaml", "not found"]),
        ("acemd_thermo", [d.elastic], ["not an acemd H5MD trajectory", "plot_elastic.py"]),
        ("acemd_rdf", [d.free_energy], ["not an acemd H5MD trajectory", "plot_free_energy.py"]),
        ("acemd_msd", [crystal.log], ["not an HDF5 file", "thermo log", "acemd_thermo.py"]),
        ("acemd_gamma", [d.elastic], ["not an acemd H5MD trajectory", "plot_elastic.py"]),
    ]
    for name, argv, words in cases:
        extra = [] if "-o" in argv else png if name.startswith("plot_") else ["-o", tmp_path / "plot"]
        rc, out, err = _call(name, *argv, *extra)
        _refused(rc, err, 1, *words)
    rc, _, err = _call("plot_free_energy", d.free_energy, "--minus-linear", *png)
    _refused(rc, err, 2, "--minus-linear", "add --curve")
    rc, _, err = _call("liquid_evidence", "--analyse", d.elastic)
    _refused(rc, err, 1, str(d.elastic), "not an acemd H5MD trajectory", "plot_elastic.py")
    rc, _, err = _call("liquid_evidence", "--analyse", crystal.h5, "--print-every", "0")
    _refused(rc, err, 2, "--print-every", "at least 1")
    assert _files(tmp_path) == before and _files(d.folder) == inputs


def test_the_issue_commands_end_without_traceback(crystal, driver_files, tmp_path):
    """The five commands of issue 27, as real processes."""
    for argv, status, words in [
            (["acemd_rdf", crystal.h5, "--bins", "0"], 2, ["--bins"]),
            (["acemd_rdf", crystal.h5, "--r-max", "-3"], 2, ["--r-max"]),
            (["acemd_rdf", crystal.h5, "--r-min", "4", "--r-max", "3"], 2, ["--r-min", "--r-max"]),
            (["acemd_thermo", crystal.log, "--blocks", "0"], 2, ["--blocks"]),
            (["plot_free_energy", driver_files.elastic, "-o", tmp_path / "p.png"], 1,
             [str(driver_files.elastic), "plot_elastic.py"])]:
        rc, out, err = run_command(*argv)
        _refused(rc, err, status, *words)
    assert not list(tmp_path.iterdir())


def test_plot_scripts_still_plot_their_own_files(driver_files, tmp_path):
    pytest.importorskip("matplotlib")
    rc, out, err = _call("plot_free_energy", driver_files.free_energy, "--per-atom", "-o", tmp_path / "d.png")
    assert rc == 0, err
    assert "iteration_002 backward: work" in out and is_png(tmp_path / "d.png")
    rc, out, err = _call("plot_elastic", driver_files.elastic, "-o", tmp_path / "e.png")
    assert rc == 0, err
    assert is_png(tmp_path / "e.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "e.png"]      # no .tmp left


def test_vdos_warns_about_a_coarse_or_aliased_spectrum(crystal, tmp_path):
    from acemd.analysis import vdos
    from acemd.analysis.trajectory import Trajectory
    with Trajectory(crystal.h5) as traj:
        full = vdos.compute_vdos(traj, np.arange(traj.n_frames))          # 101 frames, 0.01 ps apart
        two = vdos.compute_vdos(traj, np.array([0, 1]))
        sparse = vdos.compute_vdos(traj, np.arange(0, traj.n_frames, 10))  # 0.1 ps apart: Nyquist 5 THz
    assert full.warnings == []               # fcc Cu's phonons end near 7.5 THz, far below 50 THz
    assert len(two.warnings) == 1 and "only 2 frequencies" in two.warnings[0]
    assert any("aliasing" in w for w in sparse.warnings), sparse.warnings
    rc, out, err = _call("acemd_vdos", crystal.h5, "--frames", "0,1", "--no-plot", "-o", tmp_path / "v")
    assert rc == 0 and "warning: the VDOS has only 2 frequencies" in err and "Traceback" not in err


# the benchmark and validation scripts: an impossible count or length stops argparse before any run
OTHER_SCRIPT_CASES = [("bench_analysis", "--frames", "0"), ("bench_compare", "--cells", "0"),
                      ("bench_elastic", "--scale", "-1"), ("bench_extrapolation", "--every", "0"),
                      ("bench_free_energy", "--steps", "0"), ("bench_guards", "--repeat", "0"),
                      ("bench_kernel", "--cells", "-2"), ("bench_md", "--ranks", "0"),
                      ("npt_lattice", "--temperatures", "nan"), ("npt_mean_cell", "--compressibility", "0"),
                      ("nve_drift", "--timestep", "-0.001"), ("validate_elastic_t", "--block", "0"),
                      ("validate_free_energy_liquid", "--temperature", "0"), ("validate_melting_cu", "--repeat", "0"),
                      ("validate_melting_lj", "--window", "-8"), ("validate_uf", "--x", "-0.3"),
                      ("liquid_evidence", "--steps", "0")]


@pytest.mark.parametrize("name, option, value", OTHER_SCRIPT_CASES, ids=[c[0] for c in OTHER_SCRIPT_CASES])
def test_benchmark_and_validation_scripts_refuse_impossible_values(name, option, value, monkeypatch):
    import contextlib
    import inspect
    import io
    main = load_script(name).main
    monkeypatch.setattr("sys.argv", [name, option, value])      # for a main() that reads sys.argv
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            pytest.raises(SystemExit) as exc:
        main([option, value]) if inspect.signature(main).parameters else main()
    rc, out, err = exc.value.code, stdout.getvalue(), stderr.getvalue()
    _refused(rc, err, 2, f"argument {option}", f"got {value}")
    assert out == ""
