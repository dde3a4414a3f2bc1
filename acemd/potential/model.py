"""In-memory description of a C-tilde ACE potential, shared by every reader.

Every file format (``.yace``, ``.ace``, and the B-basis ``.yaml`` after coupling)
is parsed into one :class:`CTildePotential`.  The kernel tables are built from
this description (see ``acemd.potential.tables``), so readers never know about
the kernel and the kernel never knows about files.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RADIAL_BASES = ("ChebExpCos", "ChebPow", "ChebLinear", "SBessel")
EMBEDDINGS = ("FinnisSinclair", "FinnisSinclairShiftedScaled")
INNER_CUTOFF_TYPES = ("density", "distance", "zbl")


class PotentialFileError(ValueError):
    """A potential file is malformed or uses a feature acemd cannot evaluate."""

    def __init__(self, path, where, problem):
        self.path = str(path)
        self.where = where
        self.problem = problem
        loc = f"{self.path}" + (f", {where}" if where else "")
        super().__init__(f"{loc}: {problem}")


@dataclass
class Embedding:
    """Embedding of one central element: E_F = sum_p w_p F(rho_p; m_p)."""

    ndensity: int
    npoti: str                      # FinnisSinclair | FinnisSinclairShiftedScaled
    fs_parameters: list[float]      # [w_1, m_1, w_2, m_2, ...], length 2*ndensity
    rho_core_cutoff: float          # energy-cutoff on rho_core (eV)
    drho_core_cutoff: float


@dataclass
class Bond:
    """Radial settings of the ordered element pair (mu_i, mu_j)."""

    radbasename: str
    radparameters: list[float]      # lambda is radparameters[0]
    nradmax: int
    lmax: int
    nradbase: int
    radcoefficients: np.ndarray     # crad[n, l, k], shape (nradmax, lmax+1, nradbase)
    rcut: float                     # Å
    dcut: float                     # Å
    rcut_in: float = 0.0            # Å, inner cutoff
    dcut_in: float = 0.0            # Å
    prehc: float = 0.0              # core-repulsion prefactor (eV·Å)
    lambdahc: float = 0.0           # core-repulsion exponent (1/Å^2)
    inner_cutoff_type: str = "density"


@dataclass
class CTildeFunction:
    """One C-tilde basis function of a central element.

    ``ms_combs`` holds one row of m values per product of A's; ``ctildes`` one
    coefficient per density for each row.  ``ns`` are 1-based as in the files.
    """

    mu0: int
    rank: int
    mus: tuple[int, ...]
    ns: tuple[int, ...]
    ls: tuple[int, ...]
    ms_combs: np.ndarray            # int, (num_ms_combs, rank)
    ctildes: np.ndarray             # float, (num_ms_combs, ndensity)


@dataclass
class BFunction:
    """One B-basis function of a pacemaker ``.yaml`` (kept for active-set projections).

    B = sum_rows gen_cgs[row] * Re(prod_t A_{mus[t] ns[t] ls[t] ms_combs[row, t]}) in
    the half-basis form (see :func:`acemd.potential.coupling.half_basis_cg`);
    ``coeffs`` holds its coefficient per density.  ``ns`` are 1-based.
    """

    mu0: int
    mus: tuple[int, ...]
    ns: tuple[int, ...]
    ls: tuple[int, ...]
    LS: tuple[int, ...]
    coeffs: np.ndarray              # (ndensity,)
    ms_combs: np.ndarray            # int, (num_ms_combs, rank), half basis
    gen_cgs: np.ndarray             # float, (num_ms_combs,)

    @property
    def rank(self) -> int:
        return len(self.ls)


@dataclass
class CTildePotential:
    """A complete ACE potential in C-tilde form (what ``.yace`` stores)."""

    elements: list[str]
    E0: np.ndarray                  # eV per element
    delta_spline_bins: float        # Å, radial tabulation step
    embeddings: list[Embedding]     # per element index
    bonds: dict[tuple[int, int], Bond]
    functions: list[list[CTildeFunction]]   # per central element, rank-1 first
    source: str = ""
    metadata: dict = field(default_factory=dict)
    # B-basis functions per central element in pyace's sorted order (rank 1 first);
    # only for potentials read from a B-basis ``.yaml``, None otherwise
    bbasis: list[list[BFunction]] | None = None

    @property
    def nelements(self) -> int:
        return len(self.elements)

    @property
    def inner_cutoff_type(self) -> str:
        return next(iter(self.bonds.values())).inner_cutoff_type

    @property
    def cutoff_max(self) -> float:
        """Largest bond cutoff (Å): the neighbour-list cutoff."""
        return max(b.rcut for b in self.bonds.values())

    def element_index(self, symbol: str) -> int:
        try:
            return self.elements.index(symbol)
        except ValueError:
            raise KeyError(symbol) from None

    def validate(self):
        """Check the cross-field consistency every reader must guarantee."""
        path = self.source
        n = self.nelements
        self.check_finite()
        if n == 0:
            raise PotentialFileError(path, "elements", "no elements defined")
        if len(self.E0) != n:
            raise PotentialFileError(path, "E0", f"expected {n} values, got {len(self.E0)}")
        if not self.delta_spline_bins > 0:
            raise PotentialFileError(path, "deltaSplineBins",
                                     f"must be positive, got {self.delta_spline_bins}")
        if len(self.embeddings) != n:
            raise PotentialFileError(path, "embeddings", f"expected one per element ({n})")
        for mu, emb in enumerate(self.embeddings):
            where = f"embeddings[{mu}] ({self.elements[mu]})"
            if emb.npoti not in EMBEDDINGS:
                raise PotentialFileError(path, where + ".npoti",
                                         f"unsupported embedding '{emb.npoti}'; "
                                         f"supported: {', '.join(EMBEDDINGS)}")
            if emb.ndensity < 1 or len(emb.fs_parameters) != 2 * emb.ndensity:
                raise PotentialFileError(path, where + ".FS_parameters",
                                         f"need 2*ndensity = {2 * emb.ndensity} values, "
                                         f"got {len(emb.fs_parameters)}")
        types = set()
        for i in range(n):
            for j in range(n):
                if (i, j) not in self.bonds:
                    raise PotentialFileError(path, "bonds",
                                             f"missing bond [{i}, {j}] "
                                             f"({self.elements[i]}-{self.elements[j]})")
                b = self.bonds[(i, j)]
                where = f"bonds[{i}, {j}]"
                if b.radbasename not in RADIAL_BASES:
                    raise PotentialFileError(path, where + ".radbasename",
                                             f"unsupported radial basis '{b.radbasename}'; "
                                             f"supported: {', '.join(RADIAL_BASES)}")
                if b.inner_cutoff_type not in INNER_CUTOFF_TYPES:
                    raise PotentialFileError(path, where + ".inner_cutoff_type",
                                             f"unknown inner cutoff type '{b.inner_cutoff_type}'; "
                                             f"expected one of {', '.join(INNER_CUTOFF_TYPES)}")
                types.add(b.inner_cutoff_type)
                if not b.rcut > 0:
                    raise PotentialFileError(path, where + ".rcut", f"must be positive, got {b.rcut}")
                shape = (b.nradmax, b.lmax + 1, b.nradbase)
                if b.nradmax > 0 and b.radcoefficients.shape != shape:
                    raise PotentialFileError(path, where + ".radcoefficients",
                                             f"shape {b.radcoefficients.shape}, expected {shape} "
                                             "(nradmax, lmax+1, nradbase)")
        if len(types) > 1:
            raise PotentialFileError(path, "bonds.inner_cutoff_type",
                                     f"bonds disagree ({', '.join(sorted(types))}); "
                                     "the inner cutoff type must be the same for all bonds")
        if len(self.functions) != n:
            raise PotentialFileError(path, "functions", f"expected a block per element ({n})")
        for mu, funcs in enumerate(self.functions):
            nd = self.embeddings[mu].ndensity
            for idx, f in enumerate(funcs):
                where = f"functions[{mu}][{idx}]"
                if f.mu0 != mu:
                    raise PotentialFileError(path, where + ".mu0",
                                             f"is {f.mu0} but the function is listed under element {mu}")
                if not (len(f.mus) == len(f.ns) == len(f.ls) == f.rank):
                    raise PotentialFileError(path, where, "mus/ns/ls lengths differ from rank")
                if f.ms_combs.ndim != 2 or f.ms_combs.shape[1] != f.rank:
                    raise PotentialFileError(path, where + ".ms_combs",
                                             f"expected num_ms_combs x rank ({f.rank}) values")
                if f.ctildes.shape != (f.ms_combs.shape[0], nd):
                    raise PotentialFileError(path, where + ".ctildes",
                                             f"expected num_ms_combs x ndensity = "
                                             f"{f.ms_combs.shape[0]} x {nd} values, got shape "
                                             f"{f.ctildes.shape}")
                for t in range(f.rank):
                    mu_t, n_t, l_t = f.mus[t], f.ns[t], f.ls[t]
                    if not 0 <= mu_t < n:
                        raise PotentialFileError(path, where + ".mus", f"element index {mu_t} out of range")
                    b = self.bonds[(mu, mu_t)]
                    nmax = b.nradbase if f.rank == 1 else b.nradmax
                    if not 1 <= n_t <= nmax:
                        raise PotentialFileError(path, where + ".ns",
                                                 f"n = {n_t} outside 1..{nmax} of bond [{mu}, {mu_t}]")
                    if not 0 <= l_t <= b.lmax and f.rank > 1:
                        raise PotentialFileError(path, where + ".ls",
                                                 f"l = {l_t} outside 0..{b.lmax} of bond [{mu}, {mu_t}]")
                if f.rank > 1 and np.any(np.abs(f.ms_combs) > np.asarray(f.ls)[None, :]):
                    raise PotentialFileError(path, where + ".ms_combs", "some |m| exceeds its l")

    def check_finite(self):
        """Every number must be finite: NaN/inf coefficients would only show up later as NaN forces."""
        def check(where, values):
            a = np.asarray(values, dtype=np.float64)
            if a.size and not np.all(np.isfinite(a)):
                k = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
                raise PotentialFileError(self.source, where,
                                         f"value {a.ravel()[k]} (entry {k}) is not a finite number; "
                                         "the file is damaged or was written from a diverged fit")
        check("E0", self.E0)
        check("deltaSplineBins", [self.delta_spline_bins])
        for mu, emb in enumerate(self.embeddings):
            where = f"embeddings[{mu}]"
            check(where + ".FS_parameters", emb.fs_parameters)
            check(where + ".rho_core_cutoff", [emb.rho_core_cutoff, emb.drho_core_cutoff])
        for (i, j), b in self.bonds.items():
            where = f"bonds[{i}, {j}]"
            for name in ("rcut", "dcut", "rcut_in", "dcut_in", "prehc", "lambdahc"):
                check(f"{where}.{name}", [getattr(b, name)])
            check(where + ".radparameters", b.radparameters)
            check(where + ".radcoefficients", b.radcoefficients)
        for mu, funcs in enumerate(self.functions):
            for idx, f in enumerate(funcs):
                check(f"functions[{mu}][{idx}].ctildes", f.ctildes)
        for mu, funcs in enumerate(self.bbasis or []):
            for idx, f in enumerate(funcs):
                check(f"bbasis[{mu}][{idx}].coeffs", f.coeffs)
