"""Tests of the potential-file readers (.ace and .yace)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from acemd.potential.ace_format import read_ace
from acemd.potential.model import Bond, PotentialFileError
from acemd.potential.yace import read_yace

ROOT = Path(__file__).resolve().parents[2]
POT_DIR = ROOT / "tests" / "data" / "potentials"
SUMMARY = Path("/work/shared/reference/ace/potentials_summary.json")
CU_ACE = POT_DIR / "Cu-PBE-core-rep.ace"
CU_YACE = POT_DIR / "Cu-PBE-core-rep.yace"
SMALL_YACE = POT_DIR / "Cu-I.yace"          # small file: fast malformed-file tests
YACE_FILES = sorted(POT_DIR.glob("*.yace"))


@pytest.fixture(scope="module")
def cu_ace():
    return read_ace(CU_ACE)


@pytest.fixture(scope="module")
def cu_yace():
    return read_yace(CU_YACE)


def assert_same_potential(a, b, rtol=0.0):
    """Every table of two CTildePotentials is identical (rtol=0: bit for bit)."""

    def close(x, y, msg):
        if rtol == 0.0:
            np.testing.assert_array_equal(np.asarray(x, float), np.asarray(y, float), err_msg=msg)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, err_msg=msg)

    assert a.elements == b.elements
    close(a.E0, b.E0, "E0")
    assert a.delta_spline_bins == b.delta_spline_bins
    assert len(a.embeddings) == len(b.embeddings)
    for ea, eb in zip(a.embeddings, b.embeddings):
        assert (ea.ndensity, ea.npoti) == (eb.ndensity, eb.npoti)
        close(ea.fs_parameters, eb.fs_parameters, "FS_parameters")
        close([ea.rho_core_cutoff, ea.drho_core_cutoff], [eb.rho_core_cutoff, eb.drho_core_cutoff],
              "rho_core_cutoff")
    assert sorted(a.bonds) == sorted(b.bonds)
    for key in a.bonds:
        ba, bb = a.bonds[key], b.bonds[key]
        for name in Bond.__dataclass_fields__:
            va, vb = getattr(ba, name), getattr(bb, name)
            if isinstance(va, str) or isinstance(va, int) and not isinstance(va, float):
                assert va == vb, (key, name)
            else:
                assert np.shape(va) == np.shape(vb), (key, name)
                close(va, vb, f"bond {key} {name}")
    assert len(a.functions) == len(b.functions)
    for mu, (fa_list, fb_list) in enumerate(zip(a.functions, b.functions)):
        assert len(fa_list) == len(fb_list)
        for i, (fa, fb) in enumerate(zip(fa_list, fb_list)):
            where = f"functions[{mu}][{i}]"
            assert (fa.mu0, fa.rank, fa.mus, fa.ns, fa.ls) == (fb.mu0, fb.rank, fb.mus, fb.ns, fb.ls), where
            np.testing.assert_array_equal(fa.ms_combs, fb.ms_combs, err_msg=where)
            assert fa.ms_combs.dtype.kind == fb.ms_combs.dtype.kind == "i"
            close(fa.ctildes, fb.ctildes, where + ".ctildes")
            assert fa.ctildes.shape == fb.ctildes.shape


# ----------------------------------------------------------------------------------
# 1. .ace vs the .yace converted from it
# ----------------------------------------------------------------------------------

def test_ace_matches_converted_yace(cu_ace, cu_yace):
    # The .ace has 18 decimals, the .yace 17 significant digits: both round to the
    # same doubles, so the comparison is exact (rtol = 0).
    assert_same_potential(cu_ace, cu_yace, rtol=0.0)
    assert cu_ace.source == str(CU_ACE)
    assert cu_ace.inner_cutoff_type == "density"
    funcs = cu_ace.functions[0]
    assert len(funcs) == 742
    assert [f.rank for f in funcs[:16]] == [1] * 16 and all(f.rank > 1 for f in funcs[16:])
    # the header value is only an upper bound (43 in the file, 31 actually stored)
    assert max(f.ms_combs.shape[0] for f in funcs) <= cu_ace.metadata["num_ms_combinations_max"]
    assert cu_ace.metadata["cutoffmax"] == cu_ace.cutoff_max == 7.4


def test_ace_spot_values(cu_ace):
    b = cu_ace.bonds[(0, 0)]
    assert b.radcoefficients.shape == (5, 7, 16)
    # first line of crad= is k=1, n=1, l=0..6; the second line is k=1, n=2
    assert b.radcoefficients[0, 0, 0] == 1.620882954168367363
    assert b.radcoefficients[0, 6, 0] == 1.019809595831713933
    assert b.radcoefficients[1, 0, 0] == -0.010015984641177847
    # last line: k=16, n=5, l=0..6
    assert b.radcoefficients[4, 6, 15] == 0.136511555349044217
    assert (b.prehc, b.lambdahc, b.radparameters, b.dcut) == (400.0, 7.0, [2.0], 0.01)
    f = cu_ace.functions[0][0]
    assert (f.ns, f.ls, f.mus) == ((1,), (0,), (0,))
    np.testing.assert_array_equal(f.ctildes, [[21.470762535743872945, -13.793209621753947047]])
    last = cu_ace.functions[0][-1]
    assert last.ms_combs[-1].tolist() == [6, -6]


def _write_ace(pot, path, header="# written by the acemd test-suite"):
    """Write a CTildePotential in the .ace layout (test helper; single embedding and
    global nradbase/nradmax/lmax/radbasename, as the format requires)."""
    nel = pot.nelements
    emb = pot.embeddings[0]
    b0 = pot.bonds[(0, 0)]
    pairs = [(i, j) for i in range(nel) for j in range(nel)]
    g = lambda x: repr(float(x))  # noqa: E731  (shortest round-trip repr)
    out = [header, "", f"nelements={nel}", "elements: " + " ".join(pot.elements), "",
           f"lmax={b0.lmax}", "", f"embedding-function: {emb.npoti}",
           f"{len(emb.fs_parameters)} FS parameters: " + " ".join(map(g, emb.fs_parameters))]
    out.append("core energy-cutoff parameters: " + "\n".join(
        f"{g(e.rho_core_cutoff)} {g(e.drho_core_cutoff)}" for e in pot.embeddings))
    out += ["E0: " + " ".join(map(g, pot.E0)), "",
            f"radbasename={b0.radbasename}", f"nradbase={b0.nradbase}", f"nradmax={b0.nradmax}",
            f"cutoffmax={g(pot.cutoff_max)}", f"deltaSplineBins={g(pot.delta_spline_bins)}"]
    out.append("core repulsion parameters: " + "\n".join(
        f"{g(pot.bonds[p].prehc)} {g(pot.bonds[p].lambdahc)}" for p in pairs))
    out.append("radparameter= " + " ".join(g(pot.bonds[p].radparameters[0]) for p in pairs))
    out.append("cutoff= " + " ".join(g(pot.bonds[p].rcut) for p in pairs))
    out.append("dcut= " + " ".join(g(pot.bonds[p].dcut) for p in pairs))
    rows = []
    for p in pairs:
        c = pot.bonds[p].radcoefficients
        for k in range(b0.nradbase):
            for n in range(b0.nradmax):
                rows.append(" " + " ".join(g(c[n, l, k]) for l in range(b0.lmax + 1)))
    out.append("crad=" + "\n".join(rows))
    allf = [f for fl in pot.functions for f in fl]
    out += ["", f"rankmax={max(f.rank for f in allf)}", f"ndensitymax={emb.ndensity}", "",
            f"num_c_tilde_max={max(len(fl) for fl in pot.functions)}",
            f"num_ms_combinations_max={max(f.ms_combs.shape[0] for f in allf)}"]
    for label, want in (("total_basis_size_rank1", lambda f: f.rank == 1),
                        ("total_basis_size", lambda f: f.rank > 1)):
        out.append(f"{label}: " + " ".join(str(sum(map(want, fl))) for fl in pot.functions))
        for fl in pot.functions:
            for f in filter(want, fl):
                ints = lambda v: " ".join(f" {int(x)} " for x in v)  # noqa: E731
                out.append(f"ctilde_basis_func: rank={f.rank} ndens={f.ctildes.shape[1]} "
                           f"mu0={f.mu0} mu=({ints(f.mus)})")
                out += [f"n=({ints(f.ns)})", f"l=({ints(f.ls)})", f"num_ms={f.ms_combs.shape[0]}"]
                for m, c in zip(f.ms_combs, f.ctildes):
                    out.append(f"<{ints(m)}>: " + " ".join(f" {g(x)} " for x in c))
    path.write_text("\n".join(out) + "\n")


def test_ace_multi_element_layout(tmp_path):
    """Two-element .ace: per-element and per-pair values in i-outer/j-inner order."""
    pot = read_yace(POT_DIR / "DFT10B-AgCu.yace")
    nmax = max(b.nradmax for b in pot.bonds.values())
    for idx, (key, b) in enumerate(sorted(pot.bonds.items())):
        # .ace has one global nradmax: pad the smaller bonds with zero coefficients
        c = np.zeros((nmax, b.lmax + 1, b.nradbase))
        c[:b.nradmax] = b.radcoefficients
        b.radcoefficients, b.nradmax = c, nmax
        # make every per-pair value distinct so that a transposed pair order shows
        b.prehc, b.lambdahc = 10.0 + idx, 1.0 + 0.5 * idx
        b.radparameters = [5.0 + 0.25 * idx]
        b.dcut = 0.01 * (idx + 1)
        b.rcut = 6.5 + 0.1 * idx
    pot.embeddings[1].rho_core_cutoff, pot.embeddings[1].drho_core_cutoff = 123.0, 4.5
    pot.E0 = np.array([-1.25, 3.5])
    path = tmp_path / "AgCu.ace"
    _write_ace(pot, path)
    back = read_ace(path)
    pot.source = back.source
    assert_same_potential(back, pot)
    assert back.metadata["header"] == ["# written by the acemd test-suite"]


def test_ace_optional_lines(tmp_path, cu_ace):
    """No E0: line -> zeros; no embedding-function: line -> FinnisSinclair if linear."""
    text = CU_ACE.read_text()
    text = re.sub(r"E0:.*\n", "", text)
    path = tmp_path / "noE0.ace"
    path.write_text(text)
    assert read_ace(path).E0.tolist() == [0.0]

    text = re.sub(r"embedding-function:.*\n", "", text)
    path.write_text(text)
    with pytest.raises(PotentialFileError, match="non-linear"):
        read_ace(path)
    path.write_text(text.replace("4 FS parameters:  1.000000 1.000000 1.000000 0.500000",
                                 "4 FS parameters:  1.0 1.0 1.0 1.0"))
    assert read_ace(path).embeddings[0].npoti == "FinnisSinclair"


# ----------------------------------------------------------------------------------
# 2. every .yace parses and agrees with the pyace summary
# ----------------------------------------------------------------------------------

def _summary():
    return json.loads(SUMMARY.read_text())


def _ctilde_count_from_yaml(yaml_path):
    """C-tilde functions per element of a B-basis .yaml: B-functions with the same
    (type, nr, nl) and different lint merge into one C-tilde function."""
    tree = yaml.safe_load(yaml_path.read_text())
    b_count, keys = {}, {}
    for block in tree["species"]:
        for f in block.get("nbody", []):
            central = f["type"].split()[0]
            b_count[central] = b_count.get(central, 0) + 1
            keys.setdefault(central, set()).add((f["type"], tuple(f["nr"]), tuple(f["nl"])))
    return b_count, {el: len(s) for el, s in keys.items()}


@pytest.mark.skipif(not SUMMARY.exists(), reason="shared reference summary not available")
@pytest.mark.parametrize("path", YACE_FILES, ids=lambda p: p.stem)
def test_yace_matches_pyace_summary(path):
    summary = _summary()
    assert path.stem in summary
    ref = summary[path.stem]
    pot = read_yace(path)
    pot.validate()
    assert pot.elements == ref["elements"]

    # number of functions: the summary counts B-functions when it was made from a .yaml
    nfun = {el: len(pot.functions[mu]) for mu, el in enumerate(pot.elements)}
    yaml_path = path.with_suffix(".yaml")
    if yaml_path.exists():
        b_count, c_count = _ctilde_count_from_yaml(yaml_path)
        assert b_count == ref["n_functions"]
        assert nfun == c_count
    else:
        assert nfun == ref["n_functions"]
    assert max(f.rank for fl in pot.functions for f in fl) == ref["max_rank"]
    assert pot.cutoff_max == ref["cutoffmax"]
    assert pot.delta_spline_bins == ref["deltaSplineBins"]
    E0_ref = ref.get("E0_in_yace", {})
    assert pot.E0.tolist() == [E0_ref.get(el, 0.0) for el in pot.elements]

    for mu, el in enumerate(pot.elements):
        e, r = pot.embeddings[mu], ref["embeddings"][el]
        assert e.npoti == r["npoti"]
        assert e.ndensity == r["ndensity"]
        assert e.fs_parameters == r["FS_parameters"]
        assert e.rho_core_cutoff == r["rho_core_cut"]
        assert e.drho_core_cutoff == r["drho_core_cut"]

    assert len(pot.bonds) == len(ref["bonds"])
    for (i, j), b in pot.bonds.items():
        r = ref["bonds"][f"{pot.elements[i]}-{pot.elements[j]}"]
        assert b.radbasename == r["radbase"]
        assert b.radparameters == r["radparameters"]
        assert b.rcut == r["rcut"] and b.dcut == r["dcut"]
        assert (b.nradbase, b.nradmax, b.lmax) == (r["nradbase"], r["nradmax"], r["lmax"])
        assert [b.prehc, b.lambdahc] == r["core_rep"]
        assert b.inner_cutoff_type == r["inner_cutoff_type"]
        assert (b.rcut_in, b.dcut_in) == (r["r_in"], r["delta_in"])
        assert b.radcoefficients.shape == ((b.nradmax, b.lmax + 1, b.nradbase) if b.nradmax else
                                           b.radcoefficients.shape)


@pytest.mark.skipif(not SUMMARY.exists(), reason="shared reference summary not available")
def test_ace_matches_pyace_summary(cu_ace):
    ref = _summary()["Cu-PBE-core-rep"]
    assert len(cu_ace.functions[0]) == ref["n_functions"]["Cu"]
    r, b = ref["bonds"]["Cu-Cu"], cu_ace.bonds[(0, 0)]
    assert (b.radbasename, b.nradbase, b.nradmax, b.lmax) == (r["radbase"], r["nradbase"], r["nradmax"], r["lmax"])
    assert [b.prehc, b.lambdahc] == r["core_rep"] and b.rcut == r["rcut"]
    e = cu_ace.embeddings[0]
    assert (e.npoti, e.ndensity, e.fs_parameters) == (ref["embeddings"]["Cu"]["npoti"], 2, [1.0, 1.0, 1.0, 0.5])


# ----------------------------------------------------------------------------------
# 3. malformed files
# ----------------------------------------------------------------------------------

def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _raises(path, *patterns):
    with pytest.raises(PotentialFileError) as info:
        (read_ace if path.suffix == ".ace" else read_yace)(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for pat in patterns:
        assert re.search(pat, msg), (pat, msg)
    return info.value


def _line_no(text, startswith):
    """1-based number of the first line starting with ``startswith``."""
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith(startswith):
            return i
    raise AssertionError(startswith)


# --- .yace ---------------------------------------------------------------------------

def test_yace_invalid_yaml(tmp_path):
    text = CU_YACE.read_text().replace("elements: [Cu]", "elements: [Cu", 1)
    err = _raises(_write(tmp_path, "bad.yace", text), r"line \d+", "invalid YAML")
    assert err.where.startswith("line ")


def test_yace_missing_rcut(tmp_path):
    text = SMALL_YACE.read_text()
    assert text.count("rcut: 7, ") == 1
    text = text.replace("rcut: 7, ", "")
    _raises(_write(tmp_path, "bad.yace", text), r"bonds\[0, 0\]\.rcut", "missing key")


def test_yace_wrong_ctildes_count(tmp_path):
    text = SMALL_YACE.read_text()
    good = "ctildes: [0.12769446893111333, -0.19108676308341596]"
    assert text.count(good) == 1
    text = text.replace(good, "ctildes: [0.12769446893111333]")
    _raises(_write(tmp_path, "bad.yace", text), r"functions\.0\[0\]\.ctildes", "expected .*2 values")


def test_yace_unknown_radbasename(tmp_path):
    text = SMALL_YACE.read_text().replace("radbasename: ChebExpCos", "radbasename: ChebFoo")
    _raises(_write(tmp_path, "bad.yace", text), r"bonds\[0, 0\]\.radbasename", "ChebFoo")


def test_yace_missing_file(tmp_path):
    _raises(tmp_path / "nope.yace", "file not found")


# --- .ace ----------------------------------------------------------------------------

def test_ace_missing_file(tmp_path):
    _raises(tmp_path / "nope.ace", "file not found")


def test_ace_truncated(tmp_path):
    text = CU_ACE.read_text()
    cut = text[: len(text) // 2]
    cut = cut[: cut.rfind("num_ms=")]          # inside a function block, before num_ms
    path = _write(tmp_path, "trunc.ace", cut)
    _raises(path, rf"line {len(cut.splitlines())}\b", "unexpected end of file")
    # truncated in the middle of the crad table
    lines = text.splitlines(keepends=True)
    path = _write(tmp_path, "trunc2.ace", "".join(lines[:40]))
    _raises(path, r"line 40\b", "end of file.*crad")


def test_ace_bad_crad_number(tmp_path):
    lines = CU_ACE.read_text().splitlines(keepends=True)
    i = _line_no("".join(lines), "crad=") + 5      # a continuation line of crad
    nums = lines[i - 1].split()
    nums[2] = "0.12x4"
    lines[i - 1] = " " + " ".join(nums) + "\n"
    _raises(_write(tmp_path, "bad.ace", "".join(lines)), rf"line {i}\b", "0.12x4", "crad")


def test_ace_wrong_crad_count(tmp_path):
    text = CU_ACE.read_text()
    lines = text.splitlines(keepends=True)
    i = _line_no(text, "crad=") + 10
    short = lines.copy()
    short[i - 1] = " " + " ".join(lines[i - 1].split()[1:]) + "\n"
    _raises(_write(tmp_path, "short.ace", "".join(short)), rf"line {_line_no(text, 'rankmax=')}\b",
            "crad ended after 559 numbers, expected .*560")
    extra = lines.copy()
    extra[i - 1] = lines[i - 1].rstrip("\n") + " 0.5\n"
    last_crad = _line_no(text, "rankmax=") - 2
    _raises(_write(tmp_path, "extra.ace", "".join(extra)), rf"line {last_crad}\b", "more crad numbers")


def test_ace_wrong_num_ms(tmp_path):
    text = CU_ACE.read_text()
    first = _line_no(text, "num_ms=1")
    # too large: the next function's header comes where an m-combination is expected
    bad = text.replace("num_ms=1\n", "num_ms=2\n", 1)
    _raises(_write(tmp_path, "big.ace", bad), rf"line {first + 2}\b", "expected '<'", "num_ms=2")
    # too small: a leftover m-combination line where the next function should start
    lines = text.splitlines(keepends=True)
    k = next(i for i, ln in enumerate(lines) if ln.startswith("num_ms=") and int(ln[7:]) > 1)
    n = int(lines[k][7:])
    lines[k] = f"num_ms={n - 1}\n"
    _raises(_write(tmp_path, "small.ace", "".join(lines)), rf"line {k + 1 + n}\b",
            "ctilde_basis_func:", "num_ms")


def test_ace_wrong_ctilde_count(tmp_path):
    text = CU_ACE.read_text()
    line = "< 0 >:  21.470762535743872945  -13.793209621753947047 "
    i = _line_no(text, line)
    bad = text.replace(line, "< 0 >:  21.470762535743872945 ", 1)
    _raises(_write(tmp_path, "bad.ace", bad), rf"line {i}\b", "1 ctilde coefficient.*ndens=2")


def test_ace_missing_header_line(tmp_path):
    text = CU_ACE.read_text()
    _raises(_write(tmp_path, "nolmax.ace", text.replace("lmax=6\n", "")),
            r"line \d+", "expected 'lmax='")
    i = _line_no(text, "deltaSplineBins=")
    _raises(_write(tmp_path, "nodsb.ace", text.replace("deltaSplineBins=0.001000\n", "")),
            rf"line {i}\b", "expected 'deltaSplineBins='", "core")
    _raises(_write(tmp_path, "nonel.ace", text.replace("nelements=1\n", "")), "nelements")


def test_ace_bad_number_and_names(tmp_path):
    text = CU_ACE.read_text()
    i = _line_no(text, "cutoff=")
    _raises(_write(tmp_path, "cut.ace", text.replace("cutoff= 7.4", "cutoff= 7.4x", 1)),
            rf"line {i}\b", "bad number '7.4x0+355' for cutoff")
    i = _line_no(text, "radbasename=")
    _raises(_write(tmp_path, "rb.ace", text.replace("radbasename=ChebPow", "radbasename=ChebFoo")),
            rf"line {i}\b", "radbasename 'ChebFoo'")
    i = _line_no(text, "embedding-function:")
    _raises(_write(tmp_path, "emb.ace", text.replace("FinnisSinclairShiftedScaled", "Polynomial")),
            rf"line {i}\b", "embedding-function 'Polynomial'")
    i = _line_no(text, "ndensitymax=")
    _raises(_write(tmp_path, "nd.ace", text.replace("ndensitymax=2", "ndensitymax=1")),
            rf"line {i}\b", "ndensitymax=1 but 4 FS parameters")
