"""Bad inputs under ``mpiexec``: every case ends with one clear message and the right exit status,
no traceback, no rank left hanging, and no file that existed before is changed.

Each case builds its files in a fresh folder, records the SHA-256 of every file there,
runs ``acemd`` under ``mpiexec -n 2`` (a few under 3), then checks the exit status, that
the message names the file/key/value, that no ``Traceback``/MPI ``Abort`` reaches the
user, that the error is printed once per job, and that the pre-existing files are
byte for byte what they were.  Tiny inputs (32 Cu atoms, Cu-I.yace, a few steps).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_mpi_suites import mpiexec

REPO = Path(__file__).resolve().parents[1]
POT = REPO / "tests" / "data" / "potentials"
TIMEOUT_S = 120


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("ACEMD_DEBUG", None)
    return env


def acemd(args, cwd, nranks=2, background=False):
    cmd = [mpiexec(), "-n", str(nranks), sys.executable, "-m", "acemd.cli", *map(str, args)]
    if background:
        return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())
    return proc.returncode, proc.stdout, proc.stderr


def checksums(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- inputs
def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(float(v)) if isinstance(v, float) else repr(v)     # nan, inf are TOML


def base_input(**sections):
    """The 32-atom Cu input; ``sections`` override/add keys ({"md": {"steps": 5}}), None deletes a key."""
    s = {"structure": {"lattice": "fcc", "element": "Cu", "a": 3.6, "repeat": [2, 2, 2]},
         "potential": {"file": str(POT / "Cu-I.yace")},
         "velocities": {"temperature": 300.0, "seed": 7},
         "md": {"steps": 10, "timestep": 0.001},
         "thermo": {"every": 5},
         "trajectory": {"every": 5}}
    for name, keys in sections.items():
        section = s.setdefault(name, {})
        for k, v in keys.items():
            if v is None:
                section.pop(k, None)
            else:
                section[k] = v
    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
                     for name, keys in s.items())


def write(tmp, text, name="in.toml"):
    (tmp / name).write_text(text)
    return name


def structure_file(tmp, name="s.extxyz", positions=None, cell=10.0, pbc=True):
    import ase.io
    from ase import Atoms
    from ase.build import bulk
    if positions is None:
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    else:
        atoms = Atoms(f"Cu{len(positions)}", positions=positions, cell=[cell] * 3, pbc=pbc)
    ase.io.write(tmp / name, atoms)
    return name


def file_input(tmp, name="s.extxyz", **sections):
    sections.setdefault("structure", {})
    sections["structure"].update({"lattice": None, "element": None, "a": None, "repeat": None,
                                  "file": name})
    return base_input(**sections)


def checkpoint(tmp, steps=10, name="ck.h5", **sections):
    """A real checkpoint of the base run (``steps`` steps) in ``tmp``."""
    md = {**sections.pop("md", {}), "steps": steps}
    text = base_input(md=md, checkpoint={"file": name}, trajectory={"every": 0},
                      thermo={"file": "ck.log"}, **sections)
    write(tmp, text, "ck.toml")
    import io

    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.md import MDRun
    MDRun(parse_config(text, tmp / "ck.toml"), text, tmp / "ck.toml", comm=MPI.COMM_SELF,
          stream=io.StringIO()).run()           # in-process: no mpiexec start-up for a fixture
    (tmp / "ck.log").unlink()
    return name


def edit_checkpoint(tmp, name, fn):
    import h5py
    with h5py.File(tmp / name, "r+") as f:
        fn(f)


def yace_with(tmp, old, new, name="bad.yace"):
    text = (POT / "Cu-I.yace").read_text()
    assert old in text
    (tmp / name).write_text(text.replace(old, new, 1))
    return name


FIRST_CTILDE = "ctildes: [0.12769446893111333"


# ----------------------------------------------------------------------------- cases
# (id, setup(tmp) -> args, exit status, strings the message must contain, ranks)
def _case_same_traj_ckpt(t):
    return [write(t, base_input(trajectory={"file": "out.h5"}, checkpoint={"file": "out.h5"}))]


def _case_same_log_traj(t):
    return [write(t, base_input(thermo={"file": "out.h5"}, trajectory={"file": "out.h5"}))]


def _case_traj_is_structure(t):
    structure_file(t)
    return [write(t, file_input(t, trajectory={"file": "s.extxyz"}))]


def _case_log_is_input(t):
    return [write(t, base_input(thermo={"file": "in.toml"}))]


def _case_log_is_potential(t):
    shutil.copy(POT / "Cu-I.yace", t / "pot.yace")
    return [write(t, base_input(potential={"file": "pot.yace"}, thermo={"file": "pot.yace"}))]


def _case_traj_is_restart(t):
    ck = checkpoint(t)
    return [write(t, base_input(md={"steps": 20}, trajectory={"file": ck})), "--restart", ck]


def _case_ckpt_parent_is_file(t):
    (t / "afile").write_text("x")
    return [write(t, base_input(checkpoint={"file": "afile/ck.h5"})), "--check"]


def _case_ckpt_under_dev_null(t):
    return [write(t, base_input(checkpoint={"file": "/dev/null/ck.h5"})), "--check"]


def _case_log_under_dev_null(t):
    return [write(t, base_input(thermo={"file": "/dev/null/x/acemd.log"}))]


def _case_traj_is_folder(t):
    (t / "tdir").mkdir()
    return [write(t, base_input(trajectory={"file": "tdir"}))]


def _nan_or_inf(section, key, value):
    def setup(t):
        return [write(t, base_input(**{section: {key: value}}))]
    return setup


def _case_mass_nan(t):
    return [write(t, base_input(masses={"Cu": float("nan")}))]


def _case_mass_inf(t):
    return [write(t, base_input(masses={"Cu": float("inf")}))]


def _case_barostat_nan(t):
    return [write(t, base_input(md={"ensemble": "npt-mtk"}, thermostat={"temperature": 300.0},
                                barostat={"pressure": float("nan")}))]


def _case_thermostat_inf(t):
    return [write(t, base_input(md={"ensemble": "nvt-langevin"}, thermostat={"temperature": float("inf")}))]


def _case_potential_nan(t):
    name = yace_with(t, FIRST_CTILDE, "ctildes: [.nan")
    return [write(t, base_input(potential={"file": name}))]


def _case_potential_inf(t):
    name = yace_with(t, FIRST_CTILDE, "ctildes: [-.inf")
    return [write(t, base_input(potential={"file": name}))]


def _case_structure_nan(t):
    (t / "s.xyz").write_text("2\n\nCu 0 0 0\nCu nan 1.5 1.5\n")
    return [write(t, file_input(t, "s.xyz", structure={"format": "xyz"}))]


def _case_ckpt_nan_velocity(t):
    ck = checkpoint(t)

    def poison(f):
        v = f["system/velocities"][()]
        v[3, 1] = np.nan
        f["system/velocities"][...] = v
    edit_checkpoint(t, ck, poison)
    return [write(t, base_input(md={"steps": 20})), "--restart", ck]


def _case_ckpt_nan_thermostat(t):
    sec = {"md": {"ensemble": "nvt-nose-hoover"}, "thermostat": {"temperature": 300.0}}
    ck = checkpoint(t, **{k: dict(v) for k, v in sec.items()})

    def poison(f):
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and name.endswith("vxi"):
                v = obj[()]
                v.flat[0] = np.nan
                obj[...] = v
                found.append(name)
        found = []
        f["state"].visititems(visit)
        assert found, "no thermostat chain in the checkpoint"
    import h5py
    edit_checkpoint(t, ck, poison)
    sec["md"]["steps"] = 20
    return [write(t, base_input(**sec)), "--restart", ck]


def _case_ckpt_far_outside(t):
    ck = checkpoint(t)

    def move(f):
        x = f["system/positions"][()]
        x[5] += 1000.0
        f["system/positions"][...] = x
    edit_checkpoint(t, ck, move)
    return [write(t, base_input(md={"steps": 20})), "--restart", ck]


def _case_ckpt_other_structure(t):
    ck = checkpoint(t)
    return [write(t, base_input(md={"steps": 20}, structure={"repeat": [3, 3, 3]})), "--restart", ck]


def _case_ckpt_past_steps(t):
    ck = checkpoint(t, steps=10)
    return [write(t, base_input(md={"steps": 5})), "--restart", ck]


def _case_ckpt_other_cell(t):
    ck = checkpoint(t)
    return [write(t, base_input(md={"steps": 20}, structure={"a": 5.2})), "--restart", ck]


def _case_check_opens_restart(t):
    (t / "ck.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    return [write(t, base_input(md={"steps": 20})), "--restart", "ck.h5", "--check"]


def _case_binary_toml(t):
    (t / "in.toml").write_bytes(bytes(range(256)) * 4)
    return ["in.toml"]


def _case_binary_yace(t):
    (t / "bin.yace").write_bytes(bytes(range(255, -1, -1)) * 8)
    return [write(t, base_input(potential={"file": "bin.yace"}))]


def _case_potential_folder(t):
    (t / "potdir").mkdir()
    return [write(t, base_input(potential={"file": "potdir"}))]


def _case_index_past_end(t):
    structure_file(t)
    return [write(t, file_input(t, structure={"index": 5}))]


def _case_input_missing(t):
    return ["nothere.toml"]


def _case_input_folder(t):
    (t / "d.toml").mkdir()
    return ["d.toml"]


def _case_repeat_huge(t):
    return [write(t, base_input(structure={"repeat": [1000, 1000, 1000]}))]


def _case_skin_huge(t):
    return [write(t, base_input(md={"skin": 1000.0}))]


def _case_repeat_200(t):
    # 75 GiB per rank: a limit keeps the case independent of this machine's memory
    return [write(t, base_input(structure={"repeat": [200, 200, 200]}, guards={"max_memory_gib": 16.0}))]


def _case_memory_limit(t):
    return [write(t, base_input(structure={"repeat": [20, 20, 20]}, guards={"max_memory_gib": 0.01}))]


def _case_close_atoms(t):
    structure_file(t, positions=[[5, 5, 5], [5.3, 5, 5]])
    return [write(t, file_input(t))]


def _case_npt_minus_1e7_bar(t):
    return [write(t, base_input(md={"ensemble": "npt-mtk", "steps": 3000}, thermostat={"temperature": 300.0},
                                barostat={"pressure": -1e7}, thermo={"every": 500}, trajectory={"every": 0}))]


def _case_convert_same(t):
    shutil.copy(POT / "Cu-I.yaml", t / "same.yaml")
    return ["convert", "same.yaml", "./same.yaml"]


def _case_convert_binary(t):
    (t / "bin.yaml").write_bytes(bytes(range(255, -1, -1)) * 8)
    return ["convert", "bin.yaml", "out.yace"]


def _case_convert_unwritable(t):
    return ["convert", str(POT / "Cu-I.yace"), "/dev/null/out.yace"]


def _case_convert_to_folder(t):
    (t / "odir").mkdir()
    return ["convert", str(POT / "Cu-I.yace"), "odir"]


def _case_convert_nan(t):
    name = yace_with(t, FIRST_CTILDE, "ctildes: [.nan")
    return ["convert", name, "out.yace"]


CASES = [
    # data loss
    ("trajectory=checkpoint", _case_same_traj_ckpt, 1, ["[checkpoint.file]", "[trajectory.file]", "out.h5"], 2),
    ("thermo=trajectory", _case_same_log_traj, 1, ["[thermo.file]", "[trajectory.file]", "out.h5"], 2),
    ("trajectory=structure", _case_traj_is_structure, 1, ["[trajectory.file]", "s.extxyz", "[structure.file]"], 2),
    ("thermo=input", _case_log_is_input, 1, ["[thermo.file]", "in.toml", "the input file"], 2),
    ("thermo=potential", _case_log_is_potential, 1, ["[thermo.file]", "pot.yace", "[potential.file]"], 3),
    ("trajectory=restart", _case_traj_is_restart, 1, ["[trajectory.file]", "ck.h5", "--restart"], 2),
    ("checkpoint-parent-is-file", _case_ckpt_parent_is_file, 1, ["[checkpoint.file]", "afile", "not a folder"], 2),
    ("checkpoint-under-dev-null", _case_ckpt_under_dev_null, 1, ["[checkpoint.file]", "/dev/null"], 2),
    ("log-under-dev-null", _case_log_under_dev_null, 1, ["[thermo.file]", "/dev/null"], 2),
    ("trajectory-is-folder", _case_traj_is_folder, 1, ["[trajectory.file]", "tdir", "folder"], 2),
    ("convert-same-file", _case_convert_same, 1, ["same.yaml", "refusing to overwrite"], 2),
    # NaN / inf wherever a number is read
    ("masses-nan", _case_mass_nan, 1, ["masses.Cu", "nan"], 2),
    ("masses-inf", _case_mass_inf, 1, ["masses.Cu", "inf"], 2),
    ("velocities-temperature-inf", _nan_or_inf("velocities", "temperature", float("inf")), 1,
     ["velocities.temperature", "inf"], 2),
    ("timestep-inf", _nan_or_inf("md", "timestep", float("inf")), 1, ["md.timestep", "inf"], 2),
    ("timestep-nan", _nan_or_inf("md", "timestep", float("nan")), 1, ["md.timestep", "NaN"], 2),
    ("lattice-a-nan", _nan_or_inf("structure", "a", float("nan")), 1, ["structure.a", "NaN"], 2),
    ("skin-inf", _nan_or_inf("md", "skin", float("inf")), 1, ["md.skin", "inf"], 2),
    ("barostat-pressure-nan", _case_barostat_nan, 1, ["barostat.pressure", "NaN"], 2),
    ("thermostat-temperature-inf", _case_thermostat_inf, 1, ["thermostat.temperature", "inf"], 2),
    ("potential-nan-coefficient", _case_potential_nan, 1, ["bad.yace", "functions[0][0].ctildes", "nan"], 2),
    ("potential-inf-coefficient", _case_potential_inf, 1, ["bad.yace", "functions[0][0].ctildes", "inf"], 2),
    ("structure-nan-position", _case_structure_nan, 1, ["s.xyz", "NaN"], 2),
    ("convert-nan-potential", _case_convert_nan, 1, ["bad.yace", "ctildes", "nan"], 2),
    ("checkpoint-nan-velocity", _case_ckpt_nan_velocity, 1, ["ck.h5", "velocities", "NaN", "atom id 3"], 2),
    ("checkpoint-nan-thermostat", _case_ckpt_nan_thermostat, 1, ["ck.h5", "state.integrator", "NaN"], 2),
    ("checkpoint-far-outside", _case_ckpt_far_outside, 1, ["ck.h5", "atom id 5", "outside"], 2),
    # restart against the input
    ("restart-other-structure", _case_ckpt_other_structure, 1, ["ck.h5", "32 atoms", "108", "another system"], 2),
    ("restart-past-steps", _case_ckpt_past_steps, 1, ["ck.h5", "step 10", "[md.steps] = 5"], 3),
    ("restart-other-cell", _case_ckpt_other_cell, 1, ["ck.h5", "cell vector a", "another system"], 2),
    ("check-opens-restart", _case_check_opens_restart, 1, ["ck.h5", "HDF5"], 2),
    # tracebacks before
    ("binary-toml", _case_binary_toml, 1, ["in.toml", "not a text"], 2),
    ("binary-yace", _case_binary_yace, 1, ["bin.yace", "not a text file"], 2),
    ("potential-is-folder", _case_potential_folder, 1, ["potential.file", "potdir", "folder"], 2),
    ("index-past-end", _case_index_past_end, 1, ["structure.index", "5", "s.extxyz", "1 frame"], 3),
    ("input-missing", _case_input_missing, 1, ["nothere.toml", "not found"], 2),
    ("input-is-folder", _case_input_folder, 1, ["d.toml", "folder"], 2),
    ("convert-binary", _case_convert_binary, 1, ["bin.yaml", "not a text file"], 2),
    ("convert-unwritable", _case_convert_unwritable, 1, ["/dev/null/out.yace", "cannot write"], 2),
    ("convert-to-folder", _case_convert_to_folder, 1, ["odir", "folder"], 2),
    # resources
    ("repeat-1000", _case_repeat_huge, 1, ["4000000000 atoms", "repeat", "GiB"], 2),
    ("skin-1000", _case_skin_huge, 1, ["skin", "1000", "GiB"], 2),
    ("memory-limit", _case_memory_limit, 1, ["max_memory_gib", "32000", "GiB"], 2),
    ("repeat-200", _case_repeat_200, 1, ["32000000 atoms", "GiB", "[guards.max_memory_gib] = 16"], 2),
    # silent nonsense: a guard stops the run (status 4) with the last good state
    ("atoms-0.3-apart", _case_close_atoms, 1, ["0.3 Å", "min_distance", "initial state"], 2),
    ("initial-temperature-1e7", _nan_or_inf("velocities", "temperature", 1e7), 4,
     ["blow-up guard: stopped at step 10", "[guards.", "last good state, step 0"], 2),
    ("initial-temperature-1e9", _nan_or_inf("velocities", "temperature", 1e9), 4,
     ["blow-up guard: stopped at step 10", "[guards.", "last good state, step 0"], 3),
    ("npt-at-minus-1e7-bar", _case_npt_minus_1e7_bar, 4,
     ["blow-up guard: stopped at step", "[guards.max_volume_per_atom]", "cannot balance the target pressure",
      "volume"], 2),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path):
    name, setup, status, needles, nranks = case
    args = setup(tmp_path)
    before = checksums(tmp_path)
    start = time.perf_counter()
    rc, out, err = acemd(args, tmp_path, nranks=nranks)
    print(f"{name}: exit {rc} in {time.perf_counter() - start:.1f} s\n{err}")
    assert rc == status, f"exit status {rc}, expected {status}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}"
    for needle in needles:
        assert needle in err, f"message lacks {needle!r}: {err!r}"
    assert "Traceback" not in out + err
    assert "Abort(" not in err and "BAD TERMINATION" not in out + err
    messages = [l for l in err.splitlines() if l.startswith("acemd:") and not l.startswith("acemd: warning")]
    assert len(messages) == 1, f"one message per job, got:\n{err}"
    if status == 4:                                   # a guard stop writes the last good state
        from acemd.io.checkpoint import read_checkpoint
        assert np.all(np.isfinite(read_checkpoint(tmp_path / "checkpoint.h5")["velocities"]))
    after = checksums(tmp_path)
    changed = [p.name for p, h in before.items() if after.get(p) != h]
    assert not changed, f"pre-existing files changed or removed: {changed}"
    assert not list(tmp_path.rglob(".*.lock")), "lock files left behind"


# ----------------------------------------------------------------------------- special cases
def test_second_run_in_the_same_folder_leaves_the_first_alone(tmp_path):
    """A second run while one is running stops before opening any output (lock first, truncate after);
    the first run's log and trajectory are intact and it finishes normally."""
    write(tmp_path, base_input(md={"steps": 1500}, thermo={"every": 50}, trajectory={"every": 100}))
    first = acemd(["in.toml"], tmp_path, background=True)
    log = tmp_path / "acemd.log"
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and (not log.exists() or log.read_text().count("\n     ") < 2):
        assert first.poll() is None, first.communicate()
        time.sleep(0.2)
    head = log.read_text()
    rc, out, err = acemd(["in.toml"], tmp_path)
    print(err)
    assert rc == 1
    assert "being written by another running acemd" in err and "acemd.log" in err
    assert "Traceback" not in out + err and err.count("acemd: error") == 1
    assert log.read_text().startswith(head), "the first run's log was truncated"
    out1, err1 = first.communicate(timeout=TIMEOUT_S)
    assert first.returncode == 0, err1
    import h5py
    with h5py.File(tmp_path / "trajectory.h5", "r") as f:
        assert list(f["particles/all/position/step"][()]) == list(range(0, 1501, 100))
    rows = [l for l in log.read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert rows[0].split()[0] == "0" and rows[-1].split()[0] == "1500"
    assert not list(tmp_path.rglob(".*.lock"))


def test_disk_full_keeps_the_last_checkpoint(tmp_path):
    """A checkpoint write that fails (file-size limit standing in for a full disk: EFBIG like ENOSPC)
    ends with one message, exit 1, the previous checkpoint unchanged and no temporary file."""
    ck = checkpoint(tmp_path, steps=5, name="checkpoint.h5")
    write(tmp_path, base_input(md={"steps": 20}, trajectory={"every": 0}, checkpoint={"every": 5}))
    before = checksums(tmp_path)
    limit = (tmp_path / ck).stat().st_size // 2

    # the limit is set after MPI_Init (MPI's own shared-memory files must not hit it)
    script = ("import resource, sys\nfrom mpi4py import MPI\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
              f"from acemd.cli import main\nsys.exit(main(['in.toml', '--restart', '{ck}']))\n")
    cmd = [mpiexec(), "-n", "2", sys.executable, "-c", script]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())
    print(proc.stderr)
    assert proc.returncode == 1
    assert "checkpoint.h5: cannot write checkpoint (the previous checkpoint is kept" in proc.stderr
    assert "File too large" in proc.stderr and "--restart" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and proc.stderr.count("acemd: error") == 1
    assert checksums(tmp_path)[tmp_path / ck] == before[tmp_path / ck]
    assert not (tmp_path / "checkpoint.h5.tmp").exists()


