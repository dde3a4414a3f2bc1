"""One point of a parameter sweep: a copy of an input file with some keys set to new values.

``python -m acemd.sweep input.toml task/input.toml thermostat.temperature=600 velocities.temperature=600``
writes ``task/input.toml``.  Input files the run reads (structure, potential, active set) stay
those of the original input (relative paths become absolute); output files (log, trajectory,
checkpoint, dump) keep their relative names and so land in the task's folder.  The result is
checked like any input before it is written.  Used by ``slurm/sweep_array.sbatch``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

from .config import SCHEMA, ConfigError, parse_config

INPUT_PATH_KEYS = {("structure", "file"), ("potential", "file"), ("extrapolation", "active_set")}


def parse_value(text: str):
    """A TOML value (``600``, ``1e-3``, ``true``, ``[2, 1, 1]``, ``"nvt"``), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)     # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def dumps(raw: dict) -> str:
    """TOML text of {section: {key: value}} (the only nesting acemd inputs have)."""
    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(v)}" for key, v in table.items())
        lines.append("")
    return "\n".join(lines)


def variant(input_path, assignments: dict[str, object], destination) -> str:
    """TOML text of ``input_path`` with ``{"section.key": value}`` set, for a run in ``destination``'s folder."""
    input_path = Path(input_path)
    try:
        raw = tomllib.loads(input_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(input_path, "", f"cannot read the input to sweep: {exc}") from None
    base = input_path.resolve().parent
    for section, key in INPUT_PATH_KEYS:
        value = raw.get(section, {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            raw[section][key] = str((base / value).resolve())
    for name, value in assignments.items():
        section, _, key = name.partition(".")
        if not key or section not in SCHEMA:
            raise ConfigError(input_path, name, "a swept key is 'section.key', e.g. thermostat.temperature; "
                                                f"sections: {', '.join(SCHEMA)}")
        raw.setdefault(section, {})[key] = value
    text = dumps(raw)
    parse_config(text, Path(destination))              # every key checked before any job runs
    return text


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m acemd.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="the input file to vary")
    p.add_argument("output", help="the new input file (its folder is created)")
    p.add_argument("assignments", nargs="+", metavar="section.key=value",
                   help="TOML values, e.g. thermostat.temperature=600")
    args = p.parse_args(argv)
    assignments = {}
    for item in args.assignments:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"expected section.key=value, got {item!r}")
        assignments[name.strip()] = parse_value(value.strip())
    out = Path(args.output)
    try:
        text = variant(args.input, assignments, out)
    except ConfigError as exc:
        print(f"acemd sweep: error: {exc}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({', '.join(f'{k} = {_toml_value(v)}' for k, v in assignments.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
