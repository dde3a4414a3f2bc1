"""Command line: ``acemd input.toml [--restart CKPT] [--check]``, ``acemd convert``, ``acemd activeset``,
``acemd fit input.yaml [--check]``, ``acemd learn input.toml [--check] [--restart]``, ``acemd --help-input [SECTION | fit]``, ``acemd --version``.

Under ``mpiexec -n N`` (or ``srun``) every rank runs this.  Input errors are
detected identically on every rank, printed once, and every rank exits with
status 1.  An unexpected error on a single rank aborts the whole MPI job, so no
rank is left waiting.  A run stopped by the extrapolation grade
(``[extrapolation].stop_threshold``) exits with status 3 on every rank.  A run stopped
early by SIGTERM/SIGUSR1 writes its checkpoint and exits with status 75 (EX_TEMPFAIL:
incomplete, continue with ``--restart``); a run that completed its steps exits 0.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from . import __version__

EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_EXTRAPOLATION = 3      # [extrapolation].stop_threshold exceeded: checkpoint written, do not resubmit
EXIT_GUARD = 4              # a blow-up guard ([guards]) stopped the run: last good state checkpointed
EXIT_STOPPED = 75           # stopped early by SIGTERM/SIGUSR1: checkpoint written, restartable (EX_TEMPFAIL)
ERROR_AGREEMENT_TIMEOUT_S = 3.0     # an error seen by fewer ranks within this time aborts the job


def _known_errors():
    from .config import ConfigError
    from .drivers.md import InputError
    from .drivers.minimize import NotConvergedError
    from .engine import NonFiniteForceError
    from .parallel.collective import RemoteError
    from .potential import PotentialFileError, UnknownElementError
    errors = [ConfigError, InputError, PotentialFileError, UnknownElementError,
              NonFiniteForceError, RemoteError, FileNotFoundError, NotConvergedError]
    from .io.checkpoint import CheckpointError
    from .io.h5md import H5MDError
    from .io.structure import StructureError
    from .parallel import ParallelError
    from .guards import GuardError
    from .preflight import PreflightError
    from .integrators import BarostatRunawayError
    return tuple(errors + [ParallelError, CheckpointError, StructureError, H5MDError, PreflightError,
                           GuardError, BarostatRunawayError])


def _debug(argv) -> bool:
    """Tracebacks for every error: ``--debug`` or ``ACEMD_DEBUG=1``."""
    return "--debug" in argv or os.environ.get("ACEMD_DEBUG", "") not in ("", "0")


def _report(exc, debug, prefix="acemd: error"):
    """One message on stderr (plus the traceback with --debug)."""
    if debug and isinstance(exc, BaseException):
        traceback.print_exception(exc)
    print(f"{prefix}: {exc}", file=sys.stderr)
    sys.stderr.flush()


DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "File too large", "errno = 28",
                  "errno = 122", "errno = 27")


def _disk_full(exc) -> bool:
    import errno
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return any(t in str(exc) for t in DISK_FULL_TEXT)


def _unexpected(exc, settings=None) -> str:
    """The message for an error no check foresaw: the cause without the traceback."""
    if _disk_full(exc):
        ckpt = (settings or {}).get("checkpoint", {}).get("file", "the checkpoint file")
        name = getattr(exc, "filename", None)
        if not name:
            import re
            found = re.search(r"filename = '([^']+)'", str(exc))
            name = found.group(1) if found else None
        return (f"the disk is full (or a file-size/quota limit was reached)"
                + (f" while writing {name}" if name else "") + f": the run stopped; the last complete "
                f"checkpoint {ckpt} is kept (no temporary file left); free space and continue with "
                "--restart")
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, MemoryError):
        return "out of memory; use more ranks/nodes or a smaller system"
    return (f"{type(exc).__name__}: {exc} (an unexpected error; rerun with --debug or ACEMD_DEBUG=1 "
            "for the traceback and report it)")


def _local_errors():
    from .potential import CloseContactError
    return (CloseContactError,)


def _parser():
    p = argparse.ArgumentParser(
        prog="acemd",
        description="Molecular dynamics with ACE (PACE) potentials. Units: metal (Å, eV, ps, amu, K, bar).",
        epilog="Other commands: 'acemd convert IN OUT' converts a potential (.yaml/.ace/.yace) to .yace; "
               "'acemd activeset POTENTIAL.yaml TRAINING... -o OUT.asi' builds an active set "
               "(extrapolation grade); 'acemd fit input.yaml [--check]' fits a linear ACE potential "
               "(pacemaker's input.yaml); 'acemd learn input.toml [--check] [--restart]' learns one actively.")
    p.add_argument("input", nargs="?", help="TOML input file")
    p.add_argument("--help-input", nargs="?", const="", metavar="SECTION",
                   help="print the input keys (type, default, unit, meaning) of every section, or of one")
    p.add_argument("--restart", metavar="CKPT", help="continue from a checkpoint file")
    p.add_argument("--check", action="store_true", help="validate the input, print the resolved settings, exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of every error (also ACEMD_DEBUG=1)")
    p.add_argument("--version", action="version", version=f"acemd {__version__}")
    return p


def _convert(argv):
    p = argparse.ArgumentParser(prog="acemd convert",
                                description="Convert a potential (.yaml B-basis, .ace, .yace) to .yace.")
    p.add_argument("source")
    p.add_argument("destination")
    args = p.parse_args(argv)
    from .potential.yace_writer import convert_potential
    convert_potential(args.source, args.destination)
    print(f"wrote {args.destination}")
    return 0


def _activeset(argv):
    from .potential.activeset import DEFAULT_TOLERANCE, MAX_TOLERANCE
    p = argparse.ArgumentParser(
        prog="acemd activeset",
        description="Build an active set (.asi, pacemaker's layout) for the extrapolation grade gamma: "
                    "MaxVol over the B-basis projections of every training atom, per element, so that "
                    "every training atom has gamma <= 1 + tolerance.")
    p.add_argument("potential", help="pacemaker B-basis potential (.yaml)")
    p.add_argument("training", nargs="+", help="training structure file(s), any ASE format (extxyz, ...)")
    p.add_argument("-o", "--output", required=True, help="output .asi file (replaced atomically)")
    p.add_argument("--full", action="store_true",
                   help="full active set on dE/dc (B-functions x ndensity) instead of the linear one")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"MaxVol stops when all |coefficients| <= 1 + tolerance "
                        f"(default {DEFAULT_TOLERANCE}, at most {MAX_TOLERANCE})")
    p.add_argument("--batch-atoms", type=int, default=20000,
                   help="atoms whose projections are held at once (default 20000)")
    p.add_argument("--format", help="ASE format of the training files (default: from the file name)")
    args = p.parse_args(argv)
    from pathlib import Path

    from .potential.activeset import build_active_set, check_output, write_active_set
    output = Path(args.output)
    check_output(output)
    result = build_active_set(args.potential, args.training, tolerance=args.tolerance, full=args.full,
                              batch_atoms=args.batch_atoms, fmt=args.format,
                              log=lambda line: print(line, flush=True))
    for warning in result.warnings:
        print(f"acemd: warning: {warning}", file=sys.stderr)
    write_active_set(output, result.matrices)
    sizes = ", ".join(f"{el} {m.shape[0]}x{m.shape[1]}" for el, m in result.matrices.items())
    print(f"wrote {output} ({result.kind} active set: {sizes}; {result.structures} structures, "
          f"{result.passes} pass(es) over {result.batches} batch(es))")
    return 0


def _fit(argv, debug):
    """``acemd fit input.yaml [--check] [--restart CHECKPOINT]``: an ACE fit from pacemaker's input.yaml
    (``acemd.fit``: linear, or nonlinear when the input asks for it).  Every rank reads and checks the
    input; an input error is printed once and every rank exits 1; a stop signal during a nonlinear fit
    writes a checkpoint and exits 75."""
    p = argparse.ArgumentParser(
        prog="acemd fit",
        description="Fit an ACE potential to reference data, from pacemaker's input.yaml: linear (exact least "
                    "squares) or nonlinear (pacemaker's model, iterative) ('acemd --help-input fit' lists its keys).")
    p.add_argument("input", help="pacemaker's input.yaml")
    p.add_argument("--check", action="store_true",
                   help="validate the input (and the data and basis), print the resolved settings, write nothing")
    p.add_argument("--restart", metavar="CHECKPOINT",
                   help="continue a nonlinear fit stopped by a signal from its checkpoint (the command it printed)")
    p.add_argument("--debug", action="store_true", help="show the traceback of every error (also ACEMD_DEBUG=1)")
    args = p.parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    errcomm = comm.Dup() if comm.Get_size() > 1 else None
    try:
        from .fit.config import format_fit_settings, read_fit_input
        settings = read_fit_input(args.input)
        if rank == 0:
            for warning in settings.warnings:
                print(f"acemd: warning: {warning}", file=sys.stderr)
        if args.check and rank == 0:
            print(f"# acemd {__version__}: {args.input} is valid ({getattr(settings.fit, 'model', 'linear')} ACE fit); "
                  "resolved settings:")
            print(format_fit_settings(settings), end="", flush=True)
        try:
            from .fit.run import run_fit
        except ModuleNotFoundError as exc:
            if exc.name != "acemd.fit.run":
                raise
            if args.check:
                if rank == 0:
                    print("# the data and the basis were not checked: this acemd has no fitting pipeline yet")
                return 0
            raise FileNotFoundError("acemd fit: this acemd has no fitting pipeline (acemd.fit.run) yet") from None
        return run_fit(settings, check_only=args.check, restart=args.restart)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - an error on one rank must not leave the others hanging
        known = isinstance(exc, _known_errors() + _local_errors() + (ValueError,))
        return _fail(exc, exc if known else _unexpected(exc), known, comm, errcomm, debug)


def numpy_single_threaded():
    """Load numpy's and scipy's BLAS with one thread (unless the user set a count), then give the
    environment back, so that processes started later (a DFT code labelling) see the user's own.

    acemd scales over MPI ranks, one thread each.  In ``acemd learn`` the selection's many small matrix
    products ran 3-30 times slower with OpenBLAS's threads when other jobs shared the cores (48
    candidates: 95.6 s against 3.3 s).  No effect once numpy is loaded.
    """
    from . import BLAS_THREAD_KEYS
    if "numpy" in sys.modules:
        return
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_KEYS}
    for k in BLAS_THREAD_KEYS:
        os.environ.setdefault(k, "1")
    try:
        import numpy  # noqa: F401  (its OpenBLAS reads the thread count when it loads)
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS too)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _learn(argv, debug):
    """``acemd learn input.toml [--check] [--restart]``: active learning (``acemd.learn``), on one rank.
    Exit 0 finished, 1 an error, 75 stopped by SIGTERM/SIGUSR1 (continue with --restart)."""
    p = argparse.ArgumentParser(
        prog="acemd learn",
        description="Active learning: explore with the current potential, select D-optimally the structures "
                    "above gamma_lower, label them, refit, until no exploration extrapolates "
                    "(docs/active-learning.md).")
    p.add_argument("input", help="TOML input with a [learn] section")
    p.add_argument("--check", action="store_true",
                   help="check the input (labeller, fit keys, explorations), run nothing")
    p.add_argument("--restart", action="store_true", help="continue the run in [learn].folder")
    p.add_argument("--debug", action="store_true", help="show the traceback of every error (also ACEMD_DEBUG=1)")
    args = p.parse_args(argv)
    from . import signals
    signals.install_early()
    try:
        from mpi4py import MPI
        signals.reinstall_after_mpi_init()
        if MPI.COMM_WORLD.Get_size() > 1:
            raise ValueError("acemd learn runs on one rank (its fits and explorations are small); run it "
                             "without mpiexec")
        numpy_single_threaded()
        from .learn import check_learn, read_learn_input, run_learn
        settings = read_learn_input(args.input)
        if args.check:
            check_learn(settings)
            print(f"# acemd {__version__}: {args.input} is valid (acemd learn); work folder {settings.folder}")
            return 0
        return run_learn(settings, restart=args.restart, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001
        known = isinstance(exc, _known_errors() + _local_errors() + (ValueError,))
        if debug and not known:
            traceback.print_exception(exc)
        _report(exc if known else _unexpected(exc), debug)
        return EXIT_INPUT_ERROR
    finally:
        signals.uninstall_early()


def main(argv=None):
    as_command = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = _debug(argv)
    if argv and argv[0] == "convert":
        def convert():
            try:
                return _convert([a for a in argv[1:] if a != "--debug"])
            except _known_errors() as exc:
                _report(exc, debug)
                return EXIT_INPUT_ERROR
            except (OSError, UnicodeDecodeError) as exc:
                _report(_unexpected(exc), debug)
                return EXIT_INPUT_ERROR
        return _on_first_rank(convert)
    if argv and argv[0] == "fit":
        return _fit(argv[1:], debug)
    if argv and argv[0] == "learn":
        return _learn(argv[1:], debug)
    if argv and argv[0] == "activeset":
        from .potential.extrapolation import ActiveSetError
        try:
            return _activeset(argv[1:])
        except _known_errors() + (ActiveSetError, OSError) as exc:
            print(f"acemd: error: {exc}", file=sys.stderr)
            return EXIT_INPUT_ERROR
    from . import signals
    signals.install_early()     # before MPI_Init: a USR1 from SLURM at start-up is not lost
    try:
        return _run(argv, debug)
    finally:
        if as_command:          # the outcome is decided: a late USR1/TERM must not kill the exit
            signals.ignore_until_exit()
        else:                   # called in-process (tests): give the caller its handlers back
            signals.uninstall_early()


def _run(argv, debug=False):
    from . import signals
    args = _parser().parse_args(argv)
    if args.help_input is not None:
        from .docgen import UnknownSectionError, help_input
        try:
            sys.stdout.write(help_input(args.help_input))
        except UnknownSectionError as exc:
            print(f"acemd: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    if args.input is None:
        _parser().print_usage(sys.stderr)
        print("acemd: error: an input file is required", file=sys.stderr)
        return EXIT_USAGE

    from mpi4py import MPI
    signals.reinstall_after_mpi_init()      # the mpich wheel's MPI_Init took SIGUSR1
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    errcomm = comm.Dup() if comm.Get_size() > 1 else None     # only for the error agreement
    settings = None
    lock = notice = None
    try:
        from .config import format_settings, load_config
        from .preflight import preflight
        settings, text = load_config(args.input)
        lock = preflight(settings, args.input, comm, restart=args.restart, check_only=args.check)
        if args.check:
            from .potential import load_potential
            from pathlib import Path

            from .drivers.md import InputError
            from .io.structure import load_structure
            from .drivers import driver_class
            checker = getattr(driver_class(settings), "check_input", None)
            if checker is not None:          # the driver's own checks beyond the schema
                checker(settings, args.input)
            pot = load_potential(settings["potential"]["file"])
            atoms = load_structure(settings["structure"], Path(args.input).resolve().parent)
            from .simulation import check_structure
            check_structure(settings, len(atoms), atoms.pbc, args.input)
            missing = sorted(set(atoms.get_chemical_symbols()) - set(pot.elements))
            if missing:
                raise InputError(f"{args.input}: [structure] contains {', '.join(missing)}, which the "
                                 f"potential {pot.source} does not describe (it has {', '.join(pot.elements)})")
            if settings["extrapolation"]:         # the active set must fit the B-basis .yaml
                from .potential.extrapolation import ActiveSetError, read_active_set
                try:
                    read_active_set(settings["extrapolation"]["active_set"], pot)
                except ActiveSetError as exc:
                    raise InputError(f"{args.input}: [extrapolation.active_set] {exc}") from None
            if rank == 0:
                print(f"# acemd {__version__}: {args.input} is valid")
                print(f"# potential: {pot.source} ({', '.join(pot.elements)}, cutoff {pot.cutoff_max} Å)")
                print(f"# structure: {len(atoms)} atoms ({atoms.get_chemical_formula()}), "
                      f"cell volume {atoms.get_volume() if atoms.cell.rank == 3 else 0.0:.3f} Å^3")
                if args.restart:
                    print(f"# restart: {args.restart} matches the input")
                print(format_settings(settings))
            return 0
        if args.restart:
            from pathlib import Path
            if not Path(args.restart).exists():
                raise FileNotFoundError(f"--restart: checkpoint file not found: {args.restart}")
        from .drivers import driver_class
        from .preflight import setup_notice
        notice = setup_notice(comm)           # a line if numba compiles / a big set-up takes long
        import time
        started = time.time() - 1.0         # file times may be coarse: a checkpoint after this is this run's
        run = driver_class(settings)(settings, text, args.input, comm=comm, restart=args.restart)
        summary = run.run()
        if summary.get("stopped_by") == "extrapolation":
            if rank == 0:
                print(f"acemd: {summary['message']}", file=sys.stderr)
            comm.Barrier()      # every rank has closed its files before any exits non-zero
            return EXIT_EXTRAPOLATION
        if summary.get("stopped_by") == "guard":
            if rank == 0:
                print(f"acemd: {summary['message']}", file=sys.stderr)
            comm.Barrier()
            return EXIT_GUARD
        if summary.get("stopped_by") and summary.get("steps", -1) < getattr(run, "nsteps", 0):
            if rank == 0:
                from .restarts import restart_command
                print(f"acemd: {summary['message']} (exit status {EXIT_STOPPED}: incomplete; "
                      f"{restart_command(settings, args.input, started, args.restart)})", file=sys.stderr)
            comm.Barrier()
            return EXIT_STOPPED
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - an error on one rank must not leave the others hanging
        known = isinstance(exc, _known_errors() + _local_errors())
        return _fail(exc, exc if known else _unexpected(exc, settings), known, comm, errcomm, debug)
    finally:
        if notice is not None:
            notice.cancel()
        if lock is not None:        # the output locks end with the run, also after an error
            lock.release()


def _fail(exc, message, known, comm, errcomm, debug) -> int:
    """Report an error of a run and return exit status 1 on every rank.

    Raised on every rank (collective checks, errors broadcast from rank 0): reported once.  Found by
    this rank only (e.g. two atoms on top of each other in its subdomain): the others wait in a
    collective, so the job is aborted.
    """
    rank = comm.Get_rank()
    if _every_rank_failed(errcomm):
        if rank == 0 or debug:
            _report(message, debug and known)
            if debug and not known:
                traceback.print_exception(exc)
        sys.stderr.flush()
        return EXIT_INPUT_ERROR
    _report(message, debug and known, f"acemd: error (rank {rank})")
    if debug and not known:
        traceback.print_exception(exc)
    sys.stderr.flush()
    comm.Abort(EXIT_INPUT_ERROR)
    return EXIT_INPUT_ERROR


def _on_first_rank(fn):
    """Run a serial command once per job: under mpiexec/srun rank 0 works, the others share its status."""
    if not any(k in os.environ for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")):
        return fn()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    status = fn() if comm.Get_rank() == 0 else None
    return comm.bcast(status, root=0)


def _every_rank_failed(errcomm, timeout_s=ERROR_AGREEMENT_TIMEOUT_S) -> bool:
    """True when every rank reached its error handler within ``timeout_s`` (a barrier on a private
    communicator, so it never matches a collective that other ranks are still waiting in)."""
    if errcomm is None or errcomm.Get_size() == 1:
        return True
    import time
    request = errcomm.Ibarrier()
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if request.Test():
            return True
        time.sleep(0.005)
    return False

if __name__ == "__main__":
    sys.exit(main())
