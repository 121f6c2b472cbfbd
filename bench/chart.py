"""The chart beside docs/benchmarks.md: one panel per cell, one bar per server, labelled with the
figure and its ratios to the best C server, the best Python server and http.server.

matplotlib (the optional `bench` extra) draws a PNG; without it the same panels are written as a
hand-made SVG next to the requested path, so a run never fails for want of a plotting library.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

PEER_COLOURS = ["#8c8c8c", "#7f7f7f", "#6f6f6f", "#a0a0a0", "#969696", "#787878", "#aaaaaa"]
COLOURS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#9467bd"]  # the cgibox fronts


def panels(data: dict) -> list[dict]:
    """[{title, unit, bars: [(label, value or None, ratio text, colour)]}] from run.py's JSON."""
    servers = data["servers"]
    fronts = [key for key, info in servers.items() if info.get("kind") == "cgibox"]
    others = [key for key in servers if key not in fronts]
    colour = {key: COLOURS[i % len(COLOURS)] for i, key in enumerate(fronts)}
    colour.update({key: PEER_COLOURS[i % len(PEER_COLOURS)] for i, key in enumerate(others)})
    out = []
    for cell in data["cells"]:
        results = {r["server"]: r for r in data["results"] if r["cell"] == cell["key"]}
        base = results.get("http.server")
        base_value = base["value"] if base and base["status"] == "ok" and base["probe_ok"] else 0
        bars = []
        for key, info in servers.items():
            result = results.get(key)
            if result is None:
                continue
            if result["status"] != "ok":
                bars.append((info["label"], None, result["status"], colour[key]))
                continue
            value = result["value"]
            if not result["probe_ok"]:
                ratio = f"wrong answer: {result['probe']}"
            elif result.get("ratio_text"):
                ratio = result["ratio_text"]  # run.py's: × best C · × best Python · × http.server
            elif key == "http.server":
                ratio = "baseline"
            else:
                ratio = f"{value / base_value:.2f}×" if base_value else "n/a"
            bars.append((info["label"], value, ratio, colour[key]))
        title = f"{cell['title']} ({cell['connections']} connections), {cell['unit']}"
        out.append({"title": title, "unit": cell["unit"], "bars": bars})
    return out


def label(value: float | None, ratio: str) -> str:
    if value is None:
        return ratio
    number = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{number}  ({ratio})"


def heading(data: dict) -> str:
    machine = data["machine"]
    return (f"cgibox vs the servers users would pick instead: {machine['cpu']}, "
            f"{machine['cores']} cores, "
            f"{machine['python']}, {machine['date']}")


def draw(data: dict, path: Path) -> Path | None:
    """Write the chart; returns the file written (PNG with matplotlib, else SVG) or None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        try:
            return draw_png(data, path)
        except ImportError:
            path = path.with_suffix(".svg")
    return draw_svg(data, path)


def draw_png(data: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = panels(data)
    figure, axes = plt.subplots(len(cells), 1, figsize=(11, 2.6 * len(cells) + 0.8), squeeze=False)
    for ax, panel in zip(axes[:, 0], cells, strict=True):
        labels = [bar[0] for bar in panel["bars"]][::-1]
        values = [bar[1] or 0 for bar in panel["bars"]][::-1]
        texts = [label(bar[1], bar[2]) for bar in panel["bars"]][::-1]
        colours = [bar[3] for bar in panel["bars"]][::-1]
        ax.barh(labels, values, color=colours)
        top = max(values) if any(values) else 1
        for y, text in enumerate(texts):
            ax.text(values[y] + top * 0.01, y, text, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.9)
        ax.set_title(panel["title"], fontsize=10, loc="left")
        ax.tick_params(axis="both", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    figure.suptitle(heading(data), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw_svg(data: dict, path: Path) -> Path:
    cells = panels(data)
    width, label_w, bar_w, row_h, gap = 860, 190, 470, 20, 46
    height = 40 + sum(gap + row_h * len(p["bars"]) for p in cells)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="13">{escape(heading(data))}</text>',
    ]
    y = 40
    for panel in cells:
        parts.append(f'<text x="10" y="{y + 18}" font-weight="bold">{escape(panel["title"])}</text>')
        y += gap - row_h + 4
        top = max((bar[1] or 0) for bar in panel["bars"]) or 1
        for name, value, ratio, colour in panel["bars"]:
            length = (value or 0) / top * bar_w
            parts.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(name)}</text>')
            parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 6}" '
                         f'fill="{colour}"/>')
            parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y + 14}">'
                         f'{escape(label(value, ratio))}</text>')
            y += row_h
        y += row_h - 4
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path
