"""matplotlib (the optional ``plot`` extra) with the non-interactive Agg backend."""
from __future__ import annotations

from .errors import AnalysisInputError


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise AnalysisInputError("matplotlib is not installed: pip install 'acemd[plot]' "
                                 "(or pass --no-plot for the table only)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
