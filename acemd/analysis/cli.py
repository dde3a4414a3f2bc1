"""What every ``scripts/acemd_*.py`` front end shares: common options, outputs, error handling.

An :class:`AnalysisInputError` (or a missing file) becomes one line on stderr,
``error: <file>: <what>``, and exit status 1, without a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import AnalysisInputError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None/False or the help text already names it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


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
    p.add_argument("--every", type=int, default=default_every, metavar="N", help="use every N-th selected frame")


def add_threads_option(p: argparse.ArgumentParser):
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads of freud/pyscal3 (default: their own default, all cores)")


def output_prefix(args, suffix: str) -> Path:
    if args.output:
        return Path(args.output)
    src = Path(args.input)
    return src.with_name(src.stem + suffix)


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
