"""What every ``scripts/acemd_*.py`` and ``plot_*.py`` front end shares: options, outputs, errors.

An option value that cannot be right whatever the input (``--bins 0``, ``--r-max -3``)
is refused by argparse before any file is read: its usage line and ``error: argument
--bins: ...``, exit status 2.  An :class:`AnalysisInputError` (or a missing file)
becomes one line on stderr, ``error: <file>: <what>``, and exit status 1, without a
traceback.  Both happen before any output is written.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .errors import AnalysisInputError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None/False or the help text already names it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def int_at_least(minimum: int, what: str):
    """argparse type: an integer >= ``minimum``; ``what`` names the value in the message."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer ({what}), got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def float_above(minimum: float, what: str, inclusive: bool = False):
    """argparse type: a finite number > ``minimum`` (>= with ``inclusive``)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({what}), got {text!r}") from None
        ok = value >= minimum if inclusive else value > minimum
        if not (ok and math.isfinite(value)):
            bound = "at least" if inclusive else "above"
            raise argparse.ArgumentTypeError(f"{what} must be a finite number {bound} {minimum:g}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def parser(prog: str, description: str, input_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    p.add_argument("input", help=input_help)
    p.add_argument("-o", "--output", metavar="PREFIX",
                   help="output prefix: writes PREFIX.csv and PREFIX.png "
                        "(default: the input's name without extension + a suffix)")
    p.add_argument("--no-plot", action="store_true", help="write the table only (no matplotlib needed)")
    return p


def add_frame_options(p: argparse.ArgumentParser, default_every: int = 1):
    p.add_argument("--frames", metavar="SEL", default=None,
                   help="frames to use: start:stop[:step] or a comma list of indices (negative from the end)")
    p.add_argument("--every", type=int_at_least(1, "a frame stride"), default=default_every, metavar="N",
                   help="use every N-th selected frame")


def add_threads_option(p: argparse.ArgumentParser):
    p.add_argument("--threads", type=int_at_least(1, "a thread count"), default=None, metavar="N",
                   help="threads of freud/pyscal3 (default: their own default, all cores)")


def check_output(path, option: str = "-o/--output", plot: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work: a folder, a folder under a
    regular file, an unwritable folder, or (``plot``) an image format matplotlib cannot write.
    Missing folders are fine: the writers create them."""
    import os
    path = Path(path)
    if path.is_dir():
        raise AnalysisInputError(f"{option} {path}: is a folder; give a file name")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise AnalysisInputError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise AnalysisInputError(f"{option} {path}: the folder {folder} is not writable")
    if plot:
        from .plotting import supported_formats
        formats = supported_formats()
        if path.suffix.lower().lstrip(".") not in formats:
            raise AnalysisInputError(f"{option} {path}: unknown image format {path.suffix!r}; use one of "
                                     f"{', '.join('.' + f for f in sorted(formats))}")
    return path


def check_outputs(args, prefix: Path):
    """The table (and, unless --no-plot, the plot) of an ``-o PREFIX`` front end can be written."""
    check_output(prefix.with_suffix(".csv"))
    if not getattr(args, "no_plot", True):
        check_output(prefix.with_suffix(".png"), plot=True)
    return prefix


def output_prefix(args, suffix: str) -> Path:
    """``-o PREFIX``, or the input's name without extension + ``suffix``; checked writable
    (call it before the analysis, so a bad output path costs nothing)."""
    if args.output:
        prefix = Path(args.output)
    else:
        src = Path(args.input)
        prefix = src.with_name(src.stem + suffix)
    return check_outputs(args, prefix)


def run(main, argv=None) -> int:
    """Call ``main(argv)``; turn input errors into one line and exit status 1."""
    try:
        return int(main(argv) or 0)
    except AnalysisInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        name = exc.filename or ""
        print(f"error: {name}: file not found" if name else f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