@pytest.mark.parametrize("how", ["--debug", "ACEMD_DEBUG=1"])
def test_debug_shows_the_traceback(tmp_path, how):
    write(tmp_path, base_input(md={"timestep": float("nan")}))
    args = ["in.toml"] + (["--debug"] if how == "--debug" else [])
    env = _env()
    if how != "--debug":
        env["ACEMD_DEBUG"] = "1"
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", *args]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "md.timestep" in proc.stderr


# ============================================================================= R1: restarts, checkpoints,
# preflight (issue 27): own checkpoints continue in place, other drivers' checkpoints are a start (or
# refused), hand-edited checkpoints refused, --check runs the run's checks before anything is written
def _minimize_checkpoint(tmp, name="min.h5"):
    """A real [minimize] checkpoint (zero velocities, step 0) of the 32-atom cell, written in-process."""
    import io

    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.minimize import MinimizeRun
    text = base_input(velocities={"temperature": None, "seed": None}, md={"steps": None, "timestep": None},
                      trajectory={"every": None}, checkpoint={"file": name}, thermo={"file": "min.log"},
                      minimize={"fmax": 0.05, "structure_file": "min.extxyz"})
    text = text.replace("[velocities]\n", "").replace("[md]\n", "").replace("[trajectory]\n", "")
    write(tmp, text, "min.toml")
    MinimizeRun(parse_config(text, tmp / "min.toml"), text, tmp / "min.toml", comm=MPI.COMM_SELF,
                stream=io.StringIO()).run()
    for junk in ("min.log", "min.extxyz", "min.toml"):
        (tmp / junk).unlink()
    return name


