"""Design rows of linear ACE potentials (acemd.fit.design) against independent references.

The B-basis test potentials are made linear in the test (ndensity 1,
FinnisSinclairShiftedScaled [1, 1]) with seeded random coefficients, scaled so
that every function contributes at most ~0.05 eV/atom on the reference
structures.  References: acemd's evaluator (ACECalculator) on that potential,
central finite differences of the energy rows (positions and strain), and the
B-basis projections of the active-set pass (another numba pass).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from acemd.potential import ACEPotential, CloseContactError
from acemd.potential.calculator import ACECalculator
from acemd.potential.extrapolation import ExtrapolationGrade
from acemd.fit.design import DesignError, DesignRows

DATA = Path(__file__).resolve().parents[1] / "data"
POT = DATA / "potentials"
REF = DATA / "references"

# (potential, inner cutoff / what it adds)
CASES = ["Cu-I",                  # one element, distance mode with r_in = 0
         "ternary_AlCuZn",        # three elements, core repulsion
         "synth_W_SBessel_ZBL",   # ZBL switch on the nearest neighbour
         "synth_NbTa_distance",   # distance inner cutoff, core repulsion
         "DFT10B-AgCu"]           # two elements


def _structures(name):
    frames = read(REF / f"{name}.extxyz", ":")
    for k, a in enumerate(frames):
        a.info.setdefault("name", f"frame{k}")
        if not a.info["name"]:
            a.info["name"] = f"frame{k}"
    return frames


def linear_tree(name, seed=0, **block_changes):
    """The yaml tree of a test potential with a linear embedding and random unit coefficients."""
    tree = yaml.safe_load((POT / f"{name}.yaml").read_text())
    rng = np.random.default_rng(seed)
    for blk in tree["species"]:
        if "ndensityi" in blk:
            blk.update(ndensityi=1, npoti="FinnisSinclairShiftedScaled", parameters=[1.0, 1.0])
            blk.update(block_changes)
        for f in blk.get("nbody", []):
            f["c"] = [float(rng.normal())]
    return tree


def write_tree(tree, path):
    path.write_text(yaml.safe_dump(tree))
    return ACEPotential(path)


def scaled_potential(name, tmp_path, seed=0, **block_changes):
    """(potential, DesignRows, coefficients): each function contributes at most 0.05 eV/atom
    on the reference structures (the random unit coefficients are distinct, so they
    identify the columns)."""
    tree = linear_tree(name, seed, **block_changes)
    dr = DesignRows(write_tree(tree, tmp_path / f"{name}_unit.yaml"))
    size = np.zeros(dr.ncols)
    for atoms in _structures(name):
        size = np.maximum(size, np.abs(dr.rows(atoms).energy) / len(atoms))
    factor = {float(cu): 0.05 / max(sz, 1e-12) for cu, sz in zip(dr.coefficients(), size)}
    assert len(factor) == dr.ncols
    for blk in tree["species"]:
        for f in blk.get("nbody", []):
            f["c"] = [float(f["c"][0] * factor[f["c"][0]])]
    pot = write_tree(tree, tmp_path / f"{name}_linear.yaml")
    dr = DesignRows(pot)
    return pot, dr, dr.coefficients()


@pytest.mark.parametrize("name", CASES)
def test_rows_reproduce_the_evaluator(name, tmp_path):
    pot, dr, c = scaled_potential(name, tmp_path)
    calc = ACECalculator(pot)
    worst = {"E": 0.0, "F": 0.0, "S": 0.0}
    for atoms in _structures(name):
        rows = dr.rows(atoms)
        e, f, s = rows.predict(c)
        atoms.calc = calc
        n = len(atoms)
        worst["E"] = max(worst["E"], abs(e - atoms.get_potential_energy()) / n)
        worst["F"] = max(worst["F"], np.abs(f - atoms.get_forces()).max())
        assert rows.periodic == bool(atoms.pbc.all())
        if rows.periodic:
            worst["S"] = max(worst["S"], np.abs(s - atoms.get_stress()).max())
        assert rows.forces.shape == (3 * n, dr.ncols) and rows.energy.shape == (dr.ncols,)
    print(f"{name}: max |dE| {worst['E']:.2e} eV/atom, |dF| {worst['F']:.2e} eV/Å, "
          f"|dstress| {worst['S']:.2e} eV/Å³ ({dr.ncols} columns)")
    assert worst["E"] < 1e-10 and worst["F"] < 1e-9 and worst["S"] < 1e-9


def _derivative(energy_rows, h):
    """Five-point central difference of the energy rows along a path x(t), h the step."""
    return (8.0 * (energy_rows(h) - energy_rows(-h)) - (energy_rows(2 * h) - energy_rows(-2 * h))) / (12 * h)


def _fd_rows(dr, atoms, pick_atoms, h=2e-4, h_strain=1e-5):
    """Max deviation (relative to the largest row entry) of the force and virial rows from
    finite differences of the energy rows in positions (step h, Å) and in strain.

    The radial functions are cubic splines on a 0.001-Å grid: a strain step moves
    distant pairs by ~h_strain * 7 Å, which must stay well below the grid step for the
    differences to converge (1e-4 strain leaves 1e-6 relative errors)."""
    rows = dr.rows(atoms)
    dev_f = 0.0
    for i in pick_atoms:
        for a in range(3):
            def moved(t):
                st = atoms.copy()
                st.positions[i, a] += t
                return dr.rows(st).energy
            fd = -_derivative(moved, h)
            dev_f = max(dev_f, np.abs(rows.forces[3 * i + a] - fd).max() / np.abs(rows.forces).max())
    dev_v = 0.0
    if rows.periodic:
        cell = atoms.cell.array
        for v, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
            def strained(t):
                eps = np.eye(3)
                eps[a, b] += t
                eps[b, a] += t if a != b else 0.0
                st = atoms.copy()
                st.set_cell(cell @ eps, scale_atoms=True)
                return dr.rows(st).energy
            fd = _derivative(strained, h_strain) / (1 if a == b else 2)     # virial = V stress = dE/d(strain)
            dev_v = max(dev_v, np.abs(rows.virial[v] - fd).max() / np.abs(rows.virial).max())
    return dev_f, dev_v


@pytest.mark.parametrize("name, structure, pick", [
    ("Cu-I", "triclinic", [0, 4]),
    ("ternary_AlCuZn", "random_alloy", [0, 1, 2]),
    ("synth_W_SBessel_ZBL", "compressed_transition", None),   # atoms in the ZBL switch
    ("synth_NbTa_distance", "compressed_transition", [0, 3]),
    ("Cu-I", "primitive_small_cell", []),        # one atom: only the virial (images) is tested
])
def test_force_and_virial_rows_are_derivatives(name, structure, pick, tmp_path):
    tree = linear_tree(name)
    dr = DesignRows(write_tree(tree, tmp_path / "p.yaml"))
    atoms = next(a for a in _structures(name) if a.info["name"] == structure)
    if pick is None:       # the atoms whose nearest neighbour lies in the ZBL switch window
        d = atoms.get_all_distances(mic=True) + 1e9 * np.eye(len(atoms))
        t = dr.potential.tables
        lo = t.bond_cut_in[0] - t.bond_dcut_in[0]
        pick = [int(i) for i in np.flatnonzero((d.min(1) > lo) & (d.min(1) < t.bond_cut_in[0]))][:3]
        assert pick, "the structure must have atoms in the switch window"
    dev_f, dev_v = _fd_rows(dr, atoms, pick)
    print(f"{name}/{structure}: force rows vs finite differences {dev_f:.2e}, "
          f"virial rows {dev_v:.2e} (relative to the largest row entry)")
    assert dev_f < 1e-8 and dev_v < 1e-8


def test_density_switch_is_exact(tmp_path):
    """rho_core inside the core-repulsion cutoff window: rows s_i B_k plus ds_i/dr."""
    core = {"core-repulsion": [20.0, 1.0], "inner_cutoff_type": "density"}
    atoms = next(a for a in _structures("Cu-I") if a.info["name"] == "compressed")
    # all coefficients zero: the site energies are rho_core; put the window over them
    probe = linear_tree("Cu-I", **core)
    for blk in probe["species"]:
        for f in blk.get("nbody", []):
            f["c"] = [0.0]
    atoms.calc = ACECalculator(write_tree(probe, tmp_path / "probe.yaml"))
    rho = atoms.get_potential_energies()
    lo, hi = np.quantile(rho, [0.25, 0.75])
    inside = np.flatnonzero((rho > lo) & (rho < hi))
    pot, dr, c = scaled_potential("Cu-I", tmp_path, rho_core_cut=float(hi),
                                  drho_core_cut=float(hi - lo), **core)
    atoms.calc = ACECalculator(pot)
    rows = dr.rows(atoms)
    e, f, s = rows.predict(c)
    dE = abs(e - atoms.get_potential_energy()) / len(atoms)
    dF = np.abs(f - atoms.get_forces()).max()
    dS = np.abs(s - atoms.get_stress()).max()
    dev_f, dev_v = _fd_rows(dr, atoms, inside[:3])
    print(f"density switch (rho_core window {lo:.3g}..{hi:.3g}, {len(inside)} of {len(atoms)} "
          f"atoms inside): |dE| {dE:.2e} eV/atom, |dF| {dF:.2e} eV/Å, |dstress| {dS:.2e} eV/Å³; "
          f"FD force rows {dev_f:.2e}, virial rows {dev_v:.2e}")
    assert dE < 1e-10 and dF < 1e-9 and dS < 1e-9
    assert dev_f < 1e-8 and dev_v < 1e-8


@pytest.mark.parametrize("name", ["Cu-I", "ternary_AlCuZn"])
def test_energy_rows_equal_projections(name, tmp_path):
    """Energy rows = sum over atoms of the active-set pass's B-projections (another pass)."""
    from acemd.neighbors import build_neighbor_list, periodic_images
    pot = write_tree(linear_tree(name), tmp_path / "p.yaml")
    dr = DesignRows(pot)
    eg = ExtrapolationGrade(pot)
    worst = 0.0
    for atoms in _structures(name):
        n = len(atoms)
        ext, owner, _ = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
        offsets, neighbors = build_neighbor_list(ext, n, pot.cutoff)
        species = pot.species_of(atoms.get_chemical_symbols())
        proj = eg.projections(ext, species[owner], n, offsets, neighbors)
        ref = np.zeros(dr.ncols)
        for i in range(n):
            sl = dr.columns(dr.elements[species[i]])
            ref[sl] += proj[i, :sl.stop - sl.start]
        rows = dr.rows(atoms)
        worst = max(worst, np.max(np.abs(rows.energy - ref) / np.maximum(np.abs(ref), 1.0)))
    print(f"{name}: energy rows vs projections, max deviation {worst:.2e}")
    assert worst < 1e-12


