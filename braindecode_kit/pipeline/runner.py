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
import platform
import shutil
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from .._docs import fill_doc
from .._logging import logger, verbose
from .._readers import (
    CorruptFileError,
    check_keys,
    file_fingerprint,
    fingerprint_mismatch,
    read_json,
)
from .._utils import MARKER, PathLike, hash_jsonable, json_default, read_marker, write_json_atomic
from .._version import __version__
from . import stages as _builtin_stages  # noqa: F401  (registers the built-in stages)
from ._base import ALL_OTHERS, STAGES, RunContext, Stage, distributed_state
from .config import PipelineConfig, load_config

__all__ = ["MANIFEST", "METRICS", "RUN_KIND", "check_run_folder", "merge_metrics", "plan",
           "run_pipeline"]

MANIFEST = "manifest.json"
METRICS = "metrics.json"
MANIFEST_VERSION = 1
#: the kind in the marker of a run folder (see :func:`check_run_folder`)
RUN_KIND = "braindecode_kit.run"


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
        The run folder: absent, empty, or a run folder (a folder that is neither is
        refused, never written into). If it holds a manifest of the same config,
        finished stages whose outputs still match the sizes and hashes recorded in the
        manifest are skipped; a stage whose outputs are missing or changed is redone
        (and, if it then writes other outputs, every stage after it); ``metrics.json``
        is rebuilt from the metrics each stage recorded in the manifest. A different
        config is refused unless ``restart=True``, which empties the run folder first.
    restart : bool
        Start from scratch in ``out_dir`` (a run folder only).
    %(verbose)s

    Returns
    -------
    dict
        The merged metrics (also in ``out_dir/metrics.json``).

    Raises
    ------
    ValueError
        If the config is invalid, its plan is (unknown stage, missing requirement,
        cycle), or ``out_dir`` holds a run of another config, or its manifest is
        corrupt.
    FileExistsError
        If ``out_dir`` is a file or a non-empty folder that is not a run folder.

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
    state = distributed_state()
    main = state is None or state.is_main_process

    def barrier() -> None:
        if state is not None:
            state.wait_for_everyone()

    if main:
        check_run_folder(run_dir)  # a folder that is not a run folder is never touched
        if restart and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if read_marker(run_dir) is None:
            write_json_atomic(run_dir / MARKER, {"kind": RUN_KIND, "version": __version__})
    barrier()
    if manifest_path.exists():
        manifest = read_json(manifest_path, "run manifest")
        check_keys(manifest, ("config_hash", "stages"), manifest_path, "run manifest")
        if manifest.get("config_hash") != cfg_hash:
            raise ValueError(
                f"The run folder {run_dir} holds a run of a different configuration "
                f"(config hash {manifest.get('config_hash')}, this one {cfg_hash}). "
                "Use another output folder, or restart=True (--restart) to replace it."
            )
        if not isinstance(manifest["stages"], dict):
            raise CorruptFileError(f"The field 'stages' of the run manifest {manifest_path} "
                                   "must be an object (stage -> record).")
        manifest.setdefault("inputs", {})
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
    legacy_metrics: dict[str, Any] | None = None
    if main and any("metrics" not in r for r in manifest["stages"].values()
                    if isinstance(r, dict) and r.get("status") == "done"):
        # a manifest written before stages recorded their metrics: metrics.json has them
        legacy_metrics = (read_json(metrics_path, "run metrics")
                          if metrics_path.exists() else None)
    manifest, legacy_metrics = _from_main(state, (manifest, legacy_metrics))
    barrier()  # everyone has read it before the main process writes
    metrics = _rebuild_metrics(manifest, stages, legacy_metrics)
    ctx = RunContext(run_dir, config, metrics, state=state, plan=stages)

    def write(path: Path, obj: Any) -> None:
        if main:
            write_json_atomic(path, obj)

    manifest["plan"] = [s.name for s in stages]
    write(manifest_path, manifest)
    stale = False  # an earlier stage was redone with other outputs: redo everything after
    for st in stages:
        record = manifest["stages"].get(st.name, {})
        why = "an earlier stage was redone" if stale else (
            _why_redo(run_dir, record, legacy_metrics) if main else None)
        why = _from_main(state, why)
        if why is None:
            if main:
                logger.info("[%s] done already, skipped", st.name)
            continue
        if main:
            if record.get("status") == "done":
                logger.warning("[%s] redone: %s", st.name, why)
            logger.info("[%s] %s", st.name, st.doc)
        old_prints = record.get("fingerprints") if record.get("status") == "done" else None
        manifest["stages"][st.name] = {"status": "running", "started": _now()}
        write(manifest_path, manifest)
        t0 = time.perf_counter()
        result = _run_stage(st, ctx)
        seconds = time.perf_counter() - t0
        stage_metrics = json.loads(json.dumps(result.get("metrics", {}), default=json_default))
        merge_metrics(metrics, json.loads(json.dumps(stage_metrics)))
        metrics.setdefault("timing_s", {})[st.name] = round(seconds, 2)
        manifest["inputs"].update(result.get("inputs", {}))
        outputs = [str(o) for o in result.get("outputs", [])]
        prints = ({o: file_fingerprint(run_dir / o) for o in outputs if (run_dir / o).exists()}
                  if main else {})
        manifest["stages"][st.name] = {
            "status": "done",
            "started": manifest["stages"][st.name]["started"],
            "finished": _now(),
            "seconds": round(seconds, 2),
            "outputs": outputs,
            "fingerprints": prints,
            "metrics": stage_metrics,
        }
        if old_prints is not None and old_prints != prints:
            stale = True
        stale = bool(_from_main(state, stale))
        write(metrics_path, metrics)
        write(manifest_path, manifest)
        barrier()  # the stage's outputs are on disk for everyone
        if main:
            logger.info("[%s] finished in %.1f s", st.name, seconds)
    metrics = _rebuild_metrics(manifest, stages, legacy_metrics)
    write(metrics_path, metrics)  # rebuilt even when every stage was skipped
    manifest["finished"] = _now()
    write(manifest_path, manifest)
    return metrics


