"""The pipeline runner: validated config -> plan -> stages -> one run folder.

The runner only wires stages; each stage is a plain function of a :class:`RunContext`
that writes its outputs (atomically) into the run folder and returns its metrics.
``manifest.json`` records the config, versions, seeds, the inputs' hashes and which
stages are done, so re-running the same command skips finished stages and a killed
run resumes where it stopped. Metrics of all stages are merged into ``metrics.json``.

The plan is ordered by what each stage ``requires`` (and runs ``after``): a topological
sort whose ties go to the lower priority, then the name — deterministic, and the same
whatever order the stage modules were imported in.

Under ``accelerate launch`` every process runs the pipeline: the main process alone
writes the manifest, the metrics and the report and runs the stages that are not
``distributed`` (stimuli, embedding, simulation, loading, ridge, evaluation) while the
others wait and then receive its results; every process runs the distributed stages,
whose training :func:`braindecode_kit.train.fit` shards.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import json
import os
import platform
import shutil
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike, hash_jsonable, write_json_atomic
from . import stages as _builtin_stages  # noqa: F401  (registers the built-in stages)
from ._base import ALL_OTHERS, STAGES, RunContext, Stage
from .config import PipelineConfig, load_config

__all__ = ["MANIFEST", "METRICS", "merge_metrics", "plan", "run_pipeline"]

MANIFEST = "manifest.json"
METRICS = "metrics.json"
MANIFEST_VERSION = 1


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("braindecode-kit", "numpy", "torch", "open_clip_torch", "diffusers",
                 "transformers", "accelerate", "mne", "nilearn", "nibabel", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def merge_metrics(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``new`` into ``into`` (dicts merged key by key, other values replaced).

    Parameters
    ----------
    into : dict
        The metrics so far (changed in place).
    new : dict
        A stage's metrics.

    Returns
    -------
    dict
        ``into``.

    Examples
    --------
    >>> merge_metrics({"fmri": {"a": 1}}, {"fmri": {"b": 2}})
    {'fmri': {'a': 1, 'b': 2}}
    """
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_metrics(into[key], value)
        else:
            into[key] = value
    return into


# =========================================================================== plan
def plan(config: PipelineConfig, stages: Mapping[str, Stage] | None = None) -> list[Stage]:
    """The stages a config runs, in dependency order, with their requirements checked.

    Parameters
    ----------
    config : PipelineConfig
        The pipeline; ``config.stages`` selects stages (default: every enabled one).
    stages : mapping of str to Stage or None
        The registry to plan from (default: the registered stages).

    Returns
    -------
    list of Stage
        Each stage after every stage it requires or runs after; of the stages ready at
        a point, the lowest ``priority`` first, then the name.

    Raises
    ------
    ValueError
        If a selected stage is unknown, a requirement is not in the plan, or the
        requirements form a cycle.
    """
    registry = STAGES if stages is None else stages
    if config.stages is not None:
        unknown = [s for s in config.stages if s not in registry]
        if unknown:
            allowed = sorted(registry, key=lambda n: (registry[n].priority, n))
            raise ValueError(
                f"Invalid value for the 'stages' setting. Allowed values are "
                f"{', '.join(allowed)}, but got {unknown} instead."
            )
        names = list(dict.fromkeys(config.stages))
    else:
        names = [n for n, s in registry.items() if s.enabled(config)]
    selected = set(names)
    deps: dict[str, set[str]] = {}
    for n in names:
        needs = registry[n].requirements(config)
        missing = [r for r in needs if r not in selected]
        if missing:
            raise ValueError(
                f"Stage {n!r} needs stage(s) {missing}, which this pipeline does not run.")
        deps[n] = set(needs)
    last = {n for n in names if ALL_OTHERS in registry[n].runs_after(config)}
    for n in names:
        after = set(registry[n].runs_after(config))
        deps[n] |= (selected - last - {n}) if ALL_OTHERS in after else (after & selected)
    return [registry[n] for n in _topological(deps, registry)]


def _topological(deps: dict[str, set[str]], registry: Mapping[str, Stage]) -> list[str]:
    """Kahn's algorithm; ties by (priority, name)."""
    waiting = {n: set(d) for n, d in deps.items()}
    users: dict[str, list[str]] = {n: [] for n in deps}
    for n, d in deps.items():
        for r in d:
            users[r].append(n)
    ready = [(registry[n].priority, n) for n, d in waiting.items() if not d]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for u in users[n]:
            waiting[u].discard(n)
            if not waiting[u]:
                heapq.heappush(ready, (registry[u].priority, u))
    if len(order) < len(deps):
        raise ValueError(f"The stages' requirements form a cycle: {_cycle(waiting, order)}; "
                         "a stage cannot need itself, even through others.")
    return order


def _cycle(waiting: dict[str, set[str]], done: list[str]) -> str:
    left = {n: d for n, d in waiting.items() if n not in done}
    node = min(left)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(d for d in left[node] if d in left)
    loop = path[path.index(node):] + [node]
    return " -> ".join(reversed(loop))  # "a -> b" reads "a runs before b"


