"""What the runner and the stages share: :class:`Stage`, :class:`RunContext` and the
stage registry (:func:`stage`).

This module is the leaf of the pipeline package: the stages import it, the runner
imports it and the stages, and it imports neither. A stage is registered by decorating
its function; when it runs is decided by what it ``requires`` (and runs ``after``), never
by the order in which modules are imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..evaluate.report import Report
    from .config import PipelineConfig

__all__ = ["ALL_OTHERS", "STAGES", "RunContext", "Stage", "distributed_state", "stage"]

#: in ``after=``: run after every other stage of the plan (the report)
ALL_OTHERS = "*"
#: in a ``requires``/``after`` name: replaced by each recording kind of the config,
#: e.g. ``"load_{kind}"`` -> ``"load_fmri"``
KIND_FIELD = "{kind}"

StageFunc = Callable[["RunContext"], "dict[str, Any] | None"]
ReportFunc = Callable[["RunContext", "Report"], None]


def _always(config: PipelineConfig) -> bool:
    return True


@dataclass
class Stage:
    """One step of a pipeline.

    Parameters
    ----------
    name : str
        The stage's name (in ``stages:``, the manifest and the log).
    func : callable
        ``func(ctx) -> {"metrics": ..., "outputs": [...], "inputs": {...}}`` (or None).
    requires : tuple of str
        Stages that must be in the plan and run before this one; ``"{kind}"`` in a name
        stands for each recording kind of the config (``"load_{kind}"``).
    after : tuple of str
        Stages this one runs after when they are in the plan, without needing them
        (``"*"``: after every other stage of the plan).
    enabled : callable
        ``enabled(config) -> bool``: whether the default plan (no ``stages:``) runs it.
    priority : int
        Breaks ties of the dependency order: of the stages ready to run, the lowest
        priority runs first (then the name).
    report : callable or None
        ``report(ctx, report)`` adds this stage's section to the HTML report.
    report_order : int
        Where its section goes in the report: sections are sorted by it (then by plan
        order), so the results come first whatever order the stages ran in.
    distributed : bool
        Under ``accelerate launch``, every process runs it (it trains, and writes only
        from the main process); otherwise the main process runs it while the others
        wait, and its result is shared with them.
    doc : str
        One line saying what the stage does (logged when it starts).
    """

    name: str
    func: StageFunc
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    enabled: Callable[[PipelineConfig], bool] = _always
    priority: int = 100
    report: ReportFunc | None = None
    distributed: bool = False
    doc: str = ""
    report_order: int = 50

    def requirements(self, config: PipelineConfig) -> tuple[str, ...]:
        """The names of the stages this stage needs, for this config's recording kinds."""
        return _expand(self.requires, config)

    def runs_after(self, config: PipelineConfig) -> tuple[str, ...]:
        """The names of the stages this stage runs after if they are in the plan."""
        return _expand(self.after, config)

    def report_section(self, ctx: RunContext, report: Report) -> None:
        """Add this stage's section to ``report`` (nothing if it has none)."""
        if self.report is not None:
            self.report(ctx, report)


def _expand(names: tuple[str, ...], config: PipelineConfig) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        if KIND_FIELD in name:
            out.extend(name.replace(KIND_FIELD, k) for k in config.kinds)
        else:
            out.append(name)
    return tuple(out)


#: the registered stages, by name (the built-in ones register on import of
#: :mod:`braindecode_kit.pipeline.stages`)
STAGES: dict[str, Stage] = {}


def stage(
    name: str,
    requires: tuple[str, ...] = (),
    *,
    after: tuple[str, ...] = (),
    enabled: Callable[[PipelineConfig], bool] | None = None,
    priority: int = 100,
    report: ReportFunc | None = None,
    distributed: bool = False,
    report_order: int = 50,
    registry: dict[str, Stage] | None = None,
) -> Callable[[StageFunc], StageFunc]:
    """Register the decorated function as the stage ``name`` (see :class:`Stage`).

    Parameters
    ----------
    name : str
        The stage's name; registering another function under a taken name is refused.
    requires, after, enabled, priority, report, distributed, report_order
        As in :class:`Stage`.
    registry : dict or None
        Where to register (default :data:`STAGES`).

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged.
    """
    where = STAGES if registry is None else registry

    def decorator(func: StageFunc) -> StageFunc:
        old = where.get(name)
        same = old is not None and (old.func.__module__, old.func.__qualname__) == (
            func.__module__, func.__qualname__)  # a module imported again
        if old is not None and not same:
            raise ValueError(f"A stage named {name!r} is registered already "
                             f"({old.func.__module__}.{old.func.__qualname__}).")
        where[name] = Stage(
            name, func, tuple(requires), tuple(after), enabled or _always, int(priority),
            report, bool(distributed), (func.__doc__ or "").strip().split("\n")[0],
            int(report_order),
        )
        return func

    return decorator


@dataclass
class RunContext:
    """What a stage sees: the run folder, the config, the metrics so far, a cache.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    config : PipelineConfig
        The validated pipeline.
    metrics : dict
        The metrics of the stages run so far (loaded from ``metrics.json`` on resume).
    cache : dict
        Objects computed once per process (see :meth:`cached`).
    state : accelerate.PartialState or None
        The distributed state (None: a single process).
    plan : list of Stage
        The stages of this run, in order (the report asks each for its section).
    """

    run_dir: Path
    config: PipelineConfig
    metrics: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict)
    state: Any = None
    plan: list[Stage] = field(default_factory=list)

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self.config.seed

    @property
    def kinds(self) -> list[str]:
        """The recording kinds of the run (``["fmri"]``, ...)."""
        return self.config.kinds

    @property
    def is_main_process(self) -> bool:
        """Whether this process writes the run folder (always, without accelerate)."""
        return self.state is None or bool(self.state.is_main_process)

    @property
    def process_index(self) -> int:
        """This process's rank (0 without accelerate)."""
        return 0 if self.state is None else int(self.state.process_index)

    @property
    def num_processes(self) -> int:
        """The number of processes (1 without accelerate)."""
        return 1 if self.state is None else int(self.state.num_processes)

    def wait_for_everyone(self) -> None:
        """A barrier across the processes (nothing in a single process)."""
        if self.num_processes > 1:
            self.state.wait_for_everyone()

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (parent folders created)."""
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """Compute ``make()`` once per process (stages of a resumed run re-load from disk)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


def distributed_state():
    """accelerate's state when launched on several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # as accelerate's own AcceleratorState reads it, so that fit() shares this state
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    return state if state.num_processes > 1 else None
