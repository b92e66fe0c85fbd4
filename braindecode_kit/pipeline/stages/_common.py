"""What several stages share: loaders of earlier stages' outputs (so a resumed run needs
nothing in memory), where a recording kind's outputs go, the library objects a config
asks for, and retrieval scoring.

Nothing here knows a recording kind's file formats: a kind's loader stages write one
:class:`~braindecode_kit.trialset.TrialSet` per subject under :func:`kind_path` and
``subjects.json`` beside them; every later stage reads them back through
:func:`get_trialsets`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._checks import check_option
from ..._readers import read_json
from ..._utils import write_json_atomic
from .._base import RunContext

__all__ = [
    "KIND_LABELS",
    "decoder_config",
    "fraction_label",
    "get_oracle",
    "get_stimuli",
    "get_targets",
    "get_trialsets",
    "kind_path",
    "pool_over_subjects",
    "register_oracle",
    "retrieval",
    "retrieval_summary",
    "small_data_config",
    "split_subjects",
    "subjects_of",
    "test_set",
    "train_config",
]

#: how the report names each recording kind
KIND_LABELS = {"fmri": "fMRI", "meg": "MEG", "seeg": "sEEG"}
#: the kind whose outputs sit at the top of the run folder (the layout from before
#: recording kinds, kept so fMRI run folders do not change)
TOP_LEVEL_KIND = "fmri"


# --------------------------------------------------------------------------- paths
def kind_path(kind: str, *parts: str) -> str:
    """The run-folder path (relative, ``/``-separated) of a kind's output.

    fMRI outputs sit at the top of the run folder (``trials/sub-01``); other kinds'
    under a folder of their name (``meg/trials/sub-01``).

    Examples
    --------
    >>> kind_path("fmri", "trials", "sub-01"), kind_path("meg", "trials", "sub-01")
    ('trials/sub-01', 'meg/trials/sub-01')
    """
    head = () if kind == TOP_LEVEL_KIND else (kind,)
    return "/".join((*head, *parts))


def _abs(ctx: RunContext, kind: str, *parts: str) -> Path:
    return ctx.run_dir / kind_path(kind, *parts)


# --------------------------------------------------------------------------- loaders
def get_stimuli(ctx: RunContext):
    """The run's StimulusSet (rebuilt from the config: the world is deterministic)."""

    def make():
        from ...stimuli import StimulusSet

        sc = ctx.config.stimuli
        if sc.kind == "world":
            from ...simulate import make_world

            return make_world(sc.n, seed=ctx.seed, size=sc.size)
        if sc.kind == "folder":
            return StimulusSet.from_folder(sc.path, table=sc.table)
        return StimulusSet.from_coco(sc.path, sc.captions)

    return ctx.cached("stimuli", make)


def get_targets(ctx: RunContext):
    """The CLIP targets written by the embed stage."""
    from ...embed import Targets

    return ctx.cached("targets", lambda: Targets.load(ctx.run_dir / "targets"))


def get_trialsets(ctx: RunContext, kind: str) -> dict[str, Any]:
    """Subject -> TrialSet of one recording kind, as its load stage wrote them
    (memory-mapped)."""
    from ...trialset import TrialSet

    def load():
        subjects = read_json(_abs(ctx, kind, "trials", "subjects.json"),
                             "list of loaded subjects", expected_type=list)
        return {s: TrialSet.load(_abs(ctx, kind, "trials", f"sub-{s}")) for s in subjects}

    return ctx.cached(f"trialsets/{kind}", load)


def split_subjects(subjects: Sequence[str], config,
                   kind: str = "fmri") -> tuple[list[str], str | None]:
    """(pretraining subjects, held-out new subject or None) of a pipeline config.

    The held-out subject is ``new_subject.subject`` (default: the last in sorted order)
    when ``new_subject.enabled`` and there are at least two subjects; a sensor kind's
    ``<kind>.new_subject`` overrides apply.

    Raises
    ------
    ValueError
        If ``new_subject.subject`` names none of ``subjects``.
    """
    ordered = sorted(subjects)
    ns = config.section_for("new_subject", kind)
    if ns.subject is not None:
        check_option("new_subject.subject" if kind == "fmri" else
                     f"{kind}.new_subject.subject", ns.subject, ordered)
    if not ns.enabled or len(ordered) < 2:
        return ordered, None
    new = ns.subject if ns.subject is not None else ordered[-1]
    return [s for s in ordered if s != new], new


def subjects_of(ctx: RunContext, kind: str) -> tuple[list[str], str | None]:
    """:func:`split_subjects` of the run's subjects of one kind."""
    return split_subjects(list(get_trialsets(ctx, kind)), ctx.config, kind)


