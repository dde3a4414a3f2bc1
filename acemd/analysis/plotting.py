"""matplotlib (the optional ``plot`` extra) with the non-interactive Agg backend."""
from __future__ import annotations

from pathlib import Path

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


def supported_formats() -> set:
    """Image formats (file extensions without the dot) the Agg canvas writes: png, pdf, svg, ..."""
    plt = pyplot()
    fig = plt.figure()
    try:
        return set(fig.canvas.get_supported_filetypes())
    finally:
        plt.close(fig)


def save(fig, path, dpi=120):
    """Write the figure to ``path`` (format from its extension) atomically, and close it."""
    from ..io.atomic import replaced_atomically
    path = Path(path)
    fig.tight_layout()
    with replaced_atomically(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    pyplot().close(fig)
    return path
