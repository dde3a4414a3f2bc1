"""The input reference, generated from ``acemd.config.SCHEMA`` so that it cannot drift from the code.

``python -m acemd.docgen`` prints docs/input-reference.md, ``--write`` writes it (and
docs/fit-input-reference.md, from ``acemd.fit.input_schema.FIT_SCHEMA``), ``--check`` exits 1 when a file
differs from its schema.  ``acemd --help-input [SECTION]`` prints the same tables as
plain text.  Every section of SCHEMA is documented from its keys (type, default, unit, meaning,
allowed values); ``config.SECTION_DOCS`` adds what a section is for and, for sections with free
keys such as ``[masses]``, how such a key is written.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from pathlib import Path

from .config import PATH_KEYS, SCHEMA, SECTION_DOCS, Key

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "docs" / "input-reference.md"
FIT_REFERENCE_PATH = REFERENCE_PATH.with_name("fit-input-reference.md")
REGENERATE = "python -m acemd.docgen --write"
FIT_HELP_NAME = "fit"          # acemd --help-input fit: the keys of acemd fit's input.yaml

_TYPE_NAMES = {int: "int", float: "float", str: "string", bool: "bool", list: "list"}


class UnknownSectionError(ValueError):
    """``--help-input`` was given a section the input file does not have."""


# -- one key ------------------------------------------------------------------------------------

def type_text(section: str, key: str, spec: Key) -> str:
    if spec.type_doc:
        return spec.type_doc
    if (section, key) in PATH_KEYS:
        return "path"
    types = spec.types
    if float in types:           # int accepted where a float is expected
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(_TYPE_NAMES.get(t, t.__name__) for t in types))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return re.sub(r"e([+-])0+(\d)", r"e\1\2", repr(value))     # 1e-06 -> 1e-6


def default_text(spec: Key) -> str:
    if spec.default_doc:
        return spec.default_doc
    if spec.required:
        return "— (required)"
    if spec.default is None:
        return "—"
    return f"`{_toml(spec.default)}`"


def meaning_text(spec: Key) -> str:
    text = spec.doc.strip() or "(undocumented)"
    choices = getattr(spec.check, "choices", None)
    if choices:
        text = text.rstrip(".") + ". One of " + ", ".join(f"`{_toml(c)}`" for c in choices)
    return text


def _rows(section: str):
    """(key, type, default, unit, meaning) of every key of a section, free keys included."""
    rows = []
    doc = SECTION_DOCS.get(section)
    if doc is not None and doc.free_key is not None:
        name, spec = doc.free_key
        rows.append((name, type_text(section, name, spec), default_text(spec), spec.unit, meaning_text(spec)))
    for key, spec in SCHEMA[section].items():
        rows.append((key, type_text(section, key, spec), default_text(spec), spec.unit, meaning_text(spec)))
    return rows


# -- Markdown -----------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _link_pages(text: str) -> str:
    """Turn mentions of docs/<page>.md into links (the reference lives in docs/ itself)."""
    return re.sub(r"(?<![\w/`(])docs/([\w.-]+\.md)", r"[\1](\1)", text)


def section_markdown(section: str) -> str:
    doc = SECTION_DOCS.get(section)
    lines = [f"## `[{section}]`", ""]
    intro = doc.summary if doc else ""
    if doc and doc.page:
        intro += f" Explained in [{doc.page.partition('#')[0]}]({doc.page})."
    if intro:
        lines += [_link_pages(intro.strip()), ""]
    rows = _rows(section)
    if not rows:
        lines += ["This section has no keys.", ""]
        return "\n".join(lines)
    lines += ["| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for key, typ, default, unit, meaning in rows:
        lines.append(f"| `{_cell(key)}` | {_cell(typ)} | {_cell(default)} | {_cell(unit)} | "
                     f"{_cell(_link_pages(meaning))} |")
    lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The whole docs/input-reference.md."""
    head = [
        "# Input reference",
        "",
        f"<!-- Generated from acemd.config.SCHEMA by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "The keys of the TOML input file, section by section, generated from the schema the input is "
        "checked against (`acemd --help-input [SECTION]` prints the same tables). Units are LAMMPS "
        "`metal` (Å, eV, ps, amu, K, bar). All paths are relative to the input file's folder. "
        "A key marked \"— (required)\" must be given when its section is present ([potential] and [md] "
        "always are); \"—\" means no default: the key is optional and absent unless given. "
        "An unknown or misspelt key, a wrong type or an impossible value stops the run before any work "
        "starts, with a message naming the file and the key path.",
        "",
        "Sections: " + ", ".join(f"[`[{s}]`](#{s})" for s in SCHEMA) + ".",
        "",
    ]
    body = [section_markdown(s) for s in SCHEMA]
    return "\n".join(head + body).rstrip("\n") + "\n"


