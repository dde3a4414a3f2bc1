"""The final report of ``acemd learn``: ``report.yaml`` (one record per iteration, the wall-time split,
the final potential) and, when matplotlib is installed, ``report.png`` (errors, dataset size and
structures added per iteration; max gamma of every exploration per iteration).
"""
from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["write_report", "plot_report"]


def write_report(settings, state) -> dict:
    from .structures import atomic_write_text
    total = sum(state.times_s.values())
    last = state.history[-1] if state.history else {}
    report = {
        "input": str(settings.source),
        "converged": bool(state.converged),
        "stop_reason": state.stop_reason,
        "iterations": len(state.history),
        "final_potential": last.get("potential"),
        "final_active_set": (str(Path(last["potential"]).with_suffix(".asi")) if last.get("potential") else None),
        "gamma_lower": settings.gamma_lower, "gamma_upper": settings.gamma_upper,
        "wall_time_s": {**{k: float(v) for k, v in state.times_s.items()}, "total": float(total)},
        "wall_time_share": {k: (float(v) / total if total else 0.0) for k, v in state.times_s.items()},
        "history": state.history,
    }
    path = settings.folder / "report.yaml"
    atomic_write_text(path, "# acemd learn report; units: errors meV/atom and meV/Å, times s\n"
                      + yaml.safe_dump(report, sort_keys=False))
    try:
        plot_report(report, settings.folder / "report.png")
    except ImportError:
        pass
    return report


def plot_report(report: dict, out: Path):
    """Three panels: test (and train) RMSEs, dataset size and structures added, max gamma per exploration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hist = report["history"]
    its = [h["iteration"] for h in hist]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for subset, style in (("train", "--"), ("test", "-")):
        e = [h["fit"].get(subset, {}).get("energy_rmse_meV_per_atom") for h in hist]
        f = [h["fit"].get(subset, {}).get("force_rmse_meV_per_A") for h in hist]
        if any(v is not None for v in e):
            ax[0].plot(its, e, "o" + style, label=f"E {subset} (meV/atom)")
            ax[0].plot(its, f, "s" + style, label=f"F {subset} (meV/Å)")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("iteration")
    ax[0].set_title("fit errors")
    ax[0].legend(fontsize=7)
    ax[1].plot(its, [h.get("dataset_structures", 0) for h in hist], "o-", label="dataset structures")
    ax[1].bar(its, [h.get("labelled", 0) for h in hist], alpha=0.4, label="labelled this iteration")
    ax[1].bar(its, [h.get("failed", 0) for h in hist], alpha=0.6, label="failed labels")
    ax[1].set_xlabel("iteration")
    ax[1].legend(fontsize=7)
    names = sorted({e["name"] for h in hist for e in h["explorations"]})
    for name in names:
        g = [next((e["max_gamma"] for e in h["explorations"] if e["name"] == name), None) for h in hist]
        ax[2].plot(its, g, "o-", label=name)
    ax[2].axhline(report["gamma_lower"], color="k", ls=":", label="gamma_lower")
    ax[2].axhline(report["gamma_upper"], color="r", ls=":", label="gamma_upper")
    ax[2].set_yscale("log")
    ax[2].set_xlabel("iteration")
    ax[2].set_title("max gamma per exploration")
    ax[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
