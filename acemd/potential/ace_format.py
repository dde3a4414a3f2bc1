"""Reader for ``.ace`` files: the old PACE C-tilde text format.

The format is a sequence of ``keyword`` / value groups (see the format notes in
the reference README).  Values are separated by arbitrary whitespace, so a
group may span several lines (per-element and per-pair values of multi-element
files are written one pair per line).  The parser therefore works on a stream of
whitespace-separated words, remembering the line of every word so that errors can
name it.

Layout (``[...]`` = optional)::

    [comment / header lines]
    nelements=N
    elements: El_1 ... El_N
    lmax=L
    [embedding-function: FinnisSinclair|FinnisSinclairShiftedScaled]
    K FS parameters: w_1 m_1 ... (K = 2*ndensity)
    core energy-cutoff parameters: rho_cut drho_cut   (per element)
    [E0: e_1 ... e_N]
    radbasename=ChebExpCos|ChebPow
    nradbase=..  nradmax=..  cutoffmax=..  deltaSplineBins=..
    core repulsion parameters: prehc lambdahc          (per pair, i outer, j inner)
    radparameter= ...  cutoff= ...  dcut= ...           (one value per pair)
    crad= ...   per pair: k outer, n middle, l inner    (nradbase*nradmax*(lmax+1) values)
    rankmax=..  ndensitymax=..  num_c_tilde_max=..  num_ms_combinations_max=..
    total_basis_size_rank1: n_1 ... n_N   followed by the rank-1 function blocks
    total_basis_size: n_1 ... n_N         followed by the higher-rank function blocks

A function block::

    ctilde_basis_func: rank=R ndens=P mu0=MU mu=( mu_1 ... mu_R )
    n=( n_1 ... n_R )
    l=( l_1 ... l_R )
    num_ms=M
    < m_1 ... m_R >: c_1 ... c_P        (M lines)

The format has a single embedding (function, FS parameters, ndensity) and
global ``radbasename``/``nradbase``/``nradmax``/``lmax``; for multi-element files
they are applied to every element / pair.  It has no inner-cutoff fields, so the
inner cutoff type is ``density`` with ``rcut_in = dcut_in = 0``.
"""
from __future__ import annotations

import bisect
import re
from pathlib import Path

import numpy as np

from .model import (EMBEDDINGS, Bond, CTildeFunction, CTildePotential, Embedding,
                    PotentialFileError)

ACE_RADIAL_BASES = ("ChebExpCos", "ChebPow")

_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")
# A word ends at whitespace or at one of the bracket characters used by the
# function blocks, so "( 0 )" and "(0)" read alike.
_WORD_RE = re.compile(r"[^\s()<>]+|[()<>]")


class _Scanner:
    """Whitespace-separated word stream with line numbers for error messages."""

    def __init__(self, path, text, start=0):
        self.path = path
        self.text = text
        self.pos = start
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- positions -----------------------------------------------------------------
    def line_of(self, pos):
        return bisect.bisect_right(self._line_starts, pos)

    def _skip_ws(self):
        n = len(self.text)
        while self.pos < n and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self):
        self._skip_ws()
        return self.pos >= len(self.text)

    def current_line(self):
        self._skip_ws()
        return self.line_of(min(self.pos, max(len(self.text) - 1, 0)))

    def error(self, problem, line=None):
        if line is None:
            line = self.current_line()
        return PotentialFileError(self.path, f"line {line}", problem)

    # -- reading -------------------------------------------------------------------
    def peek(self):
        """The next word (without consuming it) and its line, or (None, last line)."""
        self._skip_ws()
        m = _WORD_RE.match(self.text, self.pos)
        if m is None:
            return None, self.current_line()
        return m.group(), self.line_of(m.start())

    def word(self, what):
        self._skip_ws()
        m = _WORD_RE.match(self.text, self.pos)
        if m is None:
            raise self.error(f"unexpected end of file while reading {what}")
        self.pos = m.end()
        return m.group(), self.line_of(m.start())

    def keyword(self, literal, what=None, hint=""):
        """Consume ``literal`` (its internal spaces match any whitespace)."""
        for piece in literal.split():
            self._skip_ws()
            if self.text.startswith(piece, self.pos):
                self.pos += len(piece)
                continue
            found, line = self.peek()
            label = what or f"'{literal}'"
            if found is None:
                raise self.error(f"unexpected end of file: expected {label}")
            if not hint and _FLOAT_RE.match(found):
                hint = " (more numbers than expected before it)"
            raise self.error(f"expected {label}, found '{found}'{hint}", line)

    def try_keyword(self, literal):
        """Consume ``literal`` if it comes next; return whether it did."""
        save = self.pos
        try:
            self.keyword(literal)
        except PotentialFileError:
            self.pos = save
            return False
        return True

    def number(self, what):
        tok, line = self.word(what)
        if not _FLOAT_RE.match(tok):
            raise self.error(f"bad number '{tok}' for {what}", line)
        return float(tok)

    def integer(self, what, minimum=None):
        tok, line = self.word(what)
        if not _INT_RE.match(tok):
            raise self.error(f"bad integer '{tok}' for {what}", line)
        value = int(tok)
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum}, got {value}", line)
        return value

    def numbers(self, count, what):
        return [self.number(what) for _ in range(count)]