def _case_ckpt_step_minus_5(t):
    ck = checkpoint(t)
    edit_checkpoint(t, ck, lambda f: f.attrs.__setitem__("step", np.int64(-5)))
    return [write(t, base_input(md={"steps": 20})), "--restart", ck]


def _case_ckpt_time_nan(t):
    ck = checkpoint(t)
    edit_checkpoint(t, ck, lambda f: f.attrs.__setitem__("time_ps", np.float64("nan")))
    return [write(t, base_input(md={"steps": 20})), "--restart", ck]


def _slab():
    """A 16-atom Cu(100) slab, periodic along x and y only."""
    from ase.build import fcc100
    slab = fcc100("Cu", size=(2, 2, 4), a=3.61, vacuum=6.0)
    slab.pbc = [True, True, False]
    slab.info.pop("adsorbate_info", None)
    return slab


def _slab_input(t, section, check):
    import ase.io
    ase.io.write(t / "s.extxyz", _slab())
    text = file_input(t, **{section: {"cell": "iso"}}).replace("[md]\nsteps = 10\ntimestep = 0.001\n", "")
    text = text.replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
    text = text.replace("[trajectory]\nevery = 5\n", "")
    (t / "acemd.log").write_text("the log of an earlier run: must survive a refused run\n")
    return [write(t, text)] + (["--check"] if check else [])


