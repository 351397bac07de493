"""Server-side SVG charts: a line per model version over days, and labelled share bars."""

from __future__ import annotations

from datetime import date
from html import escape

from markupsafe import Markup

from service.console.insight import Rate

PALETTE = ("#2456c7", "#d9822b", "#1e7b34", "#b3261e", "#7a3fb0", "#0f7c8c", "#6b6b6b")
WIDTH, HEIGHT, PAD = 520, 200, 34


def line_chart(days: list[date], series: dict[str, list[int]]) -> Markup:
    """Answers per day, one coloured line (and legend entry) per model version."""
    top = max([1, *(max(counts) for counts in series.values() if counts)])
    step = (WIDTH - 2 * PAD) / max(1, len(days) - 1)
    y = lambda v: HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD)  # noqa: E731
    parts = [_axes(top)]
    for i, (name, counts) in enumerate(sorted(series.items())):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{PAD + j * step:.1f},{y(c):.1f}" for j, c in enumerate(counts))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts.append(
            f'<text x="{WIDTH - PAD - 110}" y="{14 + 14 * i}" fill="{colour}">■ {escape(name)} '
            f"({sum(counts)})</text>"
        )
    if days:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}">{days[0]:%b %d}</text>')
        parts.append(f'<text x="{WIDTH - PAD - 40}" y="{HEIGHT - 8}">{days[-1]:%b %d}</text>')
    return _svg(HEIGHT, "".join(parts), "answers per day by model version")


def _axes(top: int) -> str:
    bottom = HEIGHT - PAD
    return (
        f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - PAD}" y2="{bottom}" stroke="#d9dee6"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{bottom}" stroke="#d9dee6"/>'
        f'<text x="4" y="{PAD + 4}">{top}</text><text x="4" y="{bottom}">0</text>'
    )


def bar_chart(rates: list[Rate], title: str) -> Markup:
    """One horizontal bar per group: the share, in percent, and how many it is of."""
    if not rates:
        return Markup('<p class="hint">No data yet.</p>')
    row, label_w = 24, 170
    height = row * len(rates) + 8
    span = WIDTH - label_w - 90
    parts = []
    for i, rate in enumerate(rates):
        top = 4 + i * row
        value = rate.value or 0.0
        parts.append(f'<text x="0" y="{top + 15}">{escape(rate.label[:26])}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{top + 3}" width="{span}" height="16" fill="#eef0f3"/>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{top + 3}" width="{value * span:.1f}" height="16" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        parts.append(
            f'<text x="{label_w + span + 6}" y="{top + 15}">{value:.0%} of {rate.n}</text>'
        )
    return _svg(height, "".join(parts), title)


def _svg(height: int, body: str, title: str) -> Markup:
    return Markup(
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )
