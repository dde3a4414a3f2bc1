"""Which acemd output a file is, so that a script given the wrong one says so and names the right tool.

acemd writes several HDF5 files that look alike to h5py (trajectory, checkpoint, the
``data`` files of ``[elastic]``, ``[free_energy]`` and the phase protocols) and several
text files (thermo log, YAML/JSON reports).  :func:`kind` tells them apart by their
layout; :func:`require` raises an :class:`AnalysisInputError` that names the file, what
it is, what the script needed and which script reads what was given.
"""
from __future__ import annotations

from pathlib import Path

from .errors import AnalysisInputError

#: kinds that are no acemd output
FOREIGN = ("hdf5", "text", "binary")

#: kind -> (what it is, what reads it)
KINDS = {
    "trajectory": ("an acemd H5MD trajectory ([trajectory].file)",
                   "scripts/acemd_rdf.py, acemd_msd.py, acemd_vdos.py, acemd_structure.py, acemd_convert.py"),
    "checkpoint": ("an acemd checkpoint ([checkpoint].file)", "acemd INPUT --restart"),
    "elastic": ("an [elastic] data file ([elastic].data)", "scripts/plot_elastic.py"),
    "free_energy": ("a [free_energy] data file ([free_energy].data)", "scripts/plot_free_energy.py"),
    "phase_data": ("the data file of a [free_energy] phase protocol (melting_temperature, ...)",
                   "scripts/plot_phase_diagram.py on the protocol's YAML report"),
    "phase_report": ("the YAML report of a [free_energy] phase protocol", "scripts/plot_phase_diagram.py"),
    "report": ("the report (YAML/JSON) of an acemd driver", None),
    "thermo_log": ("an acemd thermo log ([thermo].file)", "scripts/acemd_thermo.py"),
    "hdf5": ("an HDF5 file that acemd did not write, or an incomplete one", None),
    "text": ("a text file that is no acemd output", None),
    "binary": ("a binary file that is no acemd output", None),
}

#: a YAML/JSON report is smaller than this; a larger text file is not parsed to find out
MAX_REPORT_BYTES = 1024 * 1024

PHASE_MODES = ("melting_temperature", "transition_temperature", "coexistence_line", "phase_map")


def _hdf5_kind(path: Path) -> str:
    from .trajectory import _open_read_only
    try:
        f = _open_read_only(path)
    except OSError:
        return "binary"
    with f:
        keys = set(f)
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt == "acemd-checkpoint" or {"system", "state"} <= keys:
            return "checkpoint"
        if "h5md" in keys and "particles" in keys:
            return "trajectory"
        if "mode" in f.attrs and "curves" in keys:
            return "phase_data"
        if "C" in keys and "voigt_order" in f.attrs:
            return "elastic"
        if any(k.startswith("iteration_") for k in keys) or keys & {"temperature_sweep", "pressure_sweep"}:
            return "free_energy"
    return "hdf5"


def _text_kind(path: Path) -> str:
    try:
        head = path.read_bytes()[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    except OSError:
        return "binary"
    lines = [ln.split() for ln in head.splitlines() if ln.strip()]
    if any(ln[:2] == ["#", "Step"] for ln in lines[:50]) and any(ln[0] != "#" for ln in lines):
        return "thermo_log"        # a header row '#  Step  Time[ps] ...' and numbers below it
    if path.stat().st_size > MAX_REPORT_BYTES:
        return "text"
    import yaml
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)       # libyaml when present: fast
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        return "text"
    if isinstance(doc, dict):
        if doc.get("mode") in PHASE_MODES and "curves" in doc:
            return "phase_report"
        if "acemd" in doc or "C_GPa" in doc or "results" in doc:
            return "report"
    return "text"


def kind(path) -> str:
    """The kind of ``path`` (a key of :data:`KINDS`); raises if the file does not exist."""
    path = Path(path)
    if not path.exists():
        raise AnalysisInputError(f"{path}: file not found")
    if path.is_dir():
        raise AnalysisInputError(f"{path}: is a folder; give a file")
    import h5py
    try:
        is_h5 = h5py.is_hdf5(str(path))
    except OSError:
        is_h5 = False
    return _hdf5_kind(path) if is_h5 else _text_kind(path)


def require(path, wanted, needed: str) -> str:
    """Check that ``path`` is one of the kinds ``wanted`` (a str or tuple); returns its kind.

    ``needed`` says what the script reads, e.g. ``"a [free_energy] data file ([free_energy].data)"``.
    """
    wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    got = kind(path)
    if got in wanted:
        return got
    raise AnalysisInputError(f"{path}: not {needed}: this is {describe(got)}")


def describe(got: str) -> str:
    """``"what it is; read it with TOOL"`` of a kind."""
    what, tool = KINDS[got]
    return f"{what}; read it with {tool}" if tool else what