def _case_free_energy_from_md_checkpoint(t):
    ck = checkpoint(t)
    text = base_input(free_energy={"mode": "solid", "temperature": 300.0})
    text = text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "").replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
    return [write(t, text), "--restart", ck]


def _case_elastic_t_from_minimize_checkpoint(t):
    ck = _minimize_checkpoint(t)
    text = base_input(elastic={"temperature": 300.0})
    text = text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "").replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
    return [write(t, text), "--restart", ck]


def _case_restart_appends_to_another_runs_log(t):
    ck = checkpoint(t)                        # its run logged to ck.log
    (t / "acemd.log").write_text("# the log of an unrelated earlier run\n0 300.0\n")
    return [write(t, base_input(md={"steps": 20})), "--restart", ck]


def _fe_text(**keys):
    text = base_input(free_energy={"mode": "solid", "temperature": 300.0, **keys})
    return text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "").replace(
        "[velocities]\ntemperature = 300.0\nseed = 7\n", "")


def _fe_checkpoint(t, text, name="free_energy.ckpt.h5"):
    """A [free_energy] checkpoint of ``text``'s protocol after its NPT stage (the 32 atoms at rest)."""
    import json

    from ase.build import bulk
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.free_energy import RESUMABLE_KEYS
    from acemd.io.checkpoint import write_checkpoint
    sec = parse_config(text, t / "in.toml")["free_energy"]
    signature = json.dumps({k: v for k, v in sorted(sec.items()) if k not in RESUMABLE_KEYS}, sort_keys=True,
                           default=str)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    n = len(atoms)
    write_checkpoint(t / name, MPI.COMM_SELF, step=100, time_ps=0.2, cell=atoms.cell.array, pbc=atoms.pbc,
                     ids=np.arange(n), positions=atoms.positions, velocities=np.zeros((n, 3)),
                     species=np.zeros(n, dtype=np.int64), images=np.zeros((n, 3), dtype=np.int64),
                     masses_by_species=[63.546], species_names=["Cu"],
                     state={"free_energy": {"signature": signature, "completed": ["npt"], "records": {},
                                            "warnings": [], "stage_max_gamma": {}}}, input_text=text)
    return name


