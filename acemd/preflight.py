"""Checks before any work: output paths, collisions, restart vs input, memory, plausibility.

Everything here runs before the first atom is allocated, so a user error costs
seconds and never a file.  Called from ``acemd input.toml`` (and ``--check``)
through :func:`preflight`; errors are :class:`PreflightError` (an input error:
exit status 1) raised on every rank alike, warnings go to stderr once.

* Output files (``[thermo]``, ``[trajectory]``, ``[checkpoint]``,
  ``[extrapolation].dump_file``) must be writable and distinct from each other
  and from every input (input file, structure, potential, active set, restart
  file; the checkpoint may be the restart file: it is replaced atomically).
* A restart file is read and compared with the input (:mod:`acemd.restarts`): atom count
  and composition, periodicity, cell, species of the potential, step vs ``[md].steps``, the
  driver that wrote it, the protocol, the outputs it would append to.
* Driver settings that only the structure can refute (a cell relaxation of all
  three axes on a slab) and ``[parallel.grid]`` against the ranks, so that ``--check``
  finds them and a run stops before it opens (truncates) any output.
* The memory a structure and skin need is estimated and refused when it exceeds
  the machine's available memory (or ``[guards].max_memory_gib`` per rank).
* A run locks its output files (:class:`OutputLock`) before any of them is
  opened for writing, so a second run in the same folder stops without
  truncating the first run's log or trajectory.
"""
from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path

import numpy as np

TIMESTEP_WARN_PS = 0.01             # above: probably fs given where ps is meant

ATOMS_PER_CELL = {("fcc", True): 4, ("fcc", False): 1, ("bcc", True): 2, ("bcc", False): 1,
                  ("diamond", True): 8, ("diamond", False): 2, ("sc", True): 1, ("sc", False): 1}
# bytes, rough upper bounds from the arrays the code allocates (State, Engine, halo buffers,
# neighbour list, kernel outputs incl. per-atom virials; ASE Atoms and gathers on rank 0)
BYTES_PER_OWNED_ATOM = 600
BYTES_PER_GHOST_ATOM = 300
BYTES_PER_PAIR = 24
BYTES_PER_ATOM_ON_ROOT = 400


class PreflightError(ValueError):
    """The input cannot run as given (an output path, a restart file, memory); names file and key."""


# files the drivers write besides log and checkpoint (every one is a path key of config.SCHEMA)
DRIVER_OUTPUTS = {"minimize": ("structure_file",), "elastic": ("report", "data"),
                  "free_energy": ("report", "data", "checkpoint"), "properties": ("report", "data")}


def _key(section, key):
    return f"[{section}.{key}]"


# the checkpoints a driver writes and names in "continue with --restart ...": each may be --restart
OWN_CHECKPOINTS = (_key("checkpoint", "file"), _key("free_energy", "checkpoint"))


# --------------------------------------------------------------------------- output paths
def output_files(settings) -> dict[str, str]:
    """{key name: path} of the files this run would write."""
    out = {_key("thermo", "file"): settings["thermo"]["file"],
           _key("checkpoint", "file"): settings["checkpoint"]["file"]}
    if settings["trajectory"]["every"] > 0:
        out[_key("trajectory", "file")] = settings["trajectory"]["file"]
    if settings.get("extrapolation"):
        out[_key("extrapolation", "dump_file")] = settings["extrapolation"]["dump_file"]
    for section, keys in DRIVER_OUTPUTS.items():
        if settings.get(section):
            for key in keys:
                out[_key(section, key)] = settings[section][key]
    return out


def input_files(settings, input_path, restart=None) -> dict[str, str]:
    """{name: path} of the files this run reads."""
    out = {"the input file": str(input_path), _key("potential", "file"): settings["potential"]["file"]}
    if settings["structure"].get("file"):
        out[_key("structure", "file")] = settings["structure"]["file"]
    if settings.get("extrapolation"):
        out[_key("extrapolation", "active_set")] = settings["extrapolation"]["active_set"]
    if restart:
        out["--restart"] = str(restart)
    return out