def generation_predictions(ctx, kind: str, subject: str):
    """The decoder's predictions of a subject's test images that captions and
    reconstructions are made from: the generation route of the ridge anchor
    (``decoder_generation_sub-XX.npy``) when the evaluate stage wrote one, else the
    decoder's (``decoder_sub-XX.npy``)."""
    import numpy as np

    folder = ctx.run_dir / kind_path(kind, "predictions")
    path = folder / f"decoder_generation_sub-{subject}.npy"
    return np.load(path if path.exists() else folder / f"decoder_sub-{subject}.npy")


def test_set(ts):
    """A subject's test trials, averaged over repetitions (as NSD's shared images are)."""
    return ts.select(split="test").average_repetitions()


# --------------------------------------------------------------------------- oracles
_ORACLES: dict[str, Callable[[RunContext], Any]] = {}


def register_oracle(kind: str) -> Callable[[Callable[[RunContext], Any]], Callable]:
    """Register ``func(ctx) -> simulator or None`` giving a kind's ground truth.

    The simulator (e.g. :class:`~braindecode_kit.simulate.SimulatedFMRI`) has
    ``oracle_retrieval(subject, n_candidates=, n_draws=, seed=)``; None when the run's
    data of that kind are not simulated.
    """

    def decorator(func):
        _ORACLES[kind] = func
        return func

    return decorator


def get_oracle(ctx: RunContext, kind: str) -> Any:
    """The simulator of a kind's data (None: real data, or no simulator registered)."""
    make = _ORACLES.get(kind)
    return None if make is None else make(ctx)


# --------------------------------------------------------------------------- configs
def decoder_config(config, trainsets: dict[str, Any], embed_dim: int,
                   blurry_size: int | None = None):
    """The DecoderConfig a pipeline config asks for, for these subjects' trial sets
    (of one recording kind: its ``<kind>.decoder`` overrides apply), with the low-level
    head of side ``blurry_size`` when the targets have blurry images."""
    from ...models import SubjectSpec

    specs = {s: SubjectSpec.from_trialset(ts) for s, ts in trainsets.items()}
    kinds = {spec.modality for spec in specs.values()}
    if len(kinds) != 1:
        raise ValueError(f"decoder_config takes one recording kind's subjects, got {sorted(kinds)}.")
    extra = {} if blurry_size is None else {"blurry_size": int(blurry_size)}
    return config.section_for("decoder", kinds.pop()).build(subjects=specs, embed_dim=embed_dim,
                                                            **extra)


def train_config(config, kind: str = "fmri", **overrides):
    """The TrainConfig a pipeline config asks for ``kind``'s decoder (seeded by the run;
    ``<kind>.train`` overrides apply; ``overrides`` win)."""
    return config.section_for("train", kind).build(**{"seed": config.seed, **overrides})