def check_run_folder(run_dir: PathLike) -> None:
    """Refuse ``run_dir`` unless it is absent, empty or a run folder.

    A run folder holds the run marker or a ``manifest.json``; anything else (a BIDS
    dataset, a user's files) is neither written into nor, with ``restart``, emptied.

    Raises
    ------
    FileExistsError
        If ``run_dir`` is a file, or a non-empty folder that is not a run folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise FileExistsError(f"The run folder {str(run_dir)!r} is a file; choose a folder.")
    entries = sorted(p.name for p in run_dir.iterdir())
    if not entries:
        return
    marker = read_marker(run_dir)
    if marker is not None and marker.get("kind") == RUN_KIND:
        return
    if marker is None and (run_dir / MANIFEST).is_file():  # written before run markers
        return
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5
                                      else "")
    what = (f"a {marker.get('kind')!r} folder" if marker is not None
            else "a folder that is not a run folder (no manifest.json)")
    raise FileExistsError(
        f"Refusing to use {str(run_dir)!r} as a run folder: it is {what} holding {shown}. "
        "Nothing was changed (restart=True / --restart empties only run folders); choose a "
        "new or empty folder for the run."
    )


def _why_redo(run_dir: Path, record: dict[str, Any],
              legacy_metrics: dict[str, Any] | None) -> str | None:
    """Why a stage must run (again), or None when its record and outputs are intact."""
    if not isinstance(record, dict) or record.get("status") != "done":
        return "not finished"
    if "metrics" not in record and legacy_metrics is None:
        return "its metrics were not recorded and metrics.json is gone"
    prints = record.get("fingerprints")
    for out in record.get("outputs", []):
        path = run_dir / out
        if prints is None or out not in prints:  # written before fingerprints
            if not path.exists():
                return f"its output {out} is missing"
            continue
        reason = fingerprint_mismatch(path, prints[out])
        if reason is not None:
            return f"its output {out} does not match what it wrote ({reason})"
    return None


def _rebuild_metrics(manifest: dict[str, Any], stages: list[Stage],
                     legacy: dict[str, Any] | None) -> dict[str, Any]:
    """``metrics.json`` from the metrics each finished stage recorded, in plan order."""
    records = manifest.get("stages", {})
    names = [s.name for s in stages] + [n for n in records if n not in {s.name for s in stages}]
    metrics: dict[str, Any] = json.loads(json.dumps(legacy)) if legacy else {}
    for name in names:
        rec = records.get(name)
        if not isinstance(rec, dict) or rec.get("status") != "done" or "metrics" not in rec:
            continue
        merge_metrics(metrics, json.loads(json.dumps(rec["metrics"])))
        metrics.setdefault("timing_s", {})[name] = rec.get("seconds")
    return metrics