def _same(a, b) -> bool:
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def unwritable(path) -> str | None:
    """Why ``path`` cannot be created or replaced, or None (no file is created)."""
    p = Path(path)
    if p.is_dir():
        return "is a folder"
    if p.exists():
        if not p.is_file():
            return "exists and is not a regular file"
        if not os.access(p, os.W_OK):
            return "exists and is not writable (permission denied)"
    parent = p.parent
    while not parent.exists():                  # the folders that a run would create
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: the folder {parent} is not writable (permission denied)"
    return None


def check_outputs(settings, input_path, restart=None):
    """Raise PreflightError for an unwritable output or two files that are one."""
    outs = output_files(settings)
    ins = input_files(settings, input_path, restart)
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if _same(outs[a], outs[b]):
                raise PreflightError(f"{input_path}: {a} and {b} are the same file ({outs[a]}): one would "
                                     "overwrite the other; give them different names")
        for what, path in ins.items():
            if what == "--restart" and a in OWN_CHECKPOINTS:
                continue                        # continuing into the same checkpoint is the normal case:
                                                # it is read whole before the run and replaced atomically
            if _same(outs[a], path):
                raise PreflightError(f"{input_path}: {a} = {outs[a]} is {what}: the run would overwrite "
                                     "it; give the output another name")
    for a, path in outs.items():
        why = unwritable(path)
        if why:
            raise PreflightError(f"{input_path}: {a} = {path} {why}; choose a writable location")