def small_data_config(config, n_trials: int, kind: str = "fmri"):
    """:func:`train_config` for a few hundred trials: at least 30 steps an epoch.

    A few hundred trials give 2-3 batches an epoch; without the floor a new adapter is
    simply under-trained (measured: top-1 0.007 -> 0.04). ``new_subject.epochs``, when
    set, replaces the train section's epochs.
    """
    batch = config.section_for("train", kind).batch_size
    epochs = config.section_for("new_subject", kind).epochs
    return train_config(config, kind, steps_per_epoch=max(30, n_trials // batch),
                        **({} if epochs is None else {"epochs": epochs}))


def fraction_label(fraction: float) -> str:
    """The metric-key suffix of a share of the data: 0.1 -> ``"10pct"``, 0.025 -> ``"2.5pct"``.

    Examples
    --------
    >>> fraction_label(0.1), fraction_label(0.25), fraction_label(0.025)
    ('10pct', '25pct', '2.5pct')
    """
    return f"{fraction * 100:g}pct"


# --------------------------------------------------------------------------- retrieval
def pool_over_subjects(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool per-subject retrieval results drawn with the same candidate draws.

    Several draws: the mean over subjects per draw, then mean and 95% normal CI over
    draws (MindEye2's protocol). A single draw (the test set is exactly ``n_candidates``
    images, so every draw would be the same): the pooled top-1 is a proportion over
    ``n_subjects * n_candidates`` identifications, with its Wilson score interval (both:
    :func:`~braindecode_kit.evaluate.draw_ci`).

    Each subject counts once (the mean of the subjects' accuracies, as MindEye2 averages
    its subjects), whatever its number of candidates; the pooled chance is the mean of the
    subjects' chances (they differ when subjects have different numbers of test images).
    """
    from ...evaluate import draw_ci

    draws = np.mean([r["draws"] for r in results], axis=0)
    ci = draw_ci(draws, sum(int(r["n_candidates"]) for r in results))
    return {"top1": float(draws.mean()), "ci": ci, "draws": draws.tolist(),
            "chance": float(np.mean([r["chance"] for r in results])),
            "n_subjects": len(results)}


def retrieval(pred, target, ctx: RunContext, k: int = 1) -> dict[str, Any]:
    """Brain->image retrieval of the run's protocol (``evaluate:``)."""
    from ...evaluate import retrieval_accuracy

    ec = ctx.config.evaluate
    n = min(ec.n_candidates, len(target))
    return retrieval_accuracy(pred, target, k=k, n_candidates=n, n_draws=ec.n_draws,
                              seed=ctx.seed, direction="brain->image")


def retrieval_summary(r: dict[str, Any]) -> dict[str, Any]:
    """The top-1 and its CI of a retrieval result (and its top-k, ``top5`` and
    ``top5_ci`` at k = 5, when it was computed with k > 1)."""
    out = {"top1": r["top1"], "ci": list(r["ci"])}
    if "topk" in r:
        out[f"top{r['k']}"] = r["topk"]
        out[f"top{r['k']}_ci"] = list(r["topk_ci"])
    return out


def load_subjects(ctx: RunContext, kind: str, bids_dir: str,
                  load_one: Callable[[Path, str], Any],
                  describe: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The loader stages' loop: every subject of ``kind``'s BIDS dataset -> one TrialSet.

    The dataset is the simulated one (``bids_dir`` in the run folder) or the section's
    ``bids_root``; subjects are the section's ``subjects`` or every ``sub-*`` folder.
    ``load_one(root, subject)`` reads one subject; ``describe(trialset)`` gives its metrics.
    Returns the stage result (metrics under ``metrics[kind]["subjects"]``, outputs).
    """
    from mne_bids import get_entity_vals

    section = getattr(ctx.config, kind)
    root = Path(section.bids_root) if section.source == "bids" else ctx.run_dir / bids_dir
    subjects = section.subjects or sorted(get_entity_vals(
        root, "subject", ignore_dirs=("derivatives", "sourcedata")))
    if not subjects:
        raise ValueError(f"No subjects (sub-*/ folders) found in the BIDS dataset {root}.")
    per_subject = {}
    for sub in subjects:
        ts = load_one(root, sub)
        ts.save(ctx.path(kind_path(kind, "trials", f"sub-{sub}")))
        per_subject[sub] = describe(ts)
    write_json_atomic(ctx.path(kind_path(kind, "trials", "subjects.json")), list(subjects))
    return {"metrics": {kind: {"subjects": per_subject}},
            "outputs": [kind_path(kind, "trials", "subjects.json")]
            + [kind_path(kind, "trials", f"sub-{s}") for s in subjects]}


def n_test_stimuli(ts: Any) -> int:
    """Number of distinct test stimuli of a TrialSet."""
    return int(ts.select(split="test").trials["stimulus_id"].nunique())


class CachedEmbedder:
    """An embedder whose text and image embeddings are computed once per distinct text or
    image (uint8 pixels) for a stage: the caption stage embeds the references and prompts of
    every caption set once, the reconstruct stage each seen image and reconstruction once
    for its per-image scores, its metric table and its pooled FID. Everything else is the
    wrapped embedder's; inputs it does not key (a StimulusSet) go straight through."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self._texts: dict[str, np.ndarray] = {}
        self._images: dict[bytes, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)

    def encode_texts(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if new:
            self._texts.update(zip(new, self.embedder.encode_texts(new)))
        return np.stack([self._texts[t] for t in texts])

    def encode_images(self, images):
        if isinstance(images, np.ndarray):
            items = list(images)
            keys = [_image_key(a) for a in items]
        elif isinstance(images, (list, tuple)):
            items = list(images)
            keys = [_image_key(np.asarray(im.convert("RGB"))) for im in items]
        else:
            return self.embedder.encode_images(images)
        todo = {}
        for k, item in zip(keys, items):
            if k not in self._images and k not in todo:
                todo[k] = item
        if todo:
            batch = (np.stack(list(todo.values())) if isinstance(images, np.ndarray)
                     else list(todo.values()))
            self._images.update(zip(todo, self.embedder.encode_images(batch)))
        return np.stack([self._images[k] for k in keys]).astype(np.float32, copy=False)


def _image_key(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    return str((a.shape, a.dtype)).encode() + a.tobytes()