def _find_start(path, text):
    """Offset of the ``nelements=`` line; leading comment/header lines are skipped."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("nelements"):
            return offset + (len(line) - len(line.lstrip()))
        offset += len(line)
    raise PotentialFileError(path, "line 1", "missing 'nelements=' header line: not an .ace file?")


def _read_function(sc, nel, ndensity, rankmax, block, mu_expected, index):
    """Read one ``ctilde_basis_func`` block."""
    hint = ""
    if index > 0:
        hint = (f" (the previous function has more m-combination lines than its num_ms,"
                f" or total_basis_size{'_rank1' if block == 'rank1' else ''} is too large)")
    sc.keyword("ctilde_basis_func:", hint=hint if sc.peek()[0] == "<" else "")
    start_line = sc.line_of(sc.pos)
    label = f"ctilde_basis_func of line {start_line}"
    sc.keyword("rank=")
    rank_line = sc.current_line()
    rank = sc.integer(f"rank ({label})", minimum=1)
    if block == "rank1" and rank != 1:
        raise sc.error(f"rank {rank} in the rank-1 block (total_basis_size_rank1)", rank_line)
    if block == "higher" and rank < 2:
        raise sc.error(f"rank {rank} in the higher-rank block (total_basis_size)", rank_line)
    if rank > rankmax:
        raise sc.error(f"rank {rank} exceeds rankmax={rankmax}", rank_line)
    sc.keyword("ndens=")
    nd_line = sc.current_line()
    ndens = sc.integer(f"ndens ({label})", minimum=1)
    if ndens != ndensity:
        raise sc.error(f"ndens={ndens} differs from ndensitymax={ndensity}", nd_line)
    sc.keyword("mu0=")
    mu0_line = sc.current_line()
    mu0 = sc.integer(f"mu0 ({label})")
    if mu0 != mu_expected:
        raise sc.error(f"mu0={mu0}, but the function is in the block of element {mu_expected}",
                       mu0_line)

    def int_list(key):
        sc.keyword(f"{key}=(")
        line = sc.current_line()
        values = []
        for _ in range(rank):
            if sc.peek()[0] == ")":
                raise sc.error(f"{key}=( ) has {len(values)} value(s), expected rank={rank} "
                               f"({label})", line)
            values.append(sc.integer(f"{key} ({label})"))
        values = tuple(values)
        sc.keyword(")", what=f"')' closing {key}=( ... ) after {rank} value(s) (rank={rank})")
        return values, line

    mus, mus_line = int_list("mu")
    for m in mus:
        if not 0 <= m < nel:
            raise sc.error(f"element index {m} in mu=( ) out of range 0..{nel - 1}", mus_line)
    ns, _ = int_list("n")
    ls, _ = int_list("l")
    sc.keyword("num_ms=")
    num_ms = sc.integer(f"num_ms ({label})", minimum=1)
    ms = np.empty((num_ms, rank), dtype=np.int64)
    ct = np.empty((num_ms, ndens), dtype=float)
    for i in range(num_ms):
        m_line = sc.current_line()
        sc.keyword("<", what=f"'<' opening m-combination {i + 1} of num_ms={num_ms} ({label})")
        for t in range(rank):
            ms[i, t] = sc.integer(f"m value ({label})")
        sc.keyword(">:", what=f"'>:' after {rank} m value(s) (rank={rank}, {label})")
        for p in range(ndens):
            tok, line = sc.word(f"ctilde coefficient ({label})")
            if not _FLOAT_RE.match(tok):
                if tok == "<" or tok[:1].isalpha():
                    raise sc.error(f"m-combination {i + 1} has {p} ctilde coefficient(s), expected "
                                   f"ndens={ndens} ({label}); found '{tok}' on line {line}", m_line)
                raise sc.error(f"bad number '{tok}' for ctilde coefficient ({label})", line)
            ct[i, p] = float(tok)
    return CTildeFunction(mu0=mu0, rank=rank, mus=mus, ns=ns, ls=ls, ms_combs=ms, ctildes=ct)


def read_ace(path) -> CTildePotential:
    """Read an old-format ``.ace`` file into a validated :class:`CTildePotential`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PotentialFileError(path, "", "file not found") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise PotentialFileError(path, "", f"cannot read as text: {exc}") from None

    start = _find_start(path, text)
    header = [ln for ln in text[:start].splitlines() if ln.strip()]
    sc = _Scanner(path, text, start)

    # --- elements, embedding ----------------------------------------------------
    sc.keyword("nelements=")
    nel = sc.integer("nelements", minimum=1)
    sc.keyword("elements:")
    elements = []
    for _ in range(nel):
        sym, line = sc.word("element symbol")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", sym):
            raise sc.error(f"bad element symbol '{sym}' (nelements={nel})", line)
        elements.append(sym)
    if len(set(elements)) != nel:
        raise sc.error(f"duplicate element symbols {elements}")
    sc.keyword("lmax=")
    lmax = sc.integer("lmax", minimum=0)

    if sc.try_keyword("embedding-function:"):
        npoti, line = sc.word("embedding function name")
        if npoti not in EMBEDDINGS:
            raise sc.error(f"unsupported embedding-function '{npoti}'; "
                           f"supported: {', '.join(EMBEDDINGS)}", line)
    else:
        npoti = None            # the C++ reader defaults to FinnisSinclair if linear
    nfs_line = sc.current_line()
    nfs = sc.integer("the FS parameter count ('[number] FS parameters:')", minimum=2)
    sc.keyword("FS parameters:")
    if nfs % 2:
        raise sc.error(f"{nfs} FS parameters: expected an even number (w, m per density)", nfs_line)
    fs_parameters = sc.numbers(nfs, "FS parameters")
    if npoti is None:
        if any(m != 1.0 for m in fs_parameters[1::2]):
            raise sc.error("no 'embedding-function:' line, but the embedding is non-linear; "
                           "specify FinnisSinclair or FinnisSinclairShiftedScaled", nfs_line)
        npoti = "FinnisSinclair"

    sc.keyword("core energy-cutoff parameters:")
    core_cut = [(sc.number("rho_core_cut"), sc.number("drho_core_cut")) for _ in range(nel)]

    if sc.try_keyword("E0:"):
        E0 = np.array(sc.numbers(nel, "E0"), dtype=float)
    else:
        E0 = np.zeros(nel)

    # --- radial basis ------------------------------------------------------------
    sc.keyword("radbasename=")
    radbasename, line = sc.word("radbasename")
    if radbasename not in ACE_RADIAL_BASES:
        extra = " (ACE.jl.Basic / SHIPs radial basis is not supported)" \
            if radbasename == "ACE.jl.Basic" else ""
        raise sc.error(f"unsupported radbasename '{radbasename}'{extra}; "
                       f"supported in .ace: {', '.join(ACE_RADIAL_BASES)}", line)
    sc.keyword("nradbase=")
    nradbase = sc.integer("nradbase", minimum=1)
    sc.keyword("nradmax=")
    nradmax = sc.integer("nradmax", minimum=0)
    sc.keyword("cutoffmax=")
    cutoffmax = sc.number("cutoffmax")
    sc.keyword("deltaSplineBins=")
    dsb_line = sc.current_line()
    delta = sc.number("deltaSplineBins")
    if not delta > 0:
        raise sc.error(f"deltaSplineBins must be positive, got {delta}", dsb_line)

    pairs = [(i, j) for i in range(nel) for j in range(nel)]
    sc.keyword("core repulsion parameters:")
    core_rep = {p: (sc.number("prehc"), sc.number("lambdahc")) for p in pairs}
    sc.keyword("radparameter=")
    radparam = {p: sc.number("radparameter") for p in pairs}
    sc.keyword("cutoff=")
    cutoff = {}
    for p in pairs:
        line = sc.current_line()
        cutoff[p] = sc.number("cutoff")
        if not cutoff[p] > 0:
            raise sc.error(f"cutoff must be positive, got {cutoff[p]}", line)
    sc.keyword("dcut=")
    dcut = {p: sc.number("dcut") for p in pairs}

    sc.keyword("crad=")
    per_pair = nradbase * nradmax * (lmax + 1)
    crad = {}
    for p in pairs:
        c = np.empty((nradmax, lmax + 1, nradbase))
        for k in range(nradbase):
            for n in range(nradmax):
                for l in range(lmax + 1):
                    tok, line = sc.word("crad")
                    if not _FLOAT_RE.match(tok):
                        got = (sum(1 for q in pairs if q in crad) * per_pair
                               + (k * nradmax + n) * (lmax + 1) + l)
                        if re.match(r"[A-Za-z_]", tok):
                            problem = (f"crad ended after {got} numbers, expected "
                                       f"nradbase*nradmax*(lmax+1) = {per_pair} per pair x "
                                       f"{len(pairs)} pair(s) = {per_pair * len(pairs)}; found '{tok}'")
                        else:
                            problem = f"bad number '{tok}' in crad (k={k + 1}, n={n + 1}, l={l})"
                        raise sc.error(problem, line)
                    c[n, l, k] = float(tok)
        crad[p] = c
    tok, line = sc.peek()
    if tok is not None and _FLOAT_RE.match(tok):
        raise sc.error(f"more crad numbers than nradbase*nradmax*(lmax+1) = {per_pair} per pair x "
                       f"{len(pairs)} pair(s) = {per_pair * len(pairs)}", line)

    # --- basis sizes ---------------------------------------------------------------
    sc.keyword("rankmax=")
    rankmax = sc.integer("rankmax", minimum=1)
    sc.keyword("ndensitymax=")
    nd_line = sc.current_line()
    ndensity = sc.integer("ndensitymax", minimum=1)
    if nfs != 2 * ndensity:
        raise sc.error(f"ndensitymax={ndensity} but {nfs} FS parameters "
                       f"(line {nfs_line}); expected {2 * ndensity}", nd_line)
    sc.keyword("num_c_tilde_max=")
    num_c_tilde_max = sc.integer("num_c_tilde_max", minimum=0)
    sc.keyword("num_ms_combinations_max=")
    num_ms_max = sc.integer("num_ms_combinations_max", minimum=0)

    functions = [[] for _ in range(nel)]
    for block, key in (("rank1", "total_basis_size_rank1:"), ("higher", "total_basis_size:")):
        sc.keyword(key)
        sizes = [sc.integer(key.rstrip(":"), minimum=0) for _ in range(nel)]
        for mu in range(nel):
            for idx in range(sizes[mu]):
                functions[mu].append(
                    _read_function(sc, nel, ndensity, rankmax, block, mu, idx))
    if not sc.at_end():
        tok, line = sc.peek()
        problem = f"unexpected text '{tok}' after the last function"
        if tok == "<":
            problem += " (the last function has more m-combination lines than its num_ms)"
        elif tok == "ctilde_basis_func:":
            problem += " (more function blocks than total_basis_size says)"
        raise sc.error(problem, line)

    # --- assemble ----------------------------------------------------------------
    embeddings = [Embedding(ndensity=ndensity, npoti=npoti, fs_parameters=list(fs_parameters),
                            rho_core_cutoff=core_cut[mu][0], drho_core_cutoff=core_cut[mu][1])
                  for mu in range(nel)]
    bonds = {p: Bond(radbasename=radbasename, radparameters=[radparam[p]],
                     nradmax=nradmax, lmax=lmax, nradbase=nradbase,
                     radcoefficients=crad[p], rcut=cutoff[p], dcut=dcut[p],
                     rcut_in=0.0, dcut_in=0.0,
                     prehc=core_rep[p][0], lambdahc=core_rep[p][1],
                     inner_cutoff_type="density")
             for p in pairs}
    metadata = {"format": "ace", "cutoffmax": cutoffmax, "rankmax": rankmax,
                "num_c_tilde_max": num_c_tilde_max, "num_ms_combinations_max": num_ms_max}
    if header:
        metadata["header"] = header
    pot = CTildePotential(elements=elements, E0=E0, delta_spline_bins=delta,
                          embeddings=embeddings, bonds=bonds, functions=functions,
                          source=str(path), metadata=metadata)
    pot.validate()
    return pot