def _case_free_energy_restart_other_protocol(t, check):
    ck = _fe_checkpoint(t, _fe_text(temperature=300.0))
    return [write(t, _fe_text(temperature=400.0)), "--restart", ck] + (["--check"] if check else [])


def _case_grid_vs_ranks_check(t):
    return [write(t, base_input(parallel={"grid": [1, 1, 3]})), "--check"]


R1_CASES = [
    ("restart-step-minus-5", _case_ckpt_step_minus_5, 1, ["ck.h5", "step -5", "edited", "unedited checkpoint"], 2),
    ("restart-time-nan", _case_ckpt_time_nan, 1, ["ck.h5", "time nan ps", "unedited checkpoint"], 2),
    ("minimize-iso-slab-check", lambda t: _slab_input(t, "minimize", True), 1,
     ["[minimize.cell] = \"iso\"", "[True, True, False]", "\"aniso\""], 2),
    ("minimize-iso-slab-run", lambda t: _slab_input(t, "minimize", False), 1,
     ["[minimize.cell] = \"iso\"", "[True, True, False]", "\"aniso\"", "nothing was written"], 2),
    ("elastic-iso-slab-run", lambda t: _slab_input(t, "elastic", False), 1,
     ["[elastic.cell] = \"iso\"", "[True, True, False]", "\"aniso\""], 2),
    ("free-energy-from-md-checkpoint", _case_free_energy_from_md_checkpoint, 1,
     ["--restart ck.h5: a [md] checkpoint (step 10)", "[free_energy] continues only its own", "without --restart"], 2),
    ("elastic-300K-from-minimize-checkpoint", _case_elastic_t_from_minimize_checkpoint, 1,
     ["--restart min.h5: a [minimize] checkpoint", "[elastic] continues only its own"], 2),
    ("restart-appends-to-another-runs-log", _case_restart_appends_to_another_runs_log, 1,
     ["--restart ck.h5", "wrote ck.log", "[thermo.file]", "acemd.log", "exists and holds another run",
      "new name"], 2),
    ("free-energy-restart-other-protocol-check", lambda t: _case_free_energy_restart_other_protocol(t, True), 1,
     ["--restart free_energy.ckpt.h5", "[free_energy] temperature differ", "same protocol settings"], 2),
    ("free-energy-restart-other-protocol-run", lambda t: _case_free_energy_restart_other_protocol(t, False), 1,
     ["--restart free_energy.ckpt.h5", "[free_energy] temperature differ", "same protocol settings"], 2),
    ("grid-vs-ranks-check", _case_grid_vs_ranks_check, 1, ["[parallel.grid] [1, 1, 3]", "3 subdomains", "2 MPI"], 2),
]