# --------------------------------------------------------------------------- locks
class OutputLock:
    """Advisory locks (``flock`` on a hidden ``.NAME.lock`` next to each output) held for the run.

    Taken by rank 0 before any output is opened; a file locked by another live
    run raises PreflightError naming that run's pid and host.  The lock files
    are removed by :meth:`release` (also at exit).
    """

    def __init__(self, paths: dict[str, str], input_path):
        import atexit
        import fcntl
        self._held = []
        for key, path in paths.items():
            p = Path(path)
            lock = p.parent / f".{p.name}.lock"
            try:
                lock.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self.release()
                raise PreflightError(f"{input_path}: {key} = {path}: cannot create a file in its folder: "
                                     f"{exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                self.release()
                raise PreflightError(f"{input_path}: {key} = {path} is being written by another running "
                                     f"acemd ({owner}); wait for it to end or give this run other output "
                                     "files (nothing was written)") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, input {input_path}\n".encode(), 0)
            self._held.append((fd, lock))
        atexit.register(self.release)

    def release(self):
        while self._held:
            fd, lock = self._held.pop()
            try:
                os.unlink(lock)
            except OSError:
                pass
            os.close(fd)


# --------------------------------------------------------------------------- driver settings vs structure
FULLY_PERIODIC_CELL_MODES = ("iso", "triclinic")     # cell relaxations that strain all three axes


def _structure(settings, input_path):
    from .io.structure import load_structure
    spec = dict(settings["structure"])
    if "rattle_seed" in spec:
        spec["seed"] = spec.pop("rattle_seed")
    return load_structure(spec, Path(input_path).resolve().parent)


def check_driver_settings(settings, input_path, comm_size, restart_data=None):
    """Checks a driver would otherwise make only after opening its outputs (``--check`` runs them too):
    the processor grid against the ranks, a cell relaxation against the periodicity."""
    grid = settings["parallel"].get("grid")
    if grid is not None and int(np.prod(grid)) != comm_size:
        raise PreflightError(f"{input_path}: [parallel.grid] {list(grid)} has {int(np.prod(grid))} subdomains but "
                             f"the run has {comm_size} MPI rank(s); start it on {int(np.prod(grid))} ranks or "
                             "remove [parallel.grid]")
    driver = _driver(settings)
    mode = settings[driver].get("cell") if driver in ("minimize", "elastic") else None
    if mode not in FULLY_PERIODIC_CELL_MODES:
        return
    if restart_data is not None:
        pbc, source = np.asarray(restart_data["pbc"], bool), "the --restart checkpoint"
    else:
        pbc, source = np.asarray(_structure(settings, input_path).pbc, bool), "[structure]"
    if not pbc.all():
        raise PreflightError(f"{input_path}: [{driver}.cell] = \"{mode}\" relaxes all three cell axes, but "
                             f"{source} is periodic along {pbc.tolist()} only; use cell = \"aniso\" (relaxes "
                             "the periodic lengths) or \"fixed\" (nothing was written)")


def _driver(settings) -> str:
    from .simulation import driver_section
    return driver_section(settings)


# --------------------------------------------------------------------------- memory
def available_memory_bytes() -> float:
    """MemAvailable of this node (inf when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return math.inf


def estimated_atoms(settings, base_dir) -> tuple[int, float] | None:
    """(atoms, volume Å^3) of [structure] without building it; None when it needs reading a file."""
    s = settings["structure"]
    reps = int(np.prod(s.get("repeat", [1, 1, 1])))
    if "lattice" in s:
        lat, a, cubic = s["lattice"], float(s["a"]), bool(s.get("cubic", True))
        if lat == "hcp":
            c = float(s.get("c", a * math.sqrt(8.0 / 3.0)))
            n_cell, v_cell = 2, math.sqrt(3.0) / 2.0 * a * a * c
        else:
            n_cell = ATOMS_PER_CELL[(lat, cubic)]
            v_cell = a ** 3 * (1.0 if cubic else {"fcc": 0.25, "bcc": 0.5, "diamond": 0.25, "sc": 1.0}[lat])
        return n_cell * reps, v_cell * reps
    if reps == 1:
        return None
    from .io.structure import load_structure
    spec = {k: v for k, v in s.items() if k not in ("repeat", "rattle", "rattle_seed")}
    atoms = load_structure(spec, base_dir)
    volume = atoms.get_volume() if atoms.pbc.all() else float(np.prod(atoms.cell.lengths()))
    return len(atoms) * reps, volume * reps


def memory_estimate(n_atoms, volume, ranks, cutoff, skin) -> dict:
    """Bytes per rank (and extra on rank 0) for ``n_atoms`` in ``volume`` with the neighbour radius."""
    rho = n_atoms / volume if volume > 0 else 0.1
    r = cutoff + skin
    n_local = n_atoms / ranks
    side = (volume / ranks) ** (1.0 / 3.0)
    n_ghost = rho * ((side + 2 * r) ** 3 - side ** 3)
    pairs = n_local * rho * 4.0 / 3.0 * math.pi * r ** 3
    per_rank = n_local * BYTES_PER_OWNED_ATOM + n_ghost * BYTES_PER_GHOST_ATOM + pairs * BYTES_PER_PAIR
    return {"per_rank": per_rank, "root_extra": n_atoms * BYTES_PER_ATOM_ON_ROOT,
            "ghosts_per_rank": n_ghost, "neighbours_per_atom": pairs / max(n_local, 1)}


def check_memory(settings, input_path, ranks_total, ranks_on_node, cutoff, stream=sys.stdout):
    """Refuse a structure/skin that cannot fit; print a line for large set-ups. Returns the estimate."""
    est_atoms = estimated_atoms(settings, Path(input_path).resolve().parent)
    if est_atoms is None:
        return None
    n, volume = est_atoms
    driver = _driver(settings)
    skin = settings[driver].get("skin", 1.0)
    est = memory_estimate(n, volume, ranks_total, cutoff, skin)
    gib = 1024.0 ** 3
    limit = settings.get("guards", {}).get("max_memory_gib")
    node_need = est["per_rank"] * ranks_on_node + est["root_extra"]
    available = available_memory_bytes()
    what = (f"{n} atoms ([structure] repeat {settings['structure'].get('repeat')}) with a neighbour "
            f"radius of {cutoff + skin:.4g} Å ([{driver}.skin] = {skin}): "
            f"about {est['neighbours_per_atom']:.3g} neighbours and {est['ghosts_per_rank']:.3g} ghost atoms "
            f"per rank, estimated memory {est['per_rank'] / gib:.3g} GiB per rank "
            f"(+{est['root_extra'] / gib:.3g} GiB on rank 0)")
    if limit is not None and est["per_rank"] + est["root_extra"] > limit * gib:
        raise PreflightError(f"{input_path}: {what} exceeds [guards.max_memory_gib] = {limit}; use more "
                             "ranks, a smaller structure or skin, or raise the limit")
    if node_need > available:
        raise PreflightError(f"{input_path}: {what}, {node_need / gib:.3g} GiB on this node, which has "
                             f"{available / gib:.3g} GiB available; use more nodes/ranks, a smaller "
                             f"structure or a smaller [{driver}.skin] (typically 0.5-2 Å)")
    if n > 1_000_000 and stream is not None:
        print(f"# setting up {what}", file=stream, flush=True)
    return est


# --------------------------------------------------------------------------- warnings
def warnings_for(settings) -> list[str]:
    """Plausibility warnings (the run goes on)."""
    out = []
    if not settings.get("md"):
        return out
    dt = settings["md"]["timestep"]
    if dt > TIMESTEP_WARN_PS:
        out.append(f"[md.timestep] = {dt} ps = {dt * 1000:g} fs: the unit is ps (metal units); typical "
                   "values are 0.0005-0.002 ps (0.5-2 fs); the blow-up guards will stop the run if it "
                   "diverges")
    return out


def _phase_protocol(settings) -> bool:
    from .config import PHASE_MODES
    return bool(settings.get("free_energy")) and settings["free_energy"]["mode"] in PHASE_MODES


# --------------------------------------------------------------------------- all of it
def preflight(settings, input_path, comm, restart=None, check_only=False, stream=sys.stdout):
    """Run every pre-run check on rank 0 (errors raised on every rank); lock outputs unless check_only.

    Returns the OutputLock (or None) that the caller keeps until the run ends.
    """
    from mpi4py import MPI

    from .parallel.collective import on_root
    rank = comm.Get_rank()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    ranks_on_node = node.Get_size()
    node.Free()

    def work():
        check_outputs(settings, input_path, restart)
        from .potential import load_potential
        cutoff = float(load_potential(settings["potential"]["file"]).cutoff_max)
        check_memory(settings, input_path, comm.Get_size(), ranks_on_node, cutoff, stream=stream)
        data = None
        if restart and not _phase_protocol(settings):   # its --restart names a protocol file, no atoms
            from .restarts import check_restart
            data = check_restart(settings, input_path, restart)
        check_driver_settings(settings, input_path, comm.Get_size(), data)
        for w in warnings_for(settings):
            print(f"acemd: warning: {w}", file=sys.stderr, flush=True)
        if not check_only:
            return OutputLock(output_files(settings), input_path)
        return None

    lock = on_root(comm, work)
    return lock if rank == 0 else None


# --------------------------------------------------------------------------- set-up notice
SETUP_NOTICE_DELAY_S = 3.0


def kernels_cached() -> bool:
    """True when numba's cache holds the force kernel compiled from this source for this CPU, so
    a run loads it instead of compiling (reads numba's cache index; False when unsure)."""
    try:
        from .potential import kernel
        dispatcher = kernel.ace_forces
        index = dispatcher._cache._cache_file._load_index()     # {} when absent or the source changed
        magic = dispatcher.targetctx.codegen().magic_tuple()
        return any(key[1] == magic for key in index)
    except Exception:                  # another numba's internals: say nothing wrong, say it may compile
        return False


def setup_notice(comm, delay_s=SETUP_NOTICE_DELAY_S, stream=None):
    """A line on stdout if numba is still compiling the force kernel ``delay_s`` after the start
    (rank 0): on first use that takes 10-20 s of silence.  Nothing when the kernel is in numba's
    cache (a long set-up then is not a compile).  Returns the timer (``cancel()`` it)."""
    import threading
    cached = comm.Get_rank() == 0 and kernels_cached()

    def note():
        from .potential import kernel
        if not cached and not kernel.ace_forces.signatures:      # filled once compiled or loaded
            print("# setting up: numba is compiling the force kernels (first use after installing "
                  "or updating acemd, about 10-20 s; later runs load them from its cache) ...",
                  file=stream or sys.stdout, flush=True)

    timer = threading.Timer(delay_s, note)
    timer.daemon = True
    if comm.Get_rank() == 0:
        timer.start()
    return timer
