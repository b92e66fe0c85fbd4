"""The ``report`` stage: ``report.html``, made of the section each stage of the plan
contributes (sorted by each stage's ``report_order``), as nilearn's maskers each build their own report."""

from __future__ import annotations

from typing import Any

from ..._version import __version__
from .._base import ALL_OTHERS, RunContext, stage


@stage("report", requires=("embed",), after=(ALL_OTHERS,), priority=90)
def stage_report(ctx: RunContext) -> dict[str, Any]:
    """Write report.html: every stage's section (tables, curves, image grids)."""
    from ...evaluate.report import Report

    cfg = ctx.config
    report = Report(f"braindecode_kit — {cfg.name}",
                    f"seed {cfg.seed} · braindecode_kit {__version__} · run folder {ctx.run_dir}")
    # results first (evaluate), then how they were obtained; ties keep the plan order
    for st in sorted(ctx.plan, key=lambda st: st.report_order):
        st.report_section(ctx, report)
    report.save(ctx.run_dir / "report.html")
    return {"outputs": ["report.html"]}