# -- acemd fit's input.yaml (acemd.fit.input_schema.FIT_SCHEMA) ---------------------------------------

def _fit_rows(section):
    """(key, type, default, unit, meaning) of a FitSection: its keys, then the refused and ignored ones."""
    from .fit.input_schema import PART2
    rows = [(key, type_text("", key, spec), default_text(spec), spec.unit, meaning_text(spec))
            for key, spec in section.keys.items()]
    rows += [(key, "—", "—", "", f"refused: {PART2}; {hint}") for key, hint in section.refused.items()]
    rows += [(key, "—", "—", "", f"accepted and ignored (a warning): {why}") for key, why in section.ignored.items()]
    return rows


def _fit_anchor(name: str) -> str:
    return re.sub(r"[^\w-]", "", name.replace(" ", "-").lower())


def fit_reference_markdown() -> str:
    """The whole docs/fit-input-reference.md."""
    from .fit.input_schema import FIT_SCHEMA
    lines = [
        "# Fit input reference (`acemd fit input.yaml`)",
        "",
        f"<!-- Generated from acemd.fit.input_schema.FIT_SCHEMA by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "The keys of pacemaker's `input.yaml` as `acemd fit` reads it (the linear and the nonlinear ACE fit), mapping by "
        "mapping, generated from the schema the input is checked against (`acemd --help-input fit` prints "
        "the same tables). Units: Å, eV. Relative paths are relative to the input file's folder. "
        "\"— (required)\" marks a key that must be given; \"—\" means no default. An unknown key, a wrong "
        "type or value stops `acemd fit` before any work, naming the file and the key path. Keys marked "
        "*refused* are pacemaker's keys acemd does not support (an error saying what to do instead); keys "
        "marked *ignored* are accepted with a warning. Explained with examples in "
        "[fitting-input.md](fitting-input.md) and [fitting-nonlinear-input.md](fitting-nonlinear-input.md).",
        "",
        "Mappings: " + ", ".join(f"[`{n}`](#{_fit_anchor(n)})" for n in FIT_SCHEMA) + ".",
        "",
    ]
    for name, section in FIT_SCHEMA.items():
        lines += [f"## {name}", "", section.summary, "",
                  "| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
        for key, typ, default, unit, meaning in _fit_rows(section):
            lines.append(f"| `{_cell(key)}` | {_cell(typ)} | {_cell(default)} | {_cell(unit)} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def fit_help_text(width: int = 100) -> str:
    """``acemd --help-input fit``: every key of acemd fit's input.yaml, mapping by mapping."""
    from .fit.input_schema import FIT_SCHEMA
    out = []
    for name, section in FIT_SCHEMA.items():
        out.append(f"{name}:")
        out += _wrap(section.summary, width, "  ")
        for key, typ, default, unit, meaning in _fit_rows(section):
            head = f"  {key}  ({typ}" + (f", {_plain(unit)}" if unit else "")
            if default.startswith("— (") and default.endswith(")"):
                head += f"; {_plain(default[3:-1])})"
            else:
                head += f"; default {_plain(default)})" if default != "—" else ")"
            out.append(head)
            out += _wrap(meaning, width, "      ")
        out.append("")
    return "\n".join(out)


# -- plain text (acemd --help-input) ------------------------------------------------------------

def _plain(text: str) -> str:
    return text.replace("`", "")


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(_plain(text), width, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False)


def section_text(section: str, width: int = 100) -> str:
    doc = SECTION_DOCS.get(section)
    out = [f"[{section}]"]
    intro = doc.summary if doc else ""
    if doc and doc.page:
        intro += f" See docs/{doc.page.partition('#')[0]}."
    if intro:
        out += _wrap(intro.strip(), width, "  ")
    rows = _rows(section)
    if not rows:
        out.append("  (no keys)")
    for key, typ, default, unit, meaning in rows:
        head = f"  {key}  ({typ}"
        head += f", {_plain(unit)}" if unit else ""
        if default.startswith("— (") and default.endswith(")"):     # "— (required ...)"
            head += f"; {_plain(default[3:-1])})"
        else:
            head += f"; default {_plain(default)})" if default != "—" else ")"
        out.append(head)
        out += _wrap(meaning, width, "      ")
    return "\n".join(out) + "\n"


def help_input(section: str | None = None) -> str:
    """Plain-text tables of every section, or of one; an unknown section raises with a suggestion."""
    if not section:
        return ("\n".join(section_text(s) for s in SCHEMA)
                + f"\n(the keys of acemd fit's input.yaml: acemd --help-input {FIT_HELP_NAME})\n")
    name = section.strip().strip("[]").strip()
    if name == FIT_HELP_NAME:
        return fit_help_text()
    if name not in SCHEMA:
        close = difflib.get_close_matches(name, list(SCHEMA) + [FIT_HELP_NAME], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownSectionError(f"--help-input: unknown section '{section}'{hint}; "
                                  f"sections: {', '.join(SCHEMA)}; '{FIT_HELP_NAME}' lists the keys of "
                                  "acemd fit's input.yaml")
    return section_text(name)


# -- command line -------------------------------------------------------------------------------

def check_reference(path: Path = REFERENCE_PATH) -> str | None:
    """None when ``path`` equals the generated reference, else what is wrong and how to fix it."""
    expected = reference_markdown()
    if not path.exists():
        return f"{path} is missing; generate it with `{REGENERATE}`"
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return None
    diff = "".join(list(difflib.unified_diff(actual.splitlines(True), expected.splitlines(True),
                                             str(path), "generated from acemd.config.SCHEMA"))[:40])
    return f"{path} differs from acemd.config.SCHEMA; regenerate it with `{REGENERATE}`\n{diff}"


def check_fit_reference(path: Path = FIT_REFERENCE_PATH) -> str | None:
    """None when ``path`` equals the generated fit reference, else what is wrong and how to fix it."""
    expected = fit_reference_markdown()
    if not path.exists():
        return f"{path} is missing; generate it with `{REGENERATE}`"
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return None
    diff = "".join(list(difflib.unified_diff(actual.splitlines(True), expected.splitlines(True),
                                             str(path), "generated from acemd.fit.input_schema.FIT_SCHEMA"))[:40])
    return f"{path} differs from acemd.fit.input_schema.FIT_SCHEMA; regenerate it with `{REGENERATE}`\n{diff}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m acemd.docgen",
                                description="Print (or write, or check) docs/input-reference.md, "
                                            "generated from acemd.config.SCHEMA.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help=f"write {REFERENCE_PATH}")
    g.add_argument("--check", action="store_true", help="exit 1 if the file differs from the schema")
    args = p.parse_args(argv)
    if args.write:
        REFERENCE_PATH.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE_PATH.write_text(reference_markdown(), encoding="utf-8")
        FIT_REFERENCE_PATH.write_text(fit_reference_markdown(), encoding="utf-8")
        print(f"wrote {REFERENCE_PATH} and {FIT_REFERENCE_PATH}")
        return 0
    if args.check:
        problems = [p for p in (check_reference(), check_fit_reference()) if p]
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"{REFERENCE_PATH} and {FIT_REFERENCE_PATH} are up to date")
        return 0
    sys.stdout.write(reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
