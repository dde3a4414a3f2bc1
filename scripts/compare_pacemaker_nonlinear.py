"""pacemaker and `acemd fit` side by side on one nonlinear Cu-II input: times, memory, errors.

pacemaker is not part of acemd (nor a dependency): it runs from its own virtual environment,
given by ``--pacemaker`` (the ``pacemaker`` script of a venv with python-ace, TensorPotential and
TensorFlow); this script only calls it.  Example (the Cu-II pickle of pacemaker's examples):

    python scripts/compare_pacemaker_nonlinear.py --data /tmp/pace/examples/Cu-II/Cu_df2_1k.pkl.gzip \
        --pacemaker /work/venv39/bin/pacemaker --functions 82 --maxiter 20 --out /tmp/cmp82

What it does:
- splits the pickle ONCE with acemd's ``acemd.fit.dataset.split_train_test`` (test_size, seed)
  into ``train.pkl.gzip`` and ``test.pkl.gzip`` in the run folder (written by the pacemaker venv's
  pandas, so that both codes read them), so both codes fit and test on the same structures;
- writes ONE ``input.yaml`` in pacemaker's format with the settings of pacemaker's Cu-II example
  (SBessel rc 7.5 Å, nradmax_by_orders [15,6,4,3,2,1], lmax_by_orders [0,3,3,2,2,1],
  FinnisSinclairShiftedScaled [1,1,1,0.5] with ndensity 2, kappa auto, L1/L2/w0/w1/w2 1e-8, BFGS),
  ``data: {filename: train, test_filename: test}``, the basis capped by
  ``number_of_functions_per_element`` (``--functions``), no ladder unless ``--ladder-step``, no
  ``repulsion: auto`` unless ``--repulsion-auto`` (pyace 0.2.8 and acemd set the inner cutoff by
  different rules: with it the two models differ);
- runs, one after the other, each in its own sub-folder with a byte-identical copy of the input:
  pacemaker (one TensorFlow thread: TF_NUM_INTRAOP_THREADS = TF_NUM_INTEROP_THREADS = 1,
  ``--no-predict``), ``acemd fit`` on one rank and ``mpiexec -n 2 acemd fit`` (NUMBA_NUM_THREADS=1);
- records per run: wall time, the time of the first loss evaluation (for pacemaker this includes
  TensorFlow's tracing), the time per loss+gradient evaluation per training atom, peak memory
  (the largest process from /usr/bin/time -v, and the sum over the process tree sampled every
  0.5 s), and the train/test RMSE (energy meV/atom, force components meV/Å) along the way (every
  ``--display-step`` iterations: pacemaker's TEST STATS blocks, acemd's progress lines, each
  stamped with the wall time at which its line appeared) and at the end;
- prints the runs' figures and a table of the test RMSE each run had reached by a given wall time,
  and writes everything to ``compare_pacemaker_nonlinear.json`` in the run folder.

Both codes' times are measured on whatever else the machine runs at the same moment: on a shared
machine, repeat and compare runs made close together.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SPLIT_SCRIPT = r"""
import json, sys
import pandas as pd
src, idx_path, train_path, test_path = sys.argv[1:5]
df = pd.read_pickle(src, compression="gzip")
idx = json.load(open(idx_path))
cols = [c for c in ("name", "ase_atoms", "energy_corrected", "forces", "energy_corrected_per_atom", "energy")
        if c in df.columns]
out = {}
for key, path in (("train", train_path), ("test", test_path)):
    part = pd.DataFrame(df.iloc[idx[key]][cols]).reset_index(drop=True)
    part.to_pickle(path, compression="gzip", protocol=4)
    out[key] = {"structures": len(part), "atoms": int(part["ase_atoms"].map(len).sum())}