def test_buffers_are_reused(tmp_path):
    pot = write_tree(linear_tree("Cu-I"), tmp_path / "p.yaml")
    dr = DesignRows(pot)
    frames = _structures("Cu-I")
    big = max(frames, key=len)
    small = min(frames, key=len)
    first = dr.rows(small)
    dr.rows(big)
    again = dr.rows(small, copy=False)
    size = dr._forces.size
    assert np.array_equal(first.forces, again.forces) and np.array_equal(first.energy, again.energy)
    dr.rows(big, copy=False)
    assert dr._forces.size == size == 3 * len(big) * dr.ncols


def test_errors(tmp_path):
    with pytest.raises(DesignError, match="not linear.*ndensity: 1"):
        DesignRows(ACEPotential(POT / "Cu-I.yaml"))           # ndensity 2, FS exponent 0.5
    tree = linear_tree("Cu-I")
    tree["species"][0]["parameters"] = [1.0, 0.8]
    tree["species"][0]["npoti"] = "FinnisSinclair"
    with pytest.raises(DesignError, match="Cu.*FinnisSinclair.*not linear"):
        DesignRows(write_tree(tree, tmp_path / "fs.yaml"))
    with pytest.raises(DesignError, match="no B-basis"):
        DesignRows(ACEPotential(POT / "Cu-I.yace"))
    dr = DesignRows(write_tree(linear_tree("Cu-I"), tmp_path / "p.yaml"))
    atoms = _structures("Cu-I")[0]
    atoms.positions[1] = atoms.positions[0] + [1e-4, 0, 0]
    with pytest.raises(CloseContactError, match="atoms 0 and 1"):
        dr.rows(atoms)