@pytest.mark.parametrize("case", R1_CASES, ids=[c[0] for c in R1_CASES])
def test_bad_restart_or_preflight(case, tmp_path):
    test_bad_input(case, tmp_path)


def _rows(log):
    return [l.split() for l in Path(log).read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_md_from_a_minimize_checkpoint_is_a_new_run_with_its_velocities(tmp_path):
    """[md] --restart of a [minimize] checkpoint: says what it takes, draws [velocities] (the minimiser
    left them zero), starts at step 0 with a step-0 frame, and writes its log and trajectory anew
    instead of appending to the files an earlier run left there."""
    ck = _minimize_checkpoint(tmp_path)
    write(tmp_path, base_input(md={"steps": 10}, velocities={"temperature": 500.0}))
    rc, out, err = acemd(["in.toml"], tmp_path)        # an earlier, unrelated run's outputs
    assert rc == 0, err
    rc, out, err = acemd(["in.toml", "--restart", ck], tmp_path)
    print(out[:600])
    assert rc == 0, err
    assert f"--restart {ck}: a [minimize] checkpoint (step 0): [md] takes its atoms, cell and velocities " \
           "drawn from [velocities], and starts a new run at step 0" in out
    rows = _rows(tmp_path / "acemd.log")
    assert [int(r[0]) for r in rows] == [0, 5, 10], "the log was appended to, not written anew"
    assert float(rows[0][2]) == pytest.approx(500.0, rel=1e-6)      # Temp at step 0: drawn, not 0 K
    import h5py
    with h5py.File(tmp_path / "trajectory.h5", "r") as f:
        assert list(f["particles/all/position/step"][()]) == [0, 5, 10]
    from acemd.io.checkpoint import read_checkpoint
    relaxed = read_checkpoint(tmp_path / ck)
    with h5py.File(tmp_path / "trajectory.h5", "r") as f:          # started from the relaxed atoms
        np.testing.assert_allclose(f["particles/all/position/value"][0], relaxed["positions"], atol=1e-9)


def test_md_guard_stop_names_the_checkpoint_and_counts_its_steps(tmp_path):
    """A guard stop: the message names the checkpoint (which exists and holds the last good step),
    and the summary counts the steps up to that state, not 0 (thermo every 1000 printed only step 0)."""
    import re
    write(tmp_path, base_input(velocities={"temperature": 3e4}, md={"steps": 200}, thermo={"every": 1000},
                               trajectory={"every": 0}))
    rc, out, err = acemd(["in.toml"], tmp_path)
    print(err)
    assert rc == 4, err
    good = int(re.search(r"last good state, step (\d+)", err).group(1))
    ckpt = re.search(r"\(checkpoint: (\S+)\)", err).group(1)
    from acemd.io.checkpoint import read_checkpoint
    assert read_checkpoint(tmp_path / ckpt)["step"] == good > 0
    assert f"# summary: {good} steps in" in out


# ============================================================================= R2: guards on every stage,
# degenerate systems (issue 27): the minimiser and 0 K [elastic] stop on a guard with exit 4 and the last
# good state, never "converged"; a start that fails a guard is an input error; one-atom cells are refused
# by the MD-based drivers with the fix named
def _static_input(t, driver, section, structure=None):
    """The 32-atom Cu input with a [minimize] or [elastic] section instead of [md]."""
    text = base_input(**{driver: section}, **({"structure": structure} if structure else {}))
    text = text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "")
    text = text.replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
    return [write(t, text.replace("[trajectory]\nevery = 5\n", ""))]