print(json.dumps(out))
"""


def input_yaml(train: Path, test: Path, args) -> str:
    """pacemaker's Cu-II example settings, with the explicit train/test files and the options."""
    lines = [
        "# pacemaker's examples/Cu-II settings, run side by side by scripts/compare_pacemaker_nonlinear.py",
        "cutoff: 7.5",
        f"seed: {args.seed}",
        "metadata: {comment: 'Cu-II, pacemaker vs acemd fit'}",
        "potential:",
        "  deltaSplineBins: 0.001",
        "  elements: [Cu]",
        "  embeddings:",
        "    ALL: {npot: FinnisSinclairShiftedScaled, fs_parameters: [1, 1, 1, 0.5], ndensity: 2}",
        "  bonds:",
        "    ALL: {radbase: SBessel, radparameters: [5.25], rcut: 7.5, dcut: 0.01, NameOfCutoffFunction: cos}",
        "  functions:",
    ]
    if args.functions:
        lines.append(f"    number_of_functions_per_element: {int(args.functions)}")
    lines += [
        "    UNARY: {nradmax_by_orders: [15, 6, 4, 3, 2, 1], lmax_by_orders: [0, 3, 3, 2, 2, 1]}",
        "data:",
        f"  filename: {train}",
        f"  test_filename: {test}",
        "fit:",
        "  loss: {kappa: auto, L1_coeffs: 1e-8, L2_coeffs: 1e-8, w0_rad: 1e-8, w1_rad: 1e-8, w2_rad: 1e-8}",
        f"  optimizer: {args.optimizer}",
        f"  maxiter: {int(args.maxiter)}",
    ]
    if args.repulsion_auto:
        lines.append("  repulsion: auto")
    if args.ladder_step:
        lines += [f"  ladder_step: {args.ladder_step}", "  ladder_type: power_order"]
    lines += [
        "backend:",
        "  evaluator: tensorpot",
        f"  batch_size: {int(args.batch_size)}",
        f"  display_step: {int(args.display_step)}",
        "",
    ]
    return "\n".join(lines)


def split_data(args, run: Path) -> dict:
    """Train/test pickles from acemd's split (indices of split_train_test over the rows)."""
    from acemd.fit.dataset import read_pickled_dataframe, split_train_test
    df = read_pickled_dataframe(args.data)
    n = len(df)
    train_idx, test_idx = split_train_test(list(range(n)), args.test_size, seed=args.seed)
    idx_path = run / "split_indices.json"
    idx_path.write_text(json.dumps({"train": train_idx, "test": test_idx}))
    train, test = run / "train.pkl.gzip", run / "test.pkl.gzip"
    venv_python = Path(args.pacemaker).parent / "python"
    out = subprocess.run([str(venv_python), "-c", SPLIT_SCRIPT, str(Path(args.data).resolve()), str(idx_path),
                          str(train), str(test)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"splitting {args.data} with {venv_python} failed:\n{out.stderr[-3000:]}")
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    return {"train": train, "test": test, "test_indices": test_idx,
            "train_structures": counts["train"]["structures"], "train_atoms": counts["train"]["atoms"],
            "test_structures": counts["test"]["structures"], "test_atoms": counts["test"]["atoms"]}


# ---------------------------------------------------------------------------
# running a command: timestamped output lines, peak memory of the process tree
# ---------------------------------------------------------------------------


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree_rss_bytes(root: int) -> int:
    kids = _children_map()
    todo, total = [root], 0
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def _time_v(path: Path):
    """(peak RSS of the largest process in bytes, user + system CPU seconds) from /usr/bin/time -v's file."""
    if not path.is_file():
        return None, None
    tv = path.read_text()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv)
    u, s = re.search(r"User time \(seconds\): ([\d.]+)", tv), re.search(r"System time \(seconds\): ([\d.]+)", tv)
    return (int(m.group(1)) * 1024 if m else None), (float(u.group(1)) + float(s.group(1)) if (u and s) else None)