def test_embedding_weight_and_finnis_sinclair_exponent_one(tmp_path):
    """F(rho) = w rho: rows scale with w; FinnisSinclair with exponent 1 is linear too."""
    pot, dr, c = scaled_potential("Cu-I", tmp_path)
    atoms = next(a for a in _structures("Cu-I") if a.info["name"] == "bulk_hot")
    base = dr.rows(atoms)
    tree = yaml.safe_load(Path(pot.model.source).read_text())
    for npot, w in (("FinnisSinclairShiftedScaled", 2.5), ("FinnisSinclair", 1.0)):
        tree["species"][0].update(npoti=npot, parameters=[w, 1.0])
        other = write_tree(tree, tmp_path / f"{npot}.yaml")
        rows = DesignRows(other).rows(atoms)
        atoms.calc = ACECalculator(other)
        e, f, s = rows.predict(c)
        dev_rows = np.abs(rows.forces - w * base.forces).max() / np.abs(base.forces).max()
        dE = abs(e - atoms.get_potential_energy()) / len(atoms)
        dF = np.abs(f - atoms.get_forces()).max()
        print(f"{npot} [{w}, 1]: rows vs {w} x rows of [1, 1] {dev_rows:.2e} (relative), "
              f"|dE| {dE:.2e} eV/atom, |dF| {dF:.2e} eV/Å against the evaluator")
        assert dev_rows < 1e-13 and dE < 1e-10 and dF < 1e-9


