"""A self-contained HTML report: headings, text, metric tables, plots and image grids.

Everything is inlined (PNG as base64), so ``report.html`` can be mailed or opened from
a cluster's scratch folder with no other file beside it. A :class:`Report` also shows
itself in a notebook.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from .._utils import PathLike, write_text_atomic

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1d1d1f;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd;
padding-bottom:.2em}h3{font-size:1.05em;margin-top:1.2em}
p.sub{color:#666;margin-top:0}
table.metrics{border-collapse:collapse;margin:.6em 0;font-size:.92em}
table.metrics th,table.metrics td{border:1px solid #ddd;padding:.3em .7em;text-align:right}
table.metrics th{background:#f5f5f7}table.metrics td:first-child,table.metrics th:first-child{text-align:left}
table.metrics tr.hl td{background:#eef6ff;font-weight:600}
.grid{display:grid;gap:6px;margin:.6em 0}
.cell{text-align:center;font-size:.75em;color:#333;max-width:170px}
.cell img{image-rendering:pixelated;border:3px solid transparent;display:block;margin:0 auto}
.cell.ok img{border-color:#2e9d4f}.cell.bad img{border-color:#d23b3b}.cell.ref img{border-color:#444}
.rowlabel{font-size:.8em;color:#555;align-self:center;text-align:right;padding-right:.4em}
figure{margin:.8em 0}figcaption{font-size:.85em;color:#555}
.note{background:#fffbe6;border-left:4px solid #e6c200;padding:.5em .8em;font-size:.9em}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
"""


def image_to_data_uri(image: Any, scale: int = 1) -> str:
    """A PIL image (or HxWx3 uint8 array) as a PNG data URI, optionally upscaled."""
    import numpy as np
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return html.escape(str(value))


class Report:
    """An HTML report built section by section.

    Parameters
    ----------
    title : str
        The page title.
    subtitle : str
        A line under the title (run name, date, seed).

    Examples
    --------
    >>> r = Report("Demo")
    >>> r.add_heading("Retrieval")
    >>> r.add_table([{"model": "ridge", "top1": 0.1}])
    >>> html_text = r.to_html()
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []

    def add_heading(self, text: str, level: int = 2) -> Report:
        """Add a section heading."""
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def add_text(self, text: str, note: bool = False) -> Report:
        """Add a paragraph (escaped; ``note=True`` renders it as a highlighted note)."""
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def add_html(self, fragment: str) -> Report:
        """Add a raw HTML fragment (the caller escapes it)."""
        self._parts.append(fragment)
        return self

    def add_table(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str] | None = None,
        highlight: str | None = None,
        caption: str | None = None,
    ) -> Report:
        """Add a table from a list of dicts; ``highlight`` names the first column's value
        whose row is emphasised."""
        if not rows:
            raise ValueError("add_table needs at least one row, got none")
        columns = list(columns or rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = []
        for row in rows:
            cls = ' class="hl"' if highlight is not None and row.get(columns[0]) == highlight else ""
            cells = "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns)
            body.append(f"<tr{cls}>{cells}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(
            f'<table class="metrics">{cap}<tr>{head}</tr>{"".join(body)}</table>'
        )
        return self

    def add_figure(self, fig: Any, caption: str = "") -> Report:
        """Add a matplotlib figure (inlined PNG)."""
        uri = figure_to_data_uri(fig)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img src="{uri}" alt="{html.escape(caption)}">{cap}</figure>')
        return self

    def add_image_grid(
        self,
        rows: Sequence[Sequence[dict[str, Any]]],
        row_labels: Sequence[str] | None = None,
        scale: int = 2,
        caption: str = "",
    ) -> Report:
        """Add a grid of images.

        Parameters
        ----------
        rows : list of list of dict
            Each cell: ``{"image": PIL image, "label": str, "status": "ok"|"bad"|"ref"|None}``;
            status draws a green, red or dark frame.
        row_labels : list of str, optional
            A label before each row.
        scale : int
            Integer upscaling of small images (nearest neighbour, pixels stay crisp).
        caption : str
            A caption under the grid.
        """
        if not rows:
            raise ValueError("add_image_grid needs at least one row, got none")
        n_cols = max(len(r) for r in rows)
        lead = "auto " if row_labels else ""
        parts = [f'<div class="grid" style="grid-template-columns:{lead}repeat({n_cols}, max-content)">']
        for i, row in enumerate(rows):
            if row_labels:
                parts.append(f'<div class="rowlabel">{html.escape(row_labels[i])}</div>')
            for cell in row:
                status = cell.get("status") or ""
                uri = image_to_data_uri(cell["image"], scale=scale)
                label = html.escape(str(cell.get("label", "")))
                parts.append(
                    f'<div class="cell {status}"><img src="{uri}" alt="{label}" '
                    f'title="{label}"><div>{label}</div></div>'
                )
            parts.extend("<div></div>" for _ in range(n_cols - len(row)))
        parts.append("</div>")
        if caption:
            parts.append(f"<p class='sub'>{html.escape(caption)}</p>")
        self._parts.append("".join(parts))
        return self

    def to_html(self) -> str:
        """The whole page as a string."""
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}</body></html>\n"
        )

    def save(self, path: PathLike) -> None:
        """Write the page atomically."""
        write_text_atomic(path, self.to_html())

    def _repr_html_(self) -> str:
        return "".join(self._parts)

    def __repr__(self) -> str:
        return f"<Report {self.title!r}: {len(self._parts)} sections>"
