"""The pipeline runner: validated config -> stages in order -> one run folder.

The runner only wires stages; each stage is a plain function of a :class:`RunContext`
that writes its outputs (atomically) into the run folder and returns its metrics.
``manifest.json`` records the config, versions, seeds, the inputs' hashes and which
stages are done, so re-running the same command skips finished stages and a killed
run resumes where it stopped. Metrics of all stages are merged into ``metrics.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ._logging import logger, verbose
from ._utils import PathLike, hash_jsonable, write_json_atomic
from .config import PipelineConfig, load_config

MANIFEST = "manifest.json"
METRICS = "metrics.json"
MANIFEST_VERSION = 1


@dataclass
class Stage:
    """One step of a pipeline: a name, a function and what it needs before it."""

    name: str
    func: Callable[[RunContext], dict[str, Any] | None]
    requires: tuple[str, ...] = ()
    enabled: Callable[[PipelineConfig], bool] = lambda cfg: True
    doc: str = ""


STAGES: dict[str, Stage] = {}


def stage(name: str, requires: tuple[str, ...] = (), enabled=None):
    """Register a stage function under ``name`` (in registration order)."""

    def decorator(func):
        STAGES[name] = Stage(
            name, func, tuple(requires), enabled or (lambda cfg: True),
            (func.__doc__ or "").strip().split("\n")[0],
        )
        return func

    return decorator


@dataclass
class RunContext:
    """What a stage sees: the run folder, the config, and a per-process cache."""

    run_dir: Path
    config: PipelineConfig
    metrics: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

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
    """Deep-merge ``new`` into ``into`` (dicts merged key by key, other values replaced)."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_metrics(into[key], value)
        else:
            into[key] = value
    return into


def plan(config: PipelineConfig) -> list[Stage]:
    """The stages a config runs, in order, with their requirements checked."""
    import braindecode_kit.stages  # noqa: F401  (registers the built-in stages)

    if config.stages is not None:
        unknown = [s for s in config.stages if s not in STAGES]
        if unknown:
            raise ValueError(
                f"Invalid value for the 'stages' setting. Allowed values are "
                f"{', '.join(STAGES)}, but got {unknown} instead."
            )
        names = [n for n in STAGES if n in config.stages]
    else:
        names = [n for n, s in STAGES.items() if s.enabled(config)]
    for n in names:
        missing = [r for r in STAGES[n].requires if r not in names]
        if missing:
            raise ValueError(f"Stage {n!r} needs stage(s) {missing}, which this pipeline does not run.")
    return [STAGES[n] for n in names]


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
        The pipeline (a YAML path is read with :func:`load_config`).
    out_dir : path
        The run folder. If it holds a manifest of the same config, finished stages
        are skipped; if it holds a different config, the run is refused unless
        ``restart=True``, which empties the folder first.
    restart : bool
        Start from scratch in ``out_dir``.
    verbose : bool | str | int | None
        Log level for this call.

    Returns
    -------
    dict
        The merged metrics (also in ``out_dir/metrics.json``).
    """
    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    run_dir = Path(out_dir)
    cfg_dict = config.model_dump(mode="json")
    cfg_hash = hash_jsonable(cfg_dict)
    manifest_path = run_dir / MANIFEST
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

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
    ctx = RunContext(run_dir, config, metrics)

    stages = plan(config)
    manifest["plan"] = [s.name for s in stages]
    write_json_atomic(manifest_path, manifest)
    for st in stages:
        record = manifest["stages"].get(st.name, {})
        outputs_ok = all((run_dir / o).exists() for o in record.get("outputs", []))
        if record.get("status") == "done" and outputs_ok:
            logger.info("[%s] done already, skipped", st.name)
            continue
        logger.info("[%s] %s", st.name, st.doc)
        manifest["stages"][st.name] = {"status": "running", "started": _now()}
        write_json_atomic(manifest_path, manifest)
        t0 = time.perf_counter()
        result = st.func(ctx) or {}
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
        write_json_atomic(metrics_path, metrics)
        write_json_atomic(manifest_path, manifest)
        logger.info("[%s] finished in %.1f s", st.name, seconds)
    manifest["finished"] = _now()
    write_json_atomic(manifest_path, manifest)
    return metrics