def run_timed(cmd, cwd: Path, env: dict, log_path: Path, timeout_s: float) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; every output line with its wall time since the start."""
    time_path = cwd / "time_v.txt"
    full = ["/usr/bin/time", "-v", "-o", str(time_path)] + list(cmd)
    t0 = time.perf_counter()
    # a session of its own, so that a timeout stops the whole run (time, mpiexec, the ranks), not only time
    proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_bytes(proc.pid))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    timed_out = [False]

    def killer():
        if proc.poll() is None:
            timed_out[0] = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    timer = threading.Timer(timeout_s, killer)
    timer.start()
    with open(log_path, "w") as log:
        for line in proc.stdout:
            t = time.perf_counter() - t0
            lines.append((t, line.rstrip("\n")))
            log.write(f"[{t:9.2f} s] {line}")
            log.flush()
    rc = proc.wait()
    timer.cancel()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    max_rss, cpu_s = _time_v(time_path)
    meta = {"command": " ".join(map(str, cmd)), "returncode": rc, "timed_out": timed_out[0], "wall_s": wall,
            "cpu_s": cpu_s,
            "max_rss_largest_process_MB": None if max_rss is None else max_rss / 2**20,
            "peak_rss_tree_MB": peak[0] / 2**20, "load_average_at_end": os.getloadavg()}
    (cwd / "run_meta.json").write_text(json.dumps(meta, indent=1))
    return {**meta, "lines": lines}


def reread_run(folder: Path) -> dict:
    """A finished run's figures again from its folder (run_meta.json and the stamped stdout.txt)."""
    if not (folder / "stdout.txt").is_file():
        raise SystemExit(f"--reparse: {folder / 'stdout.txt'} not found (that run was not made)")
    meta = json.loads((folder / "run_meta.json").read_text()) if (folder / "run_meta.json").is_file() else {}
    lines = []
    for raw in (folder / "stdout.txt").read_text().splitlines():
        m = re.match(r"\[\s*([\d.]+) s\] ?(.*)", raw)
        if m:
            lines.append((float(m.group(1)), m.group(2)))
    if not meta:     # a run stopped before it wrote its figures: its last line's time, the rest unknown
        meta = {"command": "?", "returncode": -1, "timed_out": None, "wall_s": lines[-1][0] if lines else 0.0,
                "max_rss_largest_process_MB": None, "peak_rss_tree_MB": 0.0}
    if meta.get("cpu_s") is None:
        rss, meta["cpu_s"] = _time_v(folder / "time_v.txt")
    return {**meta, "lines": lines}


# ---------------------------------------------------------------------------
# parsing the two codes' progress
# ---------------------------------------------------------------------------

_PM_ITER = re.compile(r"Iteration\s+#(\d+)\s+\((\d+) evals\):.*?RMSE Energy\(low\):\s*([\d.]+).*?Forces\(low\):\s*"
                      r"([\d.]+).*?Time/eval:\s*([\d.]+) mcs/at")
_PM_BLOCK_ITER = re.compile(r"Iteration:\s+#(\d+)")
_PM_RMSE = re.compile(r"RMSE:\s+([\d.naninf]+)\s+([\d.naninf]+)\s+([\d.naninf]+)\s+([\d.naninf]+)")
_PM_AVG = re.compile(r"Avg\. time:\s+([\d.]+) mcs/at")


def parse_pacemaker(lines) -> dict:
    """Train points (every iteration), test points (TEST STATS blocks), eval times (µs/atom)."""
    train, test, per_atom_us = [], [], []
    block, block_iter, first_eval_s, setup_s, cycle_block = None, None, None, None, False
    for t, line in lines:
        if setup_s is None and "Minimizer options" in line:
            setup_s = t
        m = _PM_ITER.search(line)
        if m:
            it = int(m.group(1))
            train.append({"t": t, "iter": it, "evals": int(m.group(2)), "E": float(m.group(3)),
                          "F": float(m.group(4))})
            per_atom_us.append(float(m.group(5)))
            continue
        if "STATS" in line or "Cycle last iteration" in line or "LADDER STEP" in line:
            block = "test" if "TEST" in line else "train"
            cycle_block = "STATS" not in line
            block_iter = None
            continue
        m = _PM_BLOCK_ITER.search(line)
        if m and block is not None:
            block_iter = int(m.group(1))
            continue
        m = _PM_AVG.search(line)
        if m and block == "train":
            per_atom_us.append(float(m.group(1)))
        m = _PM_RMSE.search(line)
        if m and block is not None and block_iter is not None:
            point = {"t": t, "iter": block_iter, "E": float(m.group(1)), "F": float(m.group(3))}
            if cycle_block:     # the cycle's summary repeats the last iteration's figures: keep it only if new
                last = test if block == "test" else train
                if last and (last[-1]["E"], last[-1]["F"]) == (point["E"], point["F"]):
                    block = None
                    continue
                point["iter"] = max([p["iter"] for p in train if "evals" in p] or [block_iter])
            if first_eval_s is None:
                first_eval_s = t
            (test if block == "test" else train).append(point)
            block = None
    it_lines = [p for p in train if "evals" in p]
    wall_per_eval = None
    if len(it_lines) >= 2 and it_lines[-1]["evals"] > it_lines[0]["evals"]:
        wall_per_eval = (it_lines[-1]["t"] - it_lines[0]["t"]) / (it_lines[-1]["evals"] - it_lines[0]["evals"])
    return {"train": train, "test": test, "first_eval_s": first_eval_s, "setup_s": setup_s,
            "eval_us_per_atom_median": float(np.median(per_atom_us)) if per_atom_us else None,
            "eval_us_per_atom_all": per_atom_us, "wall_s_per_eval": wall_per_eval}


