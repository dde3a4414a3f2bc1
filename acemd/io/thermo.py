"""The thermo log: an aligned, machine-readable table on stdout and in a log file.

Format (rank 0 only writes)::

    # info: acemd 0.1.0 thermo log            <- preamble lines, "# info: ..."
    #     Step    Time[ps]     Temp[K]  ...    <- header: labels NAME[UNIT]
            0    0.000000    300.0000  ...    <- rows: whitespace separated numbers
    # progress: 10.0% | step 100/1000 | elapsed 00:00:05 | 20.0 steps/s | 1.728 ns/day | ETA 00:00:45
    # summary: 1000 steps in 50.2 s | 19.9 steps/s | 1.721 ns/day

Every non-table line starts with ``#``, so ``numpy.loadtxt(path)`` (comments="#")
loads the table.  Non-header comment lines have a first word ending in ``:``;
the header is the only comment line made of column labels.  A restarted run
appending to the same log writes a new header; :func:`read_thermo` then keeps
the newest row of each step (rows of the interrupted run past the restart
step are dropped).

``row`` and ``close`` are not collective: pass globally reduced values; ranks
other than 0 do nothing.
"""
from __future__ import annotations

import re
import sys
import time as _time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

import numpy as np

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*(\[[^\[\]\s]*\])?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def format_hms(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "--:--:--"
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def _formatter(fmt: str):
    """Accept '{:.4f}', '.4f' or '%.4f'; return (callable, is_integer)."""
    fmt = fmt or ".6g"
    if "{" in fmt:
        spec = fmt
    elif fmt.startswith("%"):
        spec = "{:" + fmt[1:] + "}"
    else:
        spec = "{:" + fmt + "}"
    try:
        spec.format(1.0 if not spec.rstrip("}").endswith("d") else 1)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"bad column format {fmt!r}: {exc}") from None
    is_int = spec.rstrip("}").endswith("d")
    return spec.format, is_int


