"""The documentation: the generated input reference matches the schema, `acemd --help-input` prints it,
every relative link in README.md and docs/*.md resolves, and every example input is linked from a page."""
import re
import tomllib
from pathlib import Path

import pytest

from acemd import config, docgen
from acemd.cli import main
from acemd.config import SCHEMA, SECTION_DOCS, Key

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))

# Pages written on other branches and linked from README's index before the lead merges them; a link
# to one of these is tolerated only while the file does not exist. Empty this set once they are merged.
PAGES_FROM_OTHER_BRANCHES = {
}


# -- the generated input reference -------------------------------------------------------------

def test_input_reference_is_up_to_date():
    problem = docgen.check_reference(DOCS / "input-reference.md")   # this checkout's file, even when
    assert problem is None, problem     # acemd is installed elsewhere; names `python -m acemd.docgen --write`


def test_check_reports_drift_and_the_command(tmp_path):
    stale = tmp_path / "input-reference.md"
    stale.write_text(docgen.reference_markdown().replace("integration timestep", "time step"))
    problem = docgen.check_reference(stale)
    assert problem is not None and "python -m acemd.docgen --write" in problem and "time step" in problem
    assert "is missing" in docgen.check_reference(tmp_path / "absent.md")


def test_every_key_is_documented():
    missing = [f"{s}.{k}" for s, keys in SCHEMA.items() for k, spec in keys.items() if not spec.doc.strip()]
    assert not missing, f"keys without a doc string in acemd.config.SCHEMA: {missing}"
    free = [s for s, keys in SCHEMA.items()
            if not keys and (s not in SECTION_DOCS or not SECTION_DOCS[s].free_key)]
    assert not free, f"sections with free keys need a SectionDoc with free_key in config.SECTION_DOCS: {free}"


def _tables(markdown):
    """{section: {key: [type, default, unit, meaning]}} parsed back from the generated Markdown."""
    tables, section = {}, None
    for line in markdown.splitlines():
        m = re.match(r"## `\[([\w-]+)\]`", line)
        if m:
            section = m.group(1)
            tables[section] = {}
        elif section and line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            tables[section][cells[0].strip("`")] = cells[1:]
    return tables


def test_reference_rows_read_back_as_the_schema():
    """Each row of the generated reference: the key exists, a literal default parses (TOML) back to the
    schema's default, the unit and every allowed value of a one_of check appear."""
    tables = _tables(docgen.reference_markdown())
    assert list(tables) == list(SCHEMA)
    for section, keys in SCHEMA.items():
        rows = tables[section]
        expected = list(keys)
        if SECTION_DOCS.get(section) and SECTION_DOCS[section].free_key:
            expected = [SECTION_DOCS[section].free_key[0]] + expected
        assert list(rows) == expected, section
        for key, spec in keys.items():
            typ, default, unit, meaning = rows[key]
            assert unit == spec.unit
            if spec.default is not None and not spec.default_doc:
                assert tomllib.loads(f"x = {default.strip('`')}")["x"] == spec.default, (section, key)
            if spec.required and not spec.default_doc:
                assert default == "— (required)"
            for choice in getattr(spec.check, "choices", ()):
                assert f"`{docgen._toml(choice)}`" in meaning, (section, key, choice)
    assert tables["md"]["timestep"][:3] == ["float", "`0.001`", "ps"]
    assert tables["potential"]["file"][:2] == ["path", "— (required)"]
    assert tables["masses"]["<Element>"][2] == "amu"


def test_a_new_section_is_documented_without_extra_code(monkeypatch):
    """Sections other engineers add to SCHEMA (no SectionDoc) appear in the reference and --help-input."""
    monkeypatch.setitem(SCHEMA, "zz_new", {
        "tolerance": Key(config.NUM, default=1e-4, check=config.positive, unit="eV/Å", doc="force tolerance"),
        "method": Key((str,), default="fire", check=config.one_of("fire", "cg"), doc="algorithm | kind"),
        "target": Key((str,), required=True, doc="what to do"),
        "weights": Key((dict,), default={"Cu": 1.5, "Ni": [1, 2]}, doc="per element"),
    })
    md = docgen.reference_markdown()
    assert "## `[zz_new]`" in md and "(#zz_new)" in md
    rows = _tables(md)["zz_new"]
    assert rows["tolerance"] == ["float", "`0.0001`", "eV/Å", "force tolerance"]
    assert rows["method"][3] == "algorithm \\| kind. One of `\"fire\"`, `\"cg\"`"
    assert rows["target"][1] == "— (required)"
    assert rows["weights"][:2] == ["dict", '`{Cu = 1.5, Ni = [1, 2]}`']
    assert tomllib.loads(f"x = {rows['weights'][1].strip('`')}")["x"] == {"Cu": 1.5, "Ni": [1, 2]}
    text = docgen.help_input("zz_new")
    assert "tolerance  (float, eV/Å; default 0.0001)" in text and "target  (string; required)" in text


# -- acemd --help-input -------------------------------------------------------------------------

def test_help_input_all_sections(capsys):
    assert main(["--help-input"]) == 0
    out = capsys.readouterr().out
    assert all(f"[{s}]" in out for s in SCHEMA)
    assert "damping  (float, ps; default 0.1)" in out


def test_help_input_one_section(capsys):
    assert main(["--help-input", "[barostat]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[barostat]") and "compressibility  (float, 1/bar; default 1e-6)" in out
    assert "[thermostat]" not in out


def test_help_input_unknown_section(capsys):
    assert main(["--help-input", "thermstat"]) == 2
    err = capsys.readouterr().err
    assert "unknown section 'thermstat'" in err and "did you mean 'thermostat'" in err and "Traceback" not in err


# -- links --------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path):
    anchors, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            n, candidate = 0, slug
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def _links(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):          # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
        if not dest.exists():
            if rel not in PAGES_FROM_OTHER_BRANCHES:
                broken.append(f"{target} (no file {rel})")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {rel})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n[ok](#title) [bad](missing.md) `[code](x.md)`\n```\n[fenced](y.md)\n```\n")
    assert _links(page) == ["#title", "missing.md"]
    assert _anchors(page) == {"title"}
    assert _slug(" Running MD: `acemd input.toml`") == "running-md-acemd-inputtoml"


def test_every_example_input_is_linked_from_a_page():
    linked = set()
    for page in PAGES:
        for target in _links(page):
            file_part = target.partition("#")[0]
            if file_part:
                linked.add((page.parent / file_part).resolve())
    unlinked = [p.name for p in sorted((ROOT / "inputs").glob("*.toml")) if p.resolve() not in linked]
    assert not unlinked, ("example inputs linked from no docs page (link each from its driver's page): "
                          f"{unlinked}")


def test_quick_start_is_two_commands_that_ci_runs():
    """README's Quick start: exactly two commands; .ci/run installs and tests the way they say."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start\n\n```\n(.*?)```", readme, flags=re.S)
    assert block, "README.md has no Quick start code block"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].startswith('python -m pip install ".[test]" && acemd inputs/')
    assert commands[1] == 'python -m pip install ".[test]" && python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert '".[test]"' in ci and "python -m pytest" in ci
    example = commands[0].split("&& acemd ")[1].strip()
    assert (ROOT / example).is_file()