_AC_PROGRESS = re.compile(r"iter (\d+)/\d+: loss (\S+) \| train RMSE E (\S+) meV/atom F (\S+) meV/Å"
                          r"(?: \| test E (\S+) F (\S+))?")
_AC_STEP = re.compile(r"step \d+/\d+: \d+ functions")
_AC_DONE = re.compile(r"after (\d+) iterations \((\d+) loss\+gradient evaluations, ([\d.]+) s\)")


def parse_acemd(lines) -> dict:
    train, test, cycles = [], [], []
    setup_s = None
    for t, line in lines:
        if setup_s is None and _AC_STEP.match(line):
            setup_s = t
        m = _AC_PROGRESS.search(line)
        if m:
            it = int(m.group(1))
            train.append({"t": t, "iter": it, "E": float(m.group(3)), "F": float(m.group(4))})
            if m.group(5) is not None:
                test.append({"t": t, "iter": it, "E": float(m.group(5)), "F": float(m.group(6))})
            continue
        m = _AC_DONE.search(line)
        if m:
            cycles.append({"iterations": int(m.group(1)), "evaluations": int(m.group(2)),
                           "seconds": float(m.group(3))})
    first = None
    if setup_s is not None and cycles:     # acemd prints no line at iteration 0: setup + one evaluation
        first = setup_s + cycles[0]["seconds"] / max(cycles[0]["evaluations"], 1)
    return {"train": train, "test": test, "setup_s": setup_s, "first_eval_s": first, "cycles": cycles}


# ---------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------


def _env(extra: dict) -> dict:
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1"})
    env.update(extra)
    return env