def _case_minimize_1e9_bar(t):
    (t / "relaxed.extxyz").write_text("an earlier relaxed structure: must survive the guard stop\n")
    return _static_input(t, "minimize", {"cell": "iso", "pressure": 1e9})


def _case_minimize_close_atoms(t):
    structure_file(t, positions=[[5, 5, 5], [5.05, 5, 5]])
    text = _static_input(t, "minimize", {})[0]
    (t / text).write_text(file_input(t).replace("[md]\nsteps = 10\ntimestep = 0.001\n", "[minimize]\n")
                          .replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
                          .replace("[trajectory]\nevery = 5\n", ""))
    return [text]


def _close_atoms_keeping_a_log(t, driver):
    """Two atoms 0.05 Å apart under [minimize] or 0 K [elastic], with an earlier run's log in the
    folder: the refused start must leave that log byte for byte as it was (test_bad_input compares
    every pre-existing file)."""
    structure_file(t, positions=[[5, 5, 5], [5.05, 5, 5]])
    (t / "keep.log").write_text("an earlier run's log: a refused start must not truncate it\n")
    text = (file_input(t, thermo={"file": "keep.log"})
            .replace("[md]\nsteps = 10\ntimestep = 0.001\n", f"[{driver}]\n")
            .replace("[velocities]\ntemperature = 300.0\nseed = 7\n", "")
            .replace("[trajectory]\nevery = 5\n", ""))
    return [write(t, text)]


