"""Helpers of the analysis tests: run a script of scripts/ in-process or as a command, check a PNG."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name):
    """The module of scripts/<name>.py (its ``main`` is called in-process by the tests)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_script(name, *argv):
    """Run scripts/<name>.py in-process through the same error wrapper as its command line."""
    from acemd.analysis.cli import run
    return run(load_script(name).main, [str(a) for a in argv])


def is_png(path):
    path = Path(path)
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_command(name, *argv):
    """Run scripts/<name>.py as its own process: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *[str(a) for a in argv]],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)
    return proc.returncode, proc.stdout, proc.stderr
