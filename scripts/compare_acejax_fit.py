"""Fit pacemaker's Cu-II dataset with ace-jax: the ace-jax side of `acemd fit`'s comparison.

Runs with the python of the ace-jax virtual environment, not acemd's (ace-jax and jax stay out
of acemd's dependencies):

    python -m venv /work/venv-acejax
    /work/venv-acejax/bin/pip install ace-jax pandas
    /work/venv-acejax/bin/python scripts/compare_acejax_fit.py [--harmonics spherical] [--json-only]

It pins itself to one of the allowed CPUs (`--cpus`, default 1) and sets XLA and BLAS to one
thread before jax starts, so its times are one-core times, as `acemd fit`'s in bench_fit.py.

What it does, so that the numbers compare with pacemaker's linear-fit notebook and `acemd fit`:
- reads examples/Cu-II/Cu_df2_1k.pkl.gzip (1000 structures, 11309 atoms) without pyace (the
  pickle names pacemaker's DataFrame subclass; it is read as a plain pandas.DataFrame);
- splits it as the notebook did, train = df.sample(frac=0.95, random_state=42), test = the rest,
  and prints a hash of the sorted test indices (sha256 of "i,j,k,...", first 16 hex digits);
- builds ace-jax's linear ACE with pacemaker's selection: correlation order 5, SBessel radials
  (R_nl = g_n, pacemaker's initial crad), rcut 6 Å, nradmax [8,8,4,3,2], lmax [0,4,3,2,1]
  per order, level bound 24 (every function the caps allow): 822 B-functions, pacemaker's count.
  ace-jax adds a separate pair basis of `max_degree` functions; by default it is switched off
  (its radials set to zero, `--pair-basis none`). ace-jax authors its basis with solid harmonics
  r^l Y_lm; `--harmonics spherical` evaluates the same basis with Y_lm, as pacemaker does: the
  B-functions are then products of pacemaker's one-particle functions g_n(r) Y_lm, with the same
  (n, l) selection and counts per order, coupled by ace-jax's own (orthogonal) couplings;
- fits `energy_corrected` and the forces by ace-jax's Bayesian linear regression (noise levels
  and prior scale from the evidence, QR form), with no constant per atom (E0 = 0: the energies
  are already referenced to the free atom), and prints the errors of energies (meV/atom) and of
  force components (meV/Å) on train and test, the times (design rows, their QR accumulation,
  the evidence maximisation), the peak memory, and the threads that ran.

The last stdout line is one JSON object with every figure (`--json-only` prints only that line;
ace-jax's own log then goes to stderr), for scripts/bench_fit.py.
"""

import argparse
import os
import sys

# one thread per process unless the caller says otherwise: set before jax/numpy are imported
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if XLA_SINGLE_THREAD not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_SINGLE_THREAD).strip()

import contextlib  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

DEFAULT_DATA = "/tmp/pace/examples/Cu-II/Cu_df2_1k.pkl.gzip"
PACEMAKER_NRADMAX = (8, 8, 4, 3, 2)
PACEMAKER_LMAX = (0, 4, 3, 2, 1)


class _PlainFrameUnpickler(pickle.Unpickler):
    """Unpickles pacemaker's DataFrame subclass (pyace.*) as pandas.DataFrame: no pyace needed."""

    def find_class(self, module, name):
        if module.split(".")[0] == "pyace":
            import pandas as pd
            return pd.DataFrame
        return super().find_class(module, name)


def read_pacemaker_pickle(path):
    """The dataset as a pandas.DataFrame with ase_atoms, energy_corrected and forces columns."""
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: no such file; pass the Cu-II pickle with --data")
    opener = gzip.open if path.endswith(("gz", "gzip")) else open
    with opener(path, "rb") as f:
        df = _PlainFrameUnpickler(f).load()
    missing = [c for c in ("ase_atoms", "energy_corrected", "forces") if c not in df.columns]
    if missing:
        raise SystemExit(f"{path}: column(s) {missing} missing (has {list(df.columns)}); "
                         "give a pacemaker dataset with energy_corrected and forces")
    return df


def split_like_notebook(df, seed=42, frac=0.95):
    """(train, test) DataFrames: pacemaker's notebook split, df.sample(frac, random_state)."""
    train = df.sample(frac=frac, random_state=seed)
    test = df.loc[[i for i in df.index if i not in set(train.index)]]
    return train, test


def index_hash(index):
    """First 16 hex digits of sha256 over the sorted indices joined by commas."""
    return hashlib.sha256(",".join(str(int(i)) for i in sorted(index)).encode()).hexdigest()[:16]