# =========================================================================== processes
def _distributed_state():
    """accelerate's state when launched on several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # as accelerate's own AcceleratorState reads it, so that fit() shares this state
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    return state if state.num_processes > 1 else None


def _from_main(state, value: Any) -> Any:
    """The main process's ``value``, on every process."""
    if state is None:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


class _MainProcessFailed(RuntimeError):
    pass


def _run_stage(st: Stage, ctx: RunContext) -> dict[str, Any]:
    if ctx.state is None or st.distributed:
        return st.func(ctx) or {}
    # the main process runs it; the others wait for its result (or its failure)
    result: Any = None
    if ctx.is_main_process:
        try:
            result = st.func(ctx) or {}
        except BaseException as err:
            _from_main(ctx.state, {"__failed__": f"{type(err).__name__}: {err}"})
            raise
    result = _from_main(ctx.state, result)
    if "__failed__" in result:
        raise _MainProcessFailed(
            f"Stage {st.name!r} failed on the main process: {result['__failed__']}")
    return result


# =========================================================================== run
@fill_doc
@verbose
def run_pipeline(
    config: PipelineConfig | PathLike | dict,
    out_dir: PathLike,
    *,
    restart: bool = False,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Run a pipeline into ``out_dir``, resuming whatever an earlier run left undone.

    Parameters
    ----------
    config : PipelineConfig | path | dict
        The pipeline (a YAML path or a mapping is read with :func:`load_config`).
    out_dir : path
        The run folder. If it holds a manifest of the same config, finished stages
        are skipped; if it holds a different config, the run is refused unless
        ``restart=True``, which empties the folder first.
    restart : bool
        Start from scratch in ``out_dir``.
    %(verbose)s

    Returns
    -------
    dict
        The merged metrics (also in ``out_dir/metrics.json``).

    Raises
    ------
    ValueError
        If the config is invalid, its plan is (unknown stage, missing requirement,
        cycle), or ``out_dir`` holds a run of another config.

    Notes
    -----
    Under ``accelerate launch`` only the main process writes the run folder; see the
    module docstring.
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    stages = plan(config)  # an invalid plan touches nothing
    run_dir = Path(out_dir)
    cfg_dict = config.model_dump(mode="json")
    cfg_hash = hash_jsonable(cfg_dict)
    manifest_path = run_dir / MANIFEST
    state = _distributed_state()
    main = state is None or state.is_main_process

    def barrier() -> None:
        if state is not None:
            state.wait_for_everyone()

    if main:
        if restart and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_hash") != cfg_hash:
            raise ValueError(
                f"The run folder {run_dir} holds a run of a different configuration "
                f"(config hash {manifest.get('config_hash')}, this one {cfg_hash}). "
                "Use another output folder, or restart=True (--restart) to replace it."
            )
    else:
        manifest = {
            "format_version": MANIFEST_VERSION,
            "name": config.name,
            "config": cfg_dict,
            "config_hash": cfg_hash,
            "seed": config.seed,
            "created": _now(),
            "versions": _versions(),
            "inputs": {},
            "stages": {},
        }
    metrics_path = run_dir / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    manifest, metrics = _from_main(state, (manifest, metrics))  # one view of the folder
    barrier()  # everyone has read it before the main process writes
    ctx = RunContext(run_dir, config, metrics, state=state, plan=stages)

    def write(path: Path, obj: Any) -> None:
        if main:
            write_json_atomic(path, obj)

    manifest["plan"] = [s.name for s in stages]
    write(manifest_path, manifest)
    for st in stages:
        record = manifest["stages"].get(st.name, {})
        outputs_ok = all((run_dir / o).exists() for o in record.get("outputs", []))
        if _from_main(state, record.get("status") == "done" and outputs_ok):
            if main:
                logger.info("[%s] done already, skipped", st.name)
            continue
        if main:
            logger.info("[%s] %s", st.name, st.doc)
        manifest["stages"][st.name] = {"status": "running", "started": _now()}
        write(manifest_path, manifest)
        t0 = time.perf_counter()
        result = _run_stage(st, ctx)
        seconds = time.perf_counter() - t0
        merge_metrics(metrics, result.get("metrics", {}))
        metrics.setdefault("timing_s", {})[st.name] = round(seconds, 2)
        manifest["inputs"].update(result.get("inputs", {}))
        manifest["stages"][st.name] = {
            "status": "done",
            "started": manifest["stages"][st.name]["started"],
            "finished": _now(),
            "seconds": round(seconds, 2),
            "outputs": [str(o) for o in result.get("outputs", [])],
        }
        write(metrics_path, metrics)
        write(manifest_path, manifest)
        barrier()  # the stage's outputs are on disk for everyone
        if main:
            logger.info("[%s] finished in %.1f s", st.name, seconds)
    manifest["finished"] = _now()
    write(manifest_path, manifest)
    return metrics
