"""Command line: ``acemd input.toml [--restart CKPT] [--check]``, ``acemd convert``, ``acemd activeset``,
``acemd --version``.

Under ``mpiexec -n N`` (or ``srun``) every rank runs this.  Input errors are
detected identically on every rank, printed once, and every rank exits with
status 1.  An unexpected error on a single rank aborts the whole MPI job, so no
rank is left waiting.  A run stopped by the extrapolation grade
(``[extrapolation].stop_threshold``) exits with status 3 on every rank.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from . import __version__

EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_EXTRAPOLATION = 3      # [extrapolation].stop_threshold exceeded: checkpoint written, do not resubmit


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
    return tuple(errors + [ParallelError, CheckpointError, StructureError, H5MDError])


def _local_errors():
    from .potential import CloseContactError
    return (CloseContactError,)


def _parser():
    p = argparse.ArgumentParser(
        prog="acemd",
        description="Molecular dynamics with ACE (PACE) potentials. Units: metal (Å, eV, ps, amu, K, bar).",
        epilog="Other commands: 'acemd convert IN OUT' converts a potential (.yaml/.ace/.yace) to .yace; "
               "'acemd activeset POTENTIAL.yaml TRAINING... -o OUT.asi' builds an active set "
               "(extrapolation grade).")
    p.add_argument("input", nargs="?", help="TOML input file")
    p.add_argument("--restart", metavar="CKPT", help="continue from a checkpoint file")
    p.add_argument("--check", action="store_true", help="validate the input, print the resolved settings, exit")
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "convert":
        try:
            return _convert(argv[1:])
        except _known_errors() as exc:
            print(f"acemd: error: {exc}", file=sys.stderr)
            return EXIT_INPUT_ERROR
    if argv and argv[0] == "activeset":
        from .potential.extrapolation import ActiveSetError
        try:
            return _activeset(argv[1:])
        except _known_errors() + (ActiveSetError, OSError) as exc:
            print(f"acemd: error: {exc}", file=sys.stderr)
            return EXIT_INPUT_ERROR
    args = _parser().parse_args(argv)
    if args.input is None:
        _parser().print_usage(sys.stderr)
        print("acemd: error: an input file is required", file=sys.stderr)
        return EXIT_USAGE

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    try:
        from .config import format_settings, load_config
        settings, text = load_config(args.input)
        if args.check:
            from .potential import load_potential
            from pathlib import Path

            from .drivers.md import InputError
            from .io.structure import load_structure
            pot = load_potential(settings["potential"]["file"])
            atoms = load_structure(settings["structure"], Path(args.input).resolve().parent)
            missing = sorted(set(atoms.get_chemical_symbols()) - set(pot.elements))
            if missing:
                raise InputError(f"{args.input}: [structure] contains {', '.join(missing)}, which the "
                                 f"potential {pot.source} does not describe (it has {', '.join(pot.elements)})")
            if settings["elastic"] and settings["elastic"]["temperature"] > 0.0:
                raise InputError(f"{args.input}: [elastic.temperature] > 0: finite-temperature elastic "
                                 "constants are not available yet; use temperature = 0")
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
                print(format_settings(settings))
            return 0
        if args.restart:
            from pathlib import Path
            if not Path(args.restart).exists():
                raise FileNotFoundError(f"--restart: checkpoint file not found: {args.restart}")
        from .drivers import driver_class
        run = driver_class(settings)(settings, text, args.input, comm=comm, restart=args.restart)
        summary = run.run()
        if summary.get("stopped_by") == "extrapolation":
            if rank == 0:
                print(f"acemd: {summary['message']}", file=sys.stderr)
            return EXIT_EXTRAPOLATION
        return 0
    except _local_errors() as exc:
        # found by one rank only (e.g. two atoms on top of each other in its subdomain)
        print(f"acemd: error (rank {rank}): {exc}", file=sys.stderr)
        sys.stderr.flush()
        if comm.Get_size() > 1:
            comm.Abort(EXIT_INPUT_ERROR)
        return EXIT_INPUT_ERROR
    except _known_errors() as exc:
        # raised identically on every rank (collective checks); report once
        if rank == 0:
            print(f"acemd: error: {exc}", file=sys.stderr)
        sys.stderr.flush()
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - an error on one rank must not leave the others hanging
        traceback.print_exc()
        sys.stderr.flush()
        if comm.Get_size() > 1:
            comm.Abort(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