def to_atoms(df, path):
    """ase.Atoms with the labels in info['energy_corrected'] (eV) and arrays['forces_ref'] (eV/Å)."""
    out = []
    for idx, row in df.iterrows():
        atoms = row["ase_atoms"].copy()          # copy() leaves the pickled calculator behind
        forces = np.asarray(row["forces"], float)
        energy = float(row["energy_corrected"])
        if forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)) or not np.isfinite(energy):
            raise SystemExit(f"{path}: structure index {idx}: energy {energy!r} or forces of shape "
                             f"{forces.shape} unusable (need finite values, forces ({len(atoms)}, 3))")
        atoms.info["energy_corrected"] = energy
        atoms.arrays["forces_ref"] = forces
        out.append(atoms)
    return out


class StreamTimer:
    """Times ace-jax's streamed design pass on the CPU (ace_jax.fit.stats.host_qr_stream): the
    jitted per-batch design rows and the host QR merges that fold them into R, separately."""

    def __init__(self, stats_module):
        self.st = stats_module
        self.passes = []          # one dict per streamed pass
        self._merge_s = self._merge_cpu_s = 0.0

    def install(self):
        st, orig_stream, orig_merge = self.st, self.st.host_qr_stream, self.st._host_merge

        def merge(*a):
            t, c = time.perf_counter(), time.process_time()
            r = orig_merge(*a)
            self._merge_s += time.perf_counter() - t
            self._merge_cpu_s += time.process_time() - c
            return r

        def stream(batch_rows_fn, ds, init, merge_rows=None):
            import jax
            batch_s, batch_cpu_s = [], []

            def rows(batch):
                t, c = time.perf_counter(), time.process_time()
                out = jax.block_until_ready(batch_rows_fn(batch))
                batch_s.append(time.perf_counter() - t)
                batch_cpu_s.append(time.process_time() - c)
                return out
            self._merge_s = self._merge_cpu_s = 0.0
            t0 = time.perf_counter()
            res = orig_stream(rows, ds, init, merge_rows)
            self.passes.append({"wall_s": time.perf_counter() - t0, "batch_s": batch_s, "batch_cpu_s": batch_cpu_s,
                                "merge_s": self._merge_s, "merge_cpu_s": self._merge_cpu_s,
                                "end_wall": time.perf_counter(), "end_cpu": time.process_time()})
            return res

        st._host_merge, st.host_qr_stream = merge, stream