def test_from_model_evaluates_like_the_file(tmp_path):
    """ACEPotential.from_model on the file's own model gives the file's numbers."""
    path = POT / "ternary_AlCuZn.yaml"
    from_file = ACEPotential(path)
    in_memory = ACEPotential.from_model(from_file.model, source="ternary in memory")
    assert str(in_memory.path) == "ternary in memory" and len(in_memory.file_sha256) == 64
    atoms = next(a for a in _structures("ternary_AlCuZn") if a.info["name"] == "random_alloy")
    atoms.calc = ACECalculator(from_file)
    e_file, f_file = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = ACECalculator(in_memory)
    e_mem, f_mem = atoms.get_potential_energy(), atoms.get_forces()
    print(f"from_model vs file: |dE| {abs(e_mem - e_file):.1e} eV, |dF| {np.abs(f_mem - f_file).max():.1e} eV/Å")
    assert e_mem == e_file and np.array_equal(f_mem, f_file)


def test_empty_structure_is_an_error(tmp_path):
    from ase import Atoms
    dr = DesignRows(write_tree(linear_tree("Cu-I"), tmp_path / "p.yaml"))
    with pytest.raises(DesignError, match="without atoms"):
        dr.rows(Atoms(cell=[5, 5, 5], pbc=True))


def test_notebook_basis_rows_reproduce_the_evaluator():
    """The 822-function Cu basis of pacemaker's linear-fit notebook (acemd.fit.basis), random
    coefficients scaled per function, on Cu structures: ranks 1-5, SBessel, rcut 6 Å."""
    from acemd.fit.basis import build_basis
    spec = build_basis({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                               "ndensity": 1}},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 6, "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [8, 8, 4, 3, 2], "lmax_by_orders": [0, 4, 3, 2, 1]}}})
    frames = [a for a in _structures("Cu-I") if a.info["name"] in ("bulk_hot", "triclinic", "slab")]
    unit = ACEPotential.from_model(spec.to_potential([np.ones((spec.nfuncs[0], 1))]), source="notebook")
    dr = DesignRows(unit)
    size = np.max([np.abs(dr.rows(a).energy) / len(a) for a in frames], axis=0)
    rng = np.random.default_rng(5)
    c = 0.05 * rng.normal(size=dr.ncols) / np.maximum(size, 1e-12)
    pot = ACEPotential.from_model(spec.to_potential(spec.coefficient_blocks(c)), source="notebook")
    assert dr.ncols == 822
    calc = ACECalculator(pot)
    worst = np.zeros(3)
    for atoms in frames:
        e, f, s = dr.rows(atoms).predict(c)
        atoms.calc = calc
        worst = np.maximum(worst, [abs(e - atoms.get_potential_energy()) / len(atoms),
                                   np.abs(f - atoms.get_forces()).max(),
                                   np.abs(s - atoms.get_stress()).max()])
    print(f"notebook basis ({dr.ncols} functions): |dE| {worst[0]:.2e} eV/atom, |dF| {worst[1]:.2e} eV/Å, "
          f"|dstress| {worst[2]:.2e} eV/Å³")
    assert worst[0] < 1e-10 and worst[1] < 1e-9 and worst[2] < 1e-9


