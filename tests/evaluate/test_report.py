"""The HTML report: self-contained, escaped, with tables, figures and image grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from braindecode_kit.evaluate.report import Report


def test_report_sections_and_save(tmp_path):
    import matplotlib.pyplot as plt

    r = Report("Title <x>", "sub")
    r.add_heading("Section").add_text("a < b", note=True)
    r.add_table([{"model": "ours", "top1": 0.5, "ci": (0.4, 0.6)}, {"model": "ridge", "top1": 0.1}],
                highlight="ours")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    r.add_figure(fig, "a line")
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    r.add_image_grid([[{"image": img, "label": "seen", "status": "ref"},
                       {"image": img, "label": "#1", "status": "ok"}]], row_labels=["r"])
    out = tmp_path / "r.html"
    r.save(out)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Title &lt;x&gt;" in text and "a &lt; b" in text
    assert text.count("data:image/png;base64,") == 3
    assert "0.500" in text and "[0.400, 0.600]" in text
    assert 'class="hl"' in text
    assert "cell ok" in text and "cell ref" in text
    assert r._repr_html_() in text


def test_empty_table_and_grid_refused():
    r = Report("t")
    with pytest.raises(ValueError, match="at least one row"):
        r.add_table([])
    with pytest.raises(ValueError, match="at least one row"):
        r.add_image_grid([])