def threads_now():
    """Threads of this process (Linux /proc), or None."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration):
        return None


def errors(arrays):
    """RMSE and MAE of energies (meV/atom) and of force components (meV/Å)."""
    nat = np.asarray(arrays["nat"], float)
    de = 1e3 * (np.asarray(arrays["E_mean"]) - np.asarray(arrays["E"])) / nat
    df = 1e3 * (np.asarray(arrays["F_mean"]) - np.asarray(arrays["F"])).reshape(-1)
    return {"E_rmse_meV_atom": float(np.sqrt(np.mean(de ** 2))), "E_mae_meV_atom": float(np.mean(np.abs(de))),
            "F_rmse_meV_A": float(np.sqrt(np.mean(df ** 2))), "F_mae_meV_A": float(np.mean(np.abs(df))),
            "n_structures": int(len(nat)), "n_atoms": int(nat.sum())}


def _count(minimum):
    """argparse type: an int >= minimum (exit 2 naming the value otherwise)."""
    def check(text):
        v = int(text)
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be an integer >= {minimum}")
        return v
    return check


def _positive(text):
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be > 0")
    return v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="pacemaker pickle (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=42, help="random_state of df.sample (notebook: 42)")
    p.add_argument("--rcut", type=_positive, default=6.0, help="cutoff, Å")
    p.add_argument("--max-degree", type=_count(1), default=24,
                   help="ace-jax TotalDegree level bound (wL = 1: pacemaker's sum of n + l); 24 keeps "
                        "every function the per-order caps allow")
    p.add_argument("--radial-basis", choices=("sbessel", "poly"), default="sbessel")
    p.add_argument("--pair-basis", choices=("none", "acejax"), default="none",
                   help="none: ace-jax's extra pair basis switched off (pacemaker's function space); "
                        "acejax: kept (max-degree extra functions)")
    p.add_argument("--harmonics", choices=("solid", "spherical"), default="solid",
                   help="solid: ace-jax's own r^l Y_lm (its default); spherical: Y_lm, as pacemaker")
    p.add_argument("--e0", choices=("model", "lsq"), default="model",
                   help="model: no constant per atom (E0 = 0, as pacemaker); lsq: ace-jax fits one")
    p.add_argument("--configs-per-batch", type=_count(1), default=4)
    p.add_argument("--map-steps", type=_count(1), default=150, help="L-BFGS iterations of the evidence maximisation")
    p.add_argument("--cpus", type=_count(0), default=1,
                   help="run on this many of the allowed CPUs (sched_setaffinity, before jax starts; "
                        "0: all allowed); default 1, the one-core figures of issue 23")
    p.add_argument("--subset", type=_count(0), default=0,
                   help="smoke test: fit only the first N training and N//10 test structures of the split")
    p.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    if 0 < a.cpus < len(allowed):
        os.sched_setaffinity(0, allowed[:a.cpus])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    quiet = a.json_only
    say = (lambda *x: print(*x, file=sys.stderr)) if quiet else print
    log = (lambda *x: print(*x, file=sys.stderr)) if quiet else (lambda *x: print("  [ace-jax]", *x))

    import jax
    jax.config.update("jax_enable_x64", True)
    import ace_jax
    import ace_jax.fit.stats as ajstats
    from ace_jax.basis.model import BasisSpec, build_basis
    from ace_jax.fit.pipeline import FitConfig, fit, load_fit_data

    timer = StreamTimer(ajstats)
    timer.install()
    out = {"code": "ace-jax", "ace_jax_version": ace_jax.__version__, "jax_version": jax.__version__,
           "python": sys.version.split()[0]}

    t = time.perf_counter()
    df = read_pacemaker_pickle(a.data)
    train_df, test_df = split_like_notebook(df, a.split_seed)
    out["test_index_sha256_16"] = index_hash(test_df.index)
    if a.subset:
        train_df, test_df = train_df.iloc[:a.subset], test_df.iloc[:max(1, a.subset // 10)]
    train, test = to_atoms(train_df, a.data), to_atoms(test_df, a.data)
    out.update(data=os.path.basename(a.data), n_train=len(train), n_test=len(test),
               n_train_atoms=int(sum(len(x) for x in train)), n_test_atoms=int(sum(len(x) for x in test)),
               subset=a.subset, read_s=time.perf_counter() - t)
    say(f"data {a.data}: {len(df)} structures; train {out['n_train']} ({out['n_train_atoms']} atoms), "
        f"test {out['n_test']} ({out['n_test_atoms']} atoms); test indices sha256[:16] "
        f"{out['test_index_sha256_16']}")

    spec = BasisSpec(order=len(PACEMAKER_NRADMAX), max_degree=a.max_degree, elements=("Cu",), wL=1.0,
                     rcut=a.rcut, nmax_by_order=PACEMAKER_NRADMAX, lmax_by_order=PACEMAKER_LMAX,
                     radial_basis=a.radial_basis, pair_mode="zero" if a.pair_basis == "none" else "onehot")
    t = time.perf_counter()
    sink = contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext()
    with sink:
        basis = build_basis(spec, seed=0)
    if a.harmonics == "spherical":          # the authored model is solid; the loader follows model.ysolid
        import dataclasses
        basis = basis._replace(model=dataclasses.replace(basis.model, ysolid=False))
    out["basis_s"] = time.perf_counter() - t
    cfg = FitConfig(model=basis, arm="linear", energy_key="energy_corrected", force_key="forces_ref",
                    e0=a.e0, batch=a.configs_per_batch, uq="blr", rungs=("map",), solver="evidence",
                    lml_solver="qr", map_steps=a.map_steps, predict_train=True, seed=0)

    with sink:
        t = time.perf_counter()
        data = load_fit_data(cfg, train=train, test=test, log=log)
        out["data_s"] = time.perf_counter() - t
        meta = data.meta
        n_B, n_pair, L = int(meta["n_B"]), int(meta["n_pair"]), int(meta["len_basis"])
        out.update(n_B_functions=n_B, n_pair_functions=n_pair if a.pair_basis == "acejax" else 0,
                   n_columns=L, basis_order=len(PACEMAKER_NRADMAX), max_degree=a.max_degree,
                   nradmax_by_orders=list(PACEMAKER_NRADMAX), lmax_by_orders=list(PACEMAKER_LMAX),
                   rcut_A=a.rcut, radial_basis=a.radial_basis, pair_basis=a.pair_basis, e0=a.e0,
                   harmonics=a.harmonics, ybasis_kind=meta["ybasis_kind"],
                   B_per_order=[int(x) for x in np.bincount([len(b) for b in meta["nnll"]])[1:]])
        say(f"basis: {n_B} B-functions (per order {out['B_per_order']}), "
            f"{out['n_pair_functions']} pair functions; design columns {L}")
        marks = {}
        res = fit(cfg, data, log=log, on_stage=lambda name, payload: marks.setdefault(
            name, (time.perf_counter(), time.process_time())))

    tm = res.timings
    design = timer.passes[0] if timer.passes else None
    if design is None or "map" not in marks:
        raise SystemExit("ace-jax did not stream its design rows through host_qr_stream (a GPU backend, "
                         "or a changed ace-jax): the timing split is not available")
    bs, bc = np.asarray(design["batch_s"]), np.asarray(design["batch_cpu_s"])
    steady, steady_cpu = (float(np.median(x[1:])) if len(x) > 1 else float(x[0]) for x in (bs, bc))
    assembly_s = float(bs[1:].sum() + steady)              # every batch, without the one-off compile
    assembly_cpu_s = float(bc[1:].sum() + steady_cpu)
    atom_fn = out["n_train_atoms"] * L
    map_s = marks["map"][0] - design["end_wall"]           # after the design pass: the evidence maximisation
    map_cpu_s = marks["map"][1] - design["end_cpu"]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out.update(
        n_batches=int(len(bs)), compile_s=float(bs[0] - steady), compile_cpu_s=float(bc[0] - steady_cpu),
        assembly_s=assembly_s, assembly_cpu_s=assembly_cpu_s,
        assembly_us_per_atom_function=1e6 * assembly_s / atom_fn,
        assembly_cpu_us_per_atom_function=1e6 * assembly_cpu_s / atom_fn,
        qr_accumulation_s=float(design["merge_s"]), qr_accumulation_cpu_s=float(design["merge_cpu_s"]),
        design_pass_wall_s=float(design["wall_s"]), statistics_pass_s=float(tm.get("stats_once", np.nan)),
        evidence_map_s=map_s, evidence_map_cpu_s=map_cpu_s,
        solve_s=float(design["merge_s"]) + map_s, solve_cpu_s=float(design["merge_cpu_s"]) + map_cpu_s,
        predict_train_s=float(tm.get("predict_train_map", np.nan)),
        predict_test_s=float(tm.get("predict_test_map", np.nan)),
        fit_total_s=float(tm.get("total", np.nan)), wall_s=wall, cpu_s=cpu,
        peak_rss_MB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        cpus_allowed=len(os.sched_getaffinity(0)), threads_at_end=threads_now(),
        xla_flags=os.environ.get("XLA_FLAGS", ""), openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS"),
        sigma_c=float(np.exp(res.theta.log_sigma_c)), sigma_E_eV=float(np.exp(res.theta.log_sigma_E)),
        sigma_F_eV_A=float(np.exp(res.theta.log_sigma_F)),
        log_evidence=float(res.map.log_evidence) if res.map.log_evidence is not None else None,
        train=errors(res.preds.arrays["train/map"]), test=errors(res.preds.arrays["test/map"]))
    out["cpu_over_wall"] = cpu / wall

    if not quiet:
        print(f"\nace-jax {out['ace_jax_version']} (jax {out['jax_version']}), Cu-II, "
              f"{n_B} B-functions + {out['n_pair_functions']} pair, rcut {a.rcut} Å, {a.radial_basis} radials, {meta['ybasis_kind']}")
        print(f"{'':8s}{'E RMSE':>10s}{'E MAE':>10s}{'F RMSE':>10s}{'F MAE':>10s}   (meV/atom, meV/Å components)")
        for split in ("train", "test"):
            e = out[split]
            print(f"{split:8s}{e['E_rmse_meV_atom']:10.3f}{e['E_mae_meV_atom']:10.3f}"
                  f"{e['F_rmse_meV_A']:10.3f}{e['F_mae_meV_A']:10.3f}")
        print("times: wall s (CPU s of this process)")
        print(f"design rows, energy+force, {out['n_batches']} padded batches, {out['n_train_atoms']} atoms x "
              f"{L} columns: {assembly_s:.1f} ({assembly_cpu_s:.1f}) = "
              f"{out['assembly_us_per_atom_function']:.2f} ({out['assembly_cpu_us_per_atom_function']:.2f}) "
              f"µs per atom·function; jit compile {out['compile_s']:.1f} ({out['compile_cpu_s']:.1f})")
        print(f"solve: QR accumulation {out['qr_accumulation_s']:.1f} ({out['qr_accumulation_cpu_s']:.1f}) + "
              f"evidence maximisation {map_s:.1f} ({map_cpu_s:.1f}) = {out['solve_s']:.1f} ({out['solve_cpu_s']:.1f})")
        print(f"predictions (design rows again): train {out['predict_train_s']:.1f}, test {out['predict_test_s']:.1f}; "
              f"basis {out['basis_s']:.1f}, "
              f"neighbour data {out['data_s']:.1f}")
        print(f"whole run {wall:.1f} wall, {cpu:.1f} CPU (CPU/wall {out['cpu_over_wall']:.2f}; "
              f"{out['cpus_allowed']} CPU(s) allowed; {out['threads_at_end']} threads; XLA_FLAGS "
              f"{out['xla_flags']!r}, OPENBLAS_NUM_THREADS {out['openblas_threads']})")
        print(f"peak memory (maxrss) {out['peak_rss_MB']:.0f} MB")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