def _case_elastic_1e9_bar(t):
    return _static_input(t, "elastic", {"cell": "iso", "pressure": 1e9})


def _one_atom(t):
    import ase.io
    from ase.build import bulk
    ase.io.write(t / "one.extxyz", bulk("Cu", "fcc", a=3.6))


def _case_md_one_atom(t):
    _one_atom(t)
    return [write(t, file_input(t, name="one.extxyz"))]


def _case_free_energy_one_atom(t):
    _one_atom(t)
    text = file_input(t, name="one.extxyz", free_energy={"mode": "solid", "temperature": 300.0})
    text = text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "").replace("[trajectory]\nevery = 5\n", "")
    return [write(t, text)]


def _case_npt_slab(t, check):
    """NPT with iso coupling on a slab: refused before the force field is built (it used to surface at
    the integrator's first step, after the kernel was compiled), also by --check."""
    import ase.io
    from ase.build import fcc100
    slab = fcc100("Cu", size=(2, 2, 4), a=3.61, vacuum=6.0)
    slab.pbc = [True, True, False]
    slab.info.pop("adsorbate_info", None)
    ase.io.write(t / "s.extxyz", slab)
    text = file_input(t, md={"ensemble": "npt-crescale"}, thermostat={"temperature": 300.0},
                      barostat={"pressure": 0.0})
    return [write(t, text)] + (["--check"] if check else [])


def _case_spring_steps_20(t):
    text = base_input(free_energy={"mode": "solid", "temperature": 300.0, "spring_steps": 20})
    text = text.replace("[md]\nsteps = 10\ntimestep = 0.001\n", "").replace("[trajectory]\nevery = 5\n", "")
    return [write(t, text)]


R2_CASES = [
    ("minimize-at-1e9-bar", _case_minimize_1e9_bar, 4,
     ["blow-up guard: stopped at minimiser step", "[guards.max_energy_change]", "last good state",
      "no relaxed structure was written", "relaxed.extxyz"], 2),
    ("minimize-atoms-0.05-apart", _case_minimize_close_atoms, 1,
     ["0.05 Å apart", "[guards.min_distance]", "initial state", "check the structure"], 2),
    ("minimize-atoms-0.05-apart-keeps-the-log", lambda t: _close_atoms_keeping_a_log(t, "minimize"), 1,
     ["0.05 Å apart", "[guards.min_distance]", "initial state"], 2),
    ("elastic-atoms-0.05-apart-keeps-the-log", lambda t: _close_atoms_keeping_a_log(t, "elastic"), 1,
     ["0.05 Å apart", "[guards.min_distance]", "initial state"], 2),
    ("elastic-0K-at-1e9-bar", _case_elastic_1e9_bar, 4,
     ["[elastic] reference relaxation", "blow-up guard", "[guards.max_energy_change]", "no report"], 2),
    ("md-one-atom", _case_md_one_atom, 1, ["in.toml", "1 atom", "[md] needs at least 2", "[structure].repeat"], 2),
    ("free-energy-one-atom", _case_free_energy_one_atom, 1,
     ["in.toml", "1 atom", "[free_energy] needs at least 2", "[structure].repeat"], 2),
    ("md-one-atom-3-ranks", _case_md_one_atom, 1, ["1 atom", "[md] needs at least 2"], 3),
    ("npt-iso-slab-run", lambda t: _case_npt_slab(t, False), 1,
     ["in.toml", "[barostat].coupling = 'iso'", "[True, True, False]", "coupling = 'aniso'"], 2),
    ("npt-iso-slab-check", lambda t: _case_npt_slab(t, True), 1,
     ["in.toml", "[barostat].coupling = 'iso'", "[True, True, False]", "coupling = 'aniso'"], 2),
    ("spring-steps-20", _case_spring_steps_20, 1, ["in.toml", "[free_energy.spring_steps] = 20", "at least 40"], 2),
]


@pytest.mark.parametrize("case", R2_CASES, ids=[c[0] for c in R2_CASES])
def test_guarded_stages_and_degenerate_systems(case, tmp_path):
    test_bad_input(case, tmp_path)