class ThermoLog:
    """Thermo table writer with progress (rank 0 writes; other ranks are silent).

    Parameters
    ----------
    comm : mpi4py communicator (only its rank is used).
    columns : ``[(name, unit, format), ...]`` e.g. ``("Temp", "K", "{:.4f}")``;
        the header shows ``Temp[K]`` (``Step`` for an empty unit).  A column
        named ``Step`` is filled from ``row(step, ...)`` when not in values.
    log_path : log file (None: stream only); truncated unless ``append``.
    stream : text stream for the same lines (None: file only).
    total_steps : final step of the run (for percent done and ETA).
    every : steps between rows (informational, shown in the preamble).
    start_step : step the run starts from (restarts); shown in the preamble.
        Rates and ETA are measured from the first row of this session.
    timestep_ps : for ns/day; default: inferred from a column in ps (Time).
    preamble : extra lines printed (as ``# info: ...``) before the header.
    append : append to an existing log (restart) instead of truncating it.
    progress_every_s : minimum wall seconds between progress lines.
    clock : wall clock (seconds), injectable for tests.
    """

    def __init__(self, comm, columns: Sequence[tuple[str, str, str]], log_path=None,
                 stream: TextIO | None = sys.stdout, total_steps: int | None = None,
                 every: int | None = None, *, start_step: int | None = None,
                 timestep_ps: float | None = None, preamble: Iterable[str] = (),
                 append: bool = False, progress_every_s: float = 10.0, clock=_time.monotonic):
        self.rank = comm.Get_rank() if comm is not None else 0
        self.columns = []
        seen = set()
        for col in columns:
            if len(col) != 3:
                raise ValueError(f"thermo column {col!r} must be (name, unit, format)")
            name, unit, fmt = col
            if not _NAME.match(str(name)):
                raise ValueError(f"thermo column name {name!r} must be a word (letters, digits, _ . -)")
            if unit and (" " in unit or "[" in unit or "]" in unit):
                raise ValueError(f"thermo column unit {unit!r} must not contain spaces or brackets")
            if name in seen:
                raise ValueError(f"thermo column {name!r} appears twice")
            seen.add(name)
            func, is_int = _formatter(fmt)
            label = f"{name}[{unit}]" if unit else str(name)
            # room for typical magnitudes (|x| < 1e5 with sign) so the columns stay aligned
            sample = func(-123456789) if is_int else func(-12345.678)
            width = max(len(label), len(sample), 10 if is_int else 12)
            self.columns.append((str(name), unit or "", func, is_int, label, width))
        if not self.columns:
            raise ValueError("thermo log needs at least one column")
        self.total_steps = None if total_steps is None else int(total_steps)
        self.every = every
        self.start_step = start_step
        self.timestep_ps = timestep_ps
        self.progress_every_s = float(progress_every_s)
        self.clock = clock
        self.stream = stream
        self._file = None
        self._closed = False
        self._t_start = clock()
        self._first: tuple[float, int] | None = None     # (clock, step) of the first row
        self._last: tuple[float, int] | None = None
        self._last_progress = self._t_start
        self._first_time_ps = None
        self._last_time_ps = None
        self._time_col = next((c[0] for c in self.columns if c[1] == "ps"), None)
        if self.rank != 0:
            return
        self._held_row = None         # the log's row at a restart step, until the new session's row
        if log_path is not None:
            p = Path(log_path)
            p.parent.mkdir(parents=True, exist_ok=True)
            if append and start_step is not None and p.is_file():
                self._held_row = _drop_rows_from(p, int(start_step))
            self._file = open(p, "a" if append else "w", buffering=1, encoding="utf-8")
        lines = [f"info: {line}" for line in preamble]
        if every:
            lines.append(f"info: a row every {every} steps")
        if start_step:
            lines.append(f"info: starting at step {start_step}")
        self._emit([f"# {line}" for line in lines] + [self.header()])

    # ------------------------------------------------------------------ formatting
    def header(self) -> str:
        """The header line (``#`` then right-aligned labels)."""
        return "#" + " ".join(" " + lab.rjust(w) for _, _, _, _, lab, w in self.columns)

    def format_row(self, step: int, values: Mapping[str, Any]) -> str:
        cells = []
        for name, _, func, is_int, _, w in self.columns:
            if name in values:
                v = values[name]
            elif name == "Step":
                v = step
            else:
                raise KeyError(f"thermo row at step {step}: no value for column '{name}' "
                               f"(given: {', '.join(values)})")
            try:
                text = func(int(v)) if is_int else func(float(v))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"thermo column '{name}': cannot format {v!r}: {exc}") from None
            cells.append(" " + text.rjust(w))
        return " " + " ".join(cells)

    def _emit(self, lines: Sequence[str]):
        if self.rank != 0 or not lines:
            return
        text = "\n".join(lines) + "\n"
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()
        if self._file is not None:
            self._file.write(text)
            self._file.flush()

    # ------------------------------------------------------------------ rows
    def row(self, step: int, values: Mapping[str, Any]):
        """Print one table row (and a progress line when due).  Not collective."""
        if self._closed:
            raise RuntimeError("ThermoLog.row after close()")
        line = self.format_row(int(step), values)   # validate on every rank
        if self.rank != 0:
            return
        now = self.clock()
        step = int(step)
        t_ps = None
        if self._time_col is not None and self._time_col in values:
            t_ps = float(values[self._time_col])
        if self._first is None:
            self._first = (now, step)
            self._first_time_ps = t_ps
        self._last = (now, step)
        if t_ps is not None and step != self._first[1]:
            self._last_time_ps = t_ps
        out = [line]
        self._release_held_row(step)
        done = self.total_steps is not None and step >= self.total_steps
        if (now - self._last_progress >= self.progress_every_s or done) and step > self._first[1]:
            out.append(self.progress_line(now, step))
            self._last_progress = now
        self._emit(out)

    def _release_held_row(self, step):
        """Write the restart step's old row to the file unless this session writes that step itself."""
        if self._held_row is not None and self._file is not None and step != self.start_step:
            self._file.write(self._held_row + "\n")
        self._held_row = None

    def _dt_ps(self) -> float | None:
        if self.timestep_ps is not None:
            return self.timestep_ps
        if (self._first_time_ps is not None and self._last_time_ps is not None
                and self._last is not None and self._last[1] != self._first[1]):
            return (self._last_time_ps - self._first_time_ps) / (self._last[1] - self._first[1])
        return None

    def _rate(self, now: float, step: int) -> float:
        t0, s0 = self._first
        if step <= s0 or now <= t0:
            return float("nan")
        return (step - s0) / (now - t0)

    def progress_line(self, now: float, step: int) -> str:
        rate = self._rate(now, step)
        parts = []
        if self.total_steps:
            parts.append(f"{100.0 * step / self.total_steps:.1f}%")
            parts.append(f"step {step}/{self.total_steps}")
        else:
            parts.append(f"step {step}")
        parts.append(f"elapsed {format_hms(now - self._t_start)}")
        parts.append(f"{rate:.3g} steps/s")
        dt = self._dt_ps()
        if dt is not None and np.isfinite(rate):
            parts.append(f"{rate * dt * 86400.0 / 1000.0:.4g} ns/day")
        if self.total_steps is not None and np.isfinite(rate) and rate > 0:
            parts.append(f"ETA {format_hms((self.total_steps - step) / rate)}")
        return "# progress: " + " | ".join(parts)

    # ------------------------------------------------------------------ end
    def close(self, extra: Iterable[str] = ()):
        """Print the summary (total wall time, steps/s, ns/day) and close the file."""
        if self._closed:
            return
        self._closed = True
        if self.rank != 0:
            return
        now = self.clock()
        lines = []
        wall = now - self._t_start
        if self._first is not None:
            first = self._first[1] if self.start_step is None else min(self.start_step, self._first[1])
            steps = self._last[1] - first
            rate = self._rate(self._last[0], self._last[1])
            summary = f"# summary: {steps} steps in {wall:.2f} s wall"
            if np.isfinite(rate):
                summary += f" | {rate:.4g} steps/s"
                dt = self._dt_ps()
                if dt is not None:
                    summary += f" | {rate * dt * 86400.0 / 1000.0:.4g} ns/day"
            lines.append(summary)
        else:
            lines.append(f"# summary: no rows in {wall:.2f} s wall")
        lines += [f"# info: {line}" for line in extra]
        self._release_held_row(None)
        self._emit(lines)
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------- reading
def _parse_header(line: str) -> list[tuple[str, str]] | None:
    tokens = line.lstrip("#").split()
    if not tokens or tokens[0].endswith(":"):
        return None
    if not all(_LABEL.match(t) for t in tokens):
        return None
    out = []
    for t in tokens:
        if "[" in t:
            name, unit = t[:-1].split("[", 1)
        else:
            name, unit = t, ""
        out.append((name, unit))
    return out