def test_kernel_rows_per_extended_atom_fold_to_the_owners(tmp_path):
    """With owner = identity the kernel gives rows on every extended atom (as the force kernel
    gives forces on ghosts); folding them onto the owners in Python gives DesignRows' rows."""
    from acemd.potential.calculator import periodic_system
    from acemd.potential.design_kernel import design_rows_kernel
    pot = write_tree(linear_tree("ternary_AlCuZn"), tmp_path / "p.yaml")
    dr = DesignRows(pot)
    atoms = next(a for a in _structures("ternary_AlCuZn") if a.info["name"] == "triclinic")
    n = len(atoms)
    species, ext, owner, offsets, neighbors = periodic_system(
        pot, atoms.positions, atoms.cell.array, atoms.pbc, atoms.get_chemical_symbols())
    n_ext = len(ext)
    assert n_ext > 3 * n                       # a small cell: most neighbours are images
    energy = np.zeros(dr.ncols)
    forces = np.zeros((3 * n_ext, dr.ncols))
    virial = np.zeros((6, dr.ncols))
    t = pot.tables
    status, _, _ = design_rows_kernel(
        np.ascontiguousarray(ext), species[owner], n, offsets, neighbors, np.arange(n_ext),
        t.nradbase, t.nradmax, t.lmax, t.ndensity_max, t.is_zbl, t.cutoff_max, t.force_tables,
        t.basis_tables, t.spline_nlut, t.spline_scale, t.bond_rcut, t.bond_cut_in, t.bond_dcut_in,
        t.rho_core_cut, t.drho_core_cut, dr.emb_weight, t.ylm_a, t.ylm_b, *dr.tables.kernel_args(),
        energy, forces, virial)
    assert status == 0
    folded = np.zeros((n, 3, dr.ncols))
    np.add.at(folded, owner, forces.reshape(n_ext, 3, dr.ncols))
    rows = dr.rows(atoms)
    scale = np.abs(rows.forces).max()
    dev_f = np.abs(folded.reshape(3 * n, -1) - rows.forces).max() / scale
    dev_v = np.abs(-virial - rows.virial).max() / np.abs(rows.virial).max()
    print(f"per-extended-atom rows folded in Python vs folded in the kernel: forces {dev_f:.1e}, "
          f"virial {dev_v:.1e} (relative); {n_ext} extended atoms for {n}")
    assert np.array_equal(energy, rows.energy) and dev_f < 1e-13 and dev_v < 1e-13
