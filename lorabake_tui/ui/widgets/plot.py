"""A terminal line chart drawn with braille dots (2x4 dots per cell) through the Line API.

Any number of points: each series is cut into as many index ranges as the chart has dot
columns and each range keeps its min, max and last value, so a 50k-step loss curve costs
one pass over its array and keeps its spikes. Values that are NaN or infinite are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ..palette import theme_color

# braille dot bits by (column, row) inside a cell
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
LABEL_WIDTH = 8


@dataclass(frozen=True, slots=True)
class Series:
    values: Sequence[float]
    style: str  # a Rich style or colour; "$role" takes the theme's (ui/palette.py: "$muted")
    label: str = ""


Bucket = tuple[float, float, float, float]  # (first, min, max, last) of the finite values


def downsample(values: Sequence[float], buckets: int) -> list[Bucket | None]:
    """`values` in `buckets` equal index ranges (fewer when there are fewer values): for each,
    (first, min, max, last) of its finite values, or None when it has none."""
    n = len(values)
    if n == 0 or buckets <= 0:
        return []
    isfinite = math.isfinite
    if n <= buckets:
        return [(v, v, v, v) if isfinite(v) else None for v in values]
    out: list[Bucket | None] = []
    for b in range(buckets):
        seg = values[b * n // buckets:(b + 1) * n // buckets]
        # min/max run in C and pass over a NaN unless it comes first (then they return it),
        # and return an inf if there is one: finite ends and extremes mean the fast answer is
        # right, which is the usual case; the per-value filter runs only where it is not
        first, mn, mx, last = seg[0], min(seg), max(seg), seg[-1]
        if isfinite(first) and isfinite(mn) and isfinite(mx) and isfinite(last):
            out.append((first, mn, mx, last))
            continue
        seg = [v for v in seg if isfinite(v)]
        out.append((seg[0], min(seg), max(seg), seg[-1]) if seg else None)
    return out


def _columns(count: int, width: int) -> list[int]:
    """The dot column of each of `count` buckets: adjacent when bucketed, spread otherwise."""
    if count <= 1:
        return [0] * count
    if count >= width:
        return list(range(count))
    return [i * (width - 1) // (count - 1) for i in range(count)]


def format_value(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.1e}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.4g}"


class LinePlot(Widget):
    """`set_data(x, [Series, ...])`; later series are drawn over earlier ones."""

    DEFAULT_CSS = """
    LinePlot { height: 12; background: $surface; border: round $panel;
               border-title-color: $text-muted; border-subtitle-color: $text-muted; }
    """

    def __init__(self, *, empty: str = "no data yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.x: Sequence[float] = ()
        self.series: list[Series] = []
        self.empty = empty
        self._lines: list[Strip] | None = None
        self._built_for: tuple[int, int] = (0, 0)

    def set_data(self, x: Sequence[float], series: list[Series]) -> None:
        self.x = x
        self.series = series
        self._lines = None
        legend = " ".join(f"[{self._color(s.style)}]▬[/] {s.label}" for s in series if s.label)
        if legend != self.border_subtitle:
            self.border_subtitle = legend
        self.refresh()

    def clear(self) -> None:
        self.set_data((), [])

    # ---- drawing ----------------------------------------------------------------------
    def _color(self, style: str) -> str:
        if style.startswith("$"):
            # a palette role or theme variable; "auto" colours have no fixed value
            return theme_color(self.app, style[1:]) or "default"
        return style

    def render_line(self, y: int) -> Strip:
        w, h = self.size.width, self.size.height
        if self._lines is None or self._built_for != (w, h):
            self._lines = self._build(w, h)
            self._built_for = (w, h)
        return self._lines[y] if y < len(self._lines) else Strip.blank(w, self.rich_style)

    def on_resize(self) -> None:
        self._lines = None

    def _build(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        dim = base + Style(dim=True)
        rows = height - 1  # the last row holds the x labels
        cols = width - LABEL_WIDTH
        if rows < 2 or cols < 4:
            return [Strip.blank(width, base) for _ in range(height)]
        px_w, px_h = cols * 2, rows * 4
        sampled = [downsample(s.values, px_w) for s in self.series]
        finite = [b for ds in sampled for b in ds if b is not None]
        if not finite:
            blank = [Strip.blank(width, base) for _ in range(height)]
            msg = f" {self.empty}"[:width]
            blank[rows // 2] = Strip([Segment(msg, dim)]).crop_extend(0, width, base)
            return blank
        lo = min(b[1] for b in finite)
        hi = max(b[2] for b in finite)
        if hi - lo < 1e-12 * max(abs(hi), 1.0):
            pad = abs(hi) * 0.05 or 1.0  # a flat line sits in the middle
            lo, hi = lo - pad, hi + pad
        scale = (px_h - 1) / (hi - lo)

        def py(v: float) -> int:
            return min(px_h - 1, max(0, round((hi - v) * scale)))

        bits = [[0] * cols for _ in range(rows)]
        owner = [[-1] * cols for _ in range(rows)]

        def span(x: int, y0: int, y1: int, k: int) -> None:
            if y0 > y1:
                y0, y1 = y1, y0
            cx, bit_col = divmod(x, 2)
            dots = _DOTS[bit_col]
            for yy in range(y0, y1 + 1):
                cy, r = divmod(yy, 4)
                bits[cy][cx] |= dots[r]
                owner[cy][cx] = k

        for k, ds in enumerate(sampled):
            xs = _columns(len(ds), px_w)
            prev: tuple[int, int] | None = None  # (dot column, y of the last value)
            for x, b in zip(xs, ds, strict=True):
                if b is None:
                    prev = None  # a gap in the data stays a gap
                    continue
                first, mn, mx, last = b
                yf = py(first)
                if prev is not None:
                    px0, y0 = prev
                    # a straight line from the previous point, one dot column at a time
                    ylast = y0
                    for xx in range(px0 + 1, x):
                        yi = round(y0 + (yf - y0) * (xx - px0) / (x - px0))
                        span(xx, ylast, yi, k)
                        ylast = yi
                    span(x, ylast, yf, k)
                span(x, py(mn), py(mx), k)
                prev = (x, py(last))

        styles = [Style.parse(self._color(s.style)) for s in self.series]
        labels = {0: format_value(hi), rows - 1: format_value(lo)}
        if rows >= 5:
            labels[rows // 2] = format_value(hi - (hi - lo) * (rows // 2 * 4 + 1.5) / (px_h - 1))
        out = []
        for r in range(rows):
            label = labels.get(r, "")
            segs = [Segment(f"{label[:LABEL_WIDTH - 1]:>{LABEL_WIDTH - 1}}┤" if label
                            else " " * (LABEL_WIDTH - 1) + "│", dim)]
            row_bits, row_owner = bits[r], owner[r]
            run, run_k = [], -2
            for c in range(cols):
                k = row_owner[c] if row_bits[c] else -1
                if k != run_k and run:
                    segs.append(Segment("".join(run), base + styles[run_k] if run_k >= 0
                                        else base))
                    run = []
                run_k = k
                run.append(chr(0x2800 + row_bits[c]) if row_bits[c] else " ")
            if run:
                segs.append(Segment("".join(run), base + styles[run_k] if run_k >= 0 else base))
            out.append(Strip(segs).crop_extend(0, width, base))
        out.append(Strip([Segment(self._x_axis(cols), dim)]).crop_extend(0, width, base))
        return out

    def _x_axis(self, cols: int) -> str:
        x = self.x
        if not len(x):
            return ""
        left, right = f"{x[0]:g}", f"{x[-1]:g}"
        gap = cols - len(left) - len(right)
        line = " " * LABEL_WIDTH + left + " " * max(gap, 1) + right
        if gap > len(right) + 8:
            mid = f"{x[len(x) // 2]:g}"
            at = LABEL_WIDTH + cols // 2 - len(mid) // 2
            line = line[:at] + mid + line[at + len(mid):]
        return line