def _drop_rows_from(path: Path, step: int) -> str | None:
    """Before a restart from ``step``: remove the rows of this and later steps (written after that
    checkpoint by the interrupted run) and older copies of repeated steps, so the log has each step
    once and ``numpy.loadtxt`` reads it as one table.  Comment lines stay.  Returns the removed row
    of ``step`` itself (put back if the restarted session does not write its own)."""
    import os
    lines = path.read_text(encoding="utf-8").splitlines()
    last_index = {}
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                last_index[int(line.split()[0])] = i
            except ValueError:
                continue
    keep, held = [], None
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                s = int(line.split()[0])
            except ValueError:
                keep.append(line)
                continue
            if s == step and last_index[s] == i:
                held = line
            if s >= step or last_index[s] != i:
                continue
        keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(keep) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return held


def read_thermo(path, with_units: bool = False):
    """Read a thermo log into ``{column name: array}`` (``Step`` as int64).

    Restart segments (a repeated header) are merged: rows of an earlier
    segment with ``Step`` >= the first step of a later segment are dropped.
    With ``with_units=True`` returns ``(data, {name: unit})``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: thermo log not found") from None
    columns: list[tuple[str, str]] | None = None
    segments: list[list[list[float]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            hdr = _parse_header(line)
            if hdr is not None:
                if columns is not None and hdr != columns:
                    raise ValueError(f"{path}:{lineno}: header {hdr} differs from the earlier "
                                     f"header {columns}")
                columns = hdr
                segments.append([])
            continue
        if columns is None:
            raise ValueError(f"{path}:{lineno}: data before any header line")
        tokens = line.split()
        if len(tokens) != len(columns):
            raise ValueError(f"{path}:{lineno}: {len(tokens)} values, header has {len(columns)}")
        try:
            segments[-1].append([float(t) for t in tokens])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: not a number in {line!r}") from None
    if columns is None:
        raise ValueError(f"{path}: no thermo header found")
    names = [c[0] for c in columns]
    step_idx = names.index("Step") if "Step" in names else None
    rows: list[list[float]] = []
    for seg in segments:
        if seg and step_idx is not None and rows:
            first = seg[0][step_idx]
            rows = [r for r in rows if r[step_idx] < first]
        rows.extend(seg)
    table = np.array(rows, dtype=float).reshape(-1, len(names))
    data = {}
    for i, name in enumerate(names):
        col = table[:, i]
        if name == "Step":
            col = col.astype(np.int64)
        data[name] = col
    if with_units:
        return data, {n: u for n, u in columns}
    return data