def run_pacemaker(args, run: Path, input_text: str, n_train_atoms: int) -> dict:
    folder = run / "pacemaker"
    if args.reparse:
        res = reread_run(folder)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "input.yaml").write_text(input_text)
        env = _env({"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                    "CUDA_VISIBLE_DEVICES": ""})
        print(f"running pacemaker in {folder} ...", flush=True)
        res = run_timed([args.pacemaker, "input.yaml", "--no-predict"], folder, env, folder / "stdout.txt",
                        args.timeout)
    parsed = parse_pacemaker(res.pop("lines"))
    res.update(parsed)
    res["code"] = "pacemaker"
    res["ranks"] = 1
    # the first loss evaluation: the 'Initial state' line (TensorFlow's tracing happens before it)
    return res


def run_acemd(args, run: Path, input_text: str, ranks: int, n_train_atoms: int, label: str = "") -> dict:
    folder = run / f"acemd_np{ranks}{label}"
    if args.reparse:
        res = reread_run(folder)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "input.yaml").write_text(input_text)
        env = _env({"NUMBA_NUM_THREADS": "1"})
        cmd = [args.acemd, "fit", "input.yaml"]
        if ranks > 1:
            cmd = [args.mpiexec, "-n", str(ranks)] + cmd
        print(f"running {' '.join(cmd)} in {folder} ...", flush=True)
        res = run_timed(cmd, folder, env, folder / "stdout.txt", args.timeout)
    parsed = parse_acemd(res.pop("lines"))
    res.update(parsed)
    res["code"] = "acemd"
    res["ranks"] = ranks
    res["label"] = label
    if parsed["cycles"]:
        c = parsed["cycles"][-1]
        # the cycle's seconds include the progress lines' train/test evaluations (every display_step)
        res["eval_us_per_atom_upper"] = 1e6 * c["seconds"] / max(c["evaluations"], 1) / n_train_atoms
        res["wall_s_per_eval"] = c["seconds"] / max(c["evaluations"], 1)
    return res


def final(points):
    return points[-1] if points else None


def reached_by(points, t):
    """The last test point at or before wall time t (None if none yet)."""
    best = None
    for p in points:
        if p["t"] <= t:
            best = p
    return best


def _source_state() -> dict:
    """The acemd commit the runs used and whether its acemd/ tree had uncommitted changes."""
    import acemd
    root = Path(acemd.__file__).resolve().parent.parent

    def git(*a):
        out = subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_in_acemd": git("status", "--short", "--", "acemd")}


def _name(r) -> str:
    return r["code"] + (f" np{r['ranks']}{r.get('label', '')}" if r["code"] == "acemd" else "")


def summarize(results, split) -> str:
    out = []
    out.append(f"data: {split['train_structures']} train structures ({split['train_atoms']} atoms), "
               f"{split['test_structures']} test structures ({split['test_atoms']} atoms), acemd's split")
    out.append("")
    head = (f"{'run':<20} {'wall s':>8} {'CPU s':>7} {'setup s':>8} {'1st eval s':>10} {'s/eval':>7} {'µs/atom/eval':>12} "
            f"{'RSS MB':>8} {'tree MB':>8} "
            f"{'iters':>5} {'train E':>8} {'train F':>8} {'test E':>8} {'test F':>8}")
    out.append(head)
    for r in results:
        name = _name(r)
        us = r.get("eval_us_per_atom_median") or r.get("eval_us_per_atom_upper")
        tr, te = final(r["train"]), final(r["test"])
        first = r.get("first_eval_s")
        rss = r.get("max_rss_largest_process_MB")
        setup, per = r.get("setup_s"), r.get("wall_s_per_eval")
        cpu = r.get("cpu_s")
        out.append(f"{name:<20} {r['wall_s']:8.1f} {cpu if cpu is not None else float('nan'):7.1f} {setup if setup is not None else float('nan'):8.1f} "
                   f"{first if first is not None else float('nan'):10.1f} {per if per is not None else float('nan'):7.2f} "
                   f"{us if us is not None else float('nan'):12.1f} {rss if rss else float('nan'):8.0f} "
                   f"{r['peak_rss_tree_MB']:8.0f} {tr['iter'] if tr else -1:5d} "
                   f"{tr['E'] if tr else float('nan'):8.2f} {tr['F'] if tr else float('nan'):8.2f} "
                   f"{te['E'] if te else float('nan'):8.2f} {te['F'] if te else float('nan'):8.2f}"
                   + ("  (FAILED rc %d)" % r["returncode"] if r["returncode"] else ""))
    out.append("(CPU s: user + system time of the whole run (all ranks), from /usr/bin/time -v; on a loaded machine "
               "wall time / CPU time says how much of a core the run got. RMSE: E meV/atom, F meV/Å per component. setup s: until the optimizer starts; 1st eval s: "
               "pacemaker's 'Initial state' line (after TensorFlow's tracing), acemd's setup + one evaluation. "
               "s/eval: wall seconds per training loss+gradient evaluation while iterating, the test and progress "
               "evaluations included (pacemaker: between its first and last iteration lines; acemd: cycle time / "
               "evaluations). µs/atom/eval: pacemaker's own median 'Time/eval' (the evaluation alone), acemd's "
               "s/eval per training atom. RSS MB: the largest process (/usr/bin/time -v); tree MB: the sum over "
               "the process tree, sampled)")
    # test RMSE reached by a given wall time
    times = sorted({p["t"] for r in results for p in r["test"]})
    if times:
        out.append("")
        out.append("test RMSE reached by wall time t (the last test line each run had printed by t; E meV/atom / "
                   "F meV/Å)")
        names = [_name(r) for r in results]
        out.append(f"{'t s':>8} " + " ".join(f"{n:>22}" for n in names))
        for t in times:
            cells = []
            for r in results:
                p = reached_by(r["test"], t)
                cells.append(f"{'-':>22}" if p is None else f"{p['E']:9.2f} / {p['F']:7.2f} @{p['iter']:<3d}")
            out.append(f"{t:8.1f} " + " ".join(cells))
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="pacemaker's Cu_df2_1k.pkl.gzip (not shipped)")
    ap.add_argument("--pacemaker", default="/work/venv39/bin/pacemaker",
                    help="the pacemaker script of a venv with python-ace, TensorPotential and TensorFlow")
    ap.add_argument("--acemd", default=shutil.which("acemd") or "acemd")
    ap.add_argument("--mpiexec", default=shutil.which("mpiexec") or "mpiexec")
    ap.add_argument("--out", type=Path, default=Path("compare_pacemaker_run"), help="run folder (created)")
    ap.add_argument("--maxiter", type=int, default=20)
    ap.add_argument("--functions", type=int, default=0,
                    help="number_of_functions_per_element (0: the whole basis, 899 functions)")
    ap.add_argument("--ladder-step", default=None, help="ladder_step (power_order); default: no ladder")
    ap.add_argument("--repulsion-auto", action="store_true", help="add fit.repulsion: auto (the two codes' "
                    "rules differ: pyace 0.2.8 vs pacemaker's current one, which acemd follows)")
    ap.add_argument("--optimizer", default="BFGS", choices=("BFGS", "L-BFGS-B"))
    ap.add_argument("--display-step", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--test-size", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--ranks", default="1,2", help="acemd runs: comma-separated rank counts (empty: none)")
    ap.add_argument("--skip-pacemaker", action="store_true")
    ap.add_argument("--long-acemd", type=int, default=0, metavar="MAXITER",
                    help="also run acemd fit on one rank with this maxiter (the input otherwise the same), to see "
                         "where acemd gets in about pacemaker's wall time")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run before it is terminated")
    ap.add_argument("--reparse", action="store_true", help="run nothing: read the runs already in --out again "
                    "(their stdout.txt and run_meta.json) and print the tables")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data}: no such file (pacemaker's examples/Cu-II/Cu_df2_1k.pkl.gzip)")
    if not args.skip_pacemaker and not Path(args.pacemaker).is_file():
        raise SystemExit(f"--pacemaker {args.pacemaker}: no such file (a venv's bin/pacemaker)")
    run = args.out.resolve()
    run.mkdir(parents=True, exist_ok=True)
    if args.reparse:
        split = json.loads((run / "split.json").read_text())
        text = (run / "input.yaml").read_text()
    else:
        split = split_data(args, run)
        text = input_yaml(split["train"], split["test"], args)
        (run / "input.yaml").write_text(text)
        (run / "split.json").write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v)
                                                   for k, v in split.items()}))
    n_train_atoms = split["train_atoms"]
    print(f"run folder {run}: input.yaml, train/test pickles ({split['train_structures']} / "
          f"{split['test_structures']} structures)", flush=True)
    results = []
    if not args.skip_pacemaker:
        results.append(run_pacemaker(args, run, text, n_train_atoms))
    for r in [int(x) for x in args.ranks.split(",") if x.strip()]:
        results.append(run_acemd(args, run, text, r, n_train_atoms))
    if args.long_acemd:
        long_text = text.replace(f"  maxiter: {int(args.maxiter)}\n", f"  maxiter: {int(args.long_acemd)}\n")
        results.append(run_acemd(args, run, long_text, 1, n_train_atoms, label=f"_maxiter{args.long_acemd}"))
    table = summarize(results, split)
    print(table)
    (run / "compare_pacemaker_nonlinear.txt").write_text(table + "\n")
    payload = {"input": text, "split": {k: (str(v) if isinstance(v, Path) else v) for k, v in split.items()},
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "runs": results, "load_average_at_end": os.getloadavg(), "acemd_source": _source_state()}
    (run / "compare_pacemaker_nonlinear.json").write_text(json.dumps(payload, indent=1, default=str))
    print(f"wrote {run / 'compare_pacemaker_nonlinear.json'}")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
