"""Caption metrics: n-gram scores (pycocoevalcap), CLIP-S / RefCLIP-S and text similarity.

:func:`caption_metrics` scores candidate captions against reference captions and returns
one entry per metric: a number, or ``{"available": False, "reason": ...}`` when the
metric cannot run on this machine (it never fails silently, and never pretends).

- ``bleu1`` .. ``bleu4``, ``rouge_l``, ``cider_d``: pycocoevalcap's pure-Python scorers
  (its ``Cider`` is CIDEr-D: clipped counts and a length penalty, sigma 6, x10). CIDEr-D's
  idf comes from the references of the scored corpus, so it is comparable only between
  candidate sets scored against the same references.
- Tokenisation: pycocoevalcap's PTB tokenizer (Stanford CoreNLP's, a bundled jar) when
  Java is on the machine, otherwise a simple documented tokenizer (lower case, the PTB
  tokenizer's punctuation removed, split on whitespace); which one ran is reported as
  ``tokenizer``. On the built-in world's captions both give the same tokens.
- ``meteor``: METEOR 1.5 through pycocoevalcap's bundled jar (needs Java; else
  unavailable with the reason). Install Java with your system's package manager
  (``apt-get install default-jre-headless``, ``conda install openjdk``).
- ``spice``: needs Stanford CoreNLP 3.6.0 in pycocoevalcap's ``spice/lib`` (it downloads
  it on first use; offline it cannot): unavailable unless those jars are there.
- ``clip_s``: CLIP-S (Hessel et al. 2021), ``2.5 * max(cos(image, text("A photo depicts "
  + caption)), 0)``, mean over candidates; needs the images' embeddings from the same CLIP.
- ``refclip_s``: RefCLIP-S, the harmonic mean of CLIP-S and ``max(max_r cos(caption,
  reference_r), 0)`` per candidate (jmhessel/clipscore), mean.
- ``text_sim``: mean cosine between the candidate's and each reference's CLIP text
  embeddings (the configured CLIP; the built-in one by default in
  :meth:`~braindecode_kit.caption.Captioner.score`; MindEye2's "CLIP
  text-text" score); ``sentence_sim``: the same with a sentence-transformers model, only
  when a local model path is given.

:func:`caption_comparison` reports MindEye2's convention: brain-decoded captions vs the
references, the image captioner's (from true embeddings) vs the references, and their
ratio, each named explicitly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_option

__all__ = [
    "ALL_METRICS",
    "CLIP_S_PROMPT",
    "bootstrap_ci",
    "caption_comparison",
    "caption_metrics",
    "java_available",
    "simple_tokenize",
    "tokenize_captions",
]

#: every metric name :func:`caption_metrics` knows, in the order it reports them
ALL_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider_d", "spice",
               "clip_s", "refclip_s", "text_sim", "sentence_sim")
#: the CLIP-S prompt prefix (Hessel et al. 2021)
CLIP_S_PROMPT = "A photo depicts "
#: the punctuation pycocoevalcap's PTB tokenizer drops
_PUNCTUATION = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",",
                ":", "-", "--", "...", ";"]
_SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def java_available() -> tuple[bool, str]:
    """Whether a working ``java`` is on the PATH, and a sentence saying why not."""
    java = shutil.which("java")
    if java is None:
        return False, ("no 'java' executable on the PATH (install a JRE, e.g. `apt-get install "
                       "default-jre-headless` or `conda install openjdk`)")
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"'java -version' failed ({type(err).__name__}: {err})"
    return True, ""


def simple_tokenize(text: str) -> str:
    """The fallback tokenizer: lower case, punctuation split off and dropped as the PTB
    tokenizer drops it, whitespace-joined.

    Examples
    --------
    >>> simple_tokenize("A red star, on grey.")
    'a red star on grey'
    """
    text = text.lower().replace("\n", " ")
    tokens = re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]", text)
    return " ".join(t for t in tokens if t not in _PUNCTUATION)


def tokenize_captions(texts: Sequence[str], tokenizer: str = "auto") -> tuple[list[str], str]:
    """Tokenise captions as :func:`caption_metrics` does, in one pass (one Java start for
    the PTB tokenizer): ``(space-joined tokens per text, the tokenizer that ran)``.
    Pass the result to :func:`caption_metrics` with ``tokenizer="none"``."""
    check_option("tokenizer", tokenizer, ("auto", "ptb", "simple", "none"))
    texts = [str(t) for t in texts]
    if tokenizer == "none":
        return texts, "none"
    has_java, why = java_available()
    if tokenizer == "auto":
        tokenizer = "ptb" if has_java else "simple"
    elif tokenizer == "ptb" and not has_java:
        raise RuntimeError(f"tokenizer='ptb' needs Java: {why}; use tokenizer='simple'.")
    if tokenizer == "simple" or not texts:
        return [simple_tokenize(t) for t in texts], tokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    return [out[i][0] for i in range(len(texts))], "ptb"


def _tokenize(gts: dict[int, list[str]], res: dict[int, list[str]], how: str):
    flat = [c for v in gts.values() for c in v] + [c for v in res.values() for c in v]
    tokens, _ = tokenize_captions(flat, how)
    it = iter(tokens)
    g = {k: [next(it) for _ in v] for k, v in gts.items()}
    r = {k: [next(it) for _ in v] for k, v in res.items()}
    return g, r


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def _check_inputs(candidates, references) -> tuple[list[str], list[list[str]]]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(f"'candidates' must be a list of str, but got "
                        f"{type(candidates).__name__}.")
    cands = [str(c) for c in candidates]
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"'references' must be a list (one entry per candidate) of lists of "
                        f"str, but got {type(references).__name__}.")
    refs = [[r] if isinstance(r, str) else [str(x) for x in r] for r in references]
    if len(refs) != len(cands):
        raise ValueError(f"'references' must have one entry per candidate ({len(cands)}), "
                         f"but got {len(refs)}.")
    if not cands:
        raise ValueError("'candidates' is empty.")
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise ValueError(f"candidate {empty[0]} has no reference ({len(empty)} without).")
    return cands, refs


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def caption_metrics(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    image_embeddings: np.ndarray | None = None,
    embedder: Any = None,
    metrics: Sequence[str] | None = None,
    tokenizer: str = "auto",
    sentence_model: str | None = None,
    per_item: bool = False,
) -> dict[str, Any]:
    """Score candidate captions against references.

    Parameters
    ----------
    candidates : list of str
        One caption per item.
    references : list of list of str
        The reference captions of each item (a str is one reference).
    image_embeddings : array (n, d) | None
        The items' image embeddings from ``embedder``'s CLIP, for ``clip_s`` and
        ``refclip_s`` (None: those two are unavailable).
    embedder : Embedder | None
        The CLIP whose text tower embeds captions (``clip_s``, ``refclip_s``,
        ``text_sim``). None: those are unavailable (this module sits below ``embed`` in the
        package's layering, so it cannot make one); :meth:`Captioner.score
        <braindecode_kit.caption.Captioner.score>` and the caption stage pass the built-in
        CLIP by default.
    metrics : list of str | None
        Which metrics (default: all of :data:`ALL_METRICS`).
    tokenizer : {"auto", "ptb", "simple", "none"}
        ``"auto"``: the PTB tokenizer when Java is available, else the simple one;
        ``"none"``: the captions are already tokenised (:func:`tokenize_captions`).
    sentence_model : str | None
        A local sentence-transformers model folder for ``sentence_sim``.
    per_item : bool
        Also return each metric's per-item scores under ``"per_item"`` (for bootstrap
        CIs over items).

    Returns
    -------
    dict
        ``metric -> float`` or ``{"available": False, "reason": str}``, plus
        ``"tokenizer"`` (which ran), ``"n"`` and, with ``per_item``, ``"per_item"``
        (``metric -> list of float``).

    Examples
    --------
    >>> m = caption_metrics(["a red star on grey"], [["a red star on grey"]],
    ...                     metrics=["bleu4"], tokenizer="simple")
    >>> round(m["bleu4"], 6)
    1.0
    """
    cands, refs = _check_inputs(candidates, references)
    check_option("tokenizer", tokenizer, ("auto", "ptb", "simple", "none"))
    wanted = list(ALL_METRICS) if metrics is None else list(metrics)
    for m in wanted:
        check_option("metrics", m, ALL_METRICS)
    has_java, why = java_available()
    if tokenizer == "auto":
        tokenizer = "ptb" if has_java else "simple"
    elif tokenizer == "ptb" and not has_java:
        raise RuntimeError(f"tokenizer='ptb' needs Java: {why}; use tokenizer='simple'.")
    out: dict[str, Any] = {"n": len(cands), "tokenizer": tokenizer}
    items: dict[str, list[float]] = {}
    gts = {i: r for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    ngram = [m for m in wanted if m in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor",
                                         "rouge_l", "cider_d", "spice")]
    if ngram:
        g, r = _tokenize(gts, res, tokenizer)
        if any(m.startswith("bleu") for m in ngram):
            from pycocoevalcap.bleu.bleu import Bleu

            score, per = Bleu(4).compute_score(g, r, verbose=0)
            for n in range(4):
                if f"bleu{n + 1}" in wanted:
                    out[f"bleu{n + 1}"] = float(score[n])
                    items[f"bleu{n + 1}"] = [float(x) for x in per[n]]
        if "rouge_l" in wanted:
            from pycocoevalcap.rouge.rouge import Rouge

            score, per = Rouge().compute_score(g, r)
            out["rouge_l"], items["rouge_l"] = float(score), [float(x) for x in per]
        if "cider_d" in wanted:
            from pycocoevalcap.cider.cider import Cider

            score, per = Cider().compute_score(g, r)
            out["cider_d"], items["cider_d"] = float(score), [float(x) for x in per]
        if "meteor" in wanted:
            out["meteor"] = _meteor(g, r, has_java, why, items)
        if "spice" in wanted:
            out["spice"] = _spice(has_java, why)
    clip_wanted = [m for m in wanted if m in ("clip_s", "refclip_s", "text_sim")]
    if clip_wanted and embedder is None:
        reason = ("no CLIP was given (embedder=None); pass embedder=Embedder() for the "
                  "built-in CLIP, as Captioner.score and the caption stage do")
        for m in clip_wanted:
            out[m] = _unavailable(reason)
    elif clip_wanted:
        flat_refs = [x for r in refs for x in r]
        C = _unit(embedder.encode_texts(cands))
        R = _unit(embedder.encode_texts(flat_refs))
        bounds = np.cumsum([0] + [len(r) for r in refs])
        ref_cos = [C[i] @ R[bounds[i]:bounds[i + 1]].T for i in range(len(cands))]
        if "text_sim" in wanted:
            per = [float(np.mean(c)) for c in ref_cos]
            out["text_sim"], items["text_sim"] = float(np.mean(per)), per
        if "clip_s" in wanted or "refclip_s" in wanted:
            if image_embeddings is None:
                reason = "no image embeddings were given (image_embeddings=None)"
                for m in ("clip_s", "refclip_s"):
                    if m in wanted:
                        out[m] = _unavailable(reason)
            else:
                V = _unit(np.asarray(image_embeddings))
                if V.shape != (len(cands), C.shape[1]):
                    raise ValueError(f"'image_embeddings' must have shape ({len(cands)}, "
                                     f"{C.shape[1]}), but got {V.shape}.")
                P = _unit(embedder.encode_texts([CLIP_S_PROMPT + c for c in cands]))
                clip_s = 2.5 * np.maximum(np.sum(V * P, axis=1), 0.0)
                if "clip_s" in wanted:
                    out["clip_s"], items["clip_s"] = float(clip_s.mean()), clip_s.tolist()
                if "refclip_s" in wanted:
                    ref_s = np.array([max(float(c.max()), 0.0) for c in ref_cos])
                    hm = np.where(clip_s + ref_s > 0,
                                  2 * clip_s * ref_s / np.maximum(clip_s + ref_s, 1e-12), 0.0)
                    out["refclip_s"], items["refclip_s"] = float(hm.mean()), hm.tolist()
    if "sentence_sim" in wanted:
        out["sentence_sim"] = _sentence_sim(cands, refs, sentence_model, items)
    if per_item:
        out["per_item"] = items
    return {**{m: out[m] for m in ALL_METRICS if m in out},
            **{k: v for k, v in out.items() if k not in ALL_METRICS}}


def _meteor(g, r, has_java: bool, why: str, items: dict[str, list[float]]) -> Any:
    if not has_java:
        return _unavailable(f"METEOR runs its jar under Java: {why}")
    try:
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()
        try:
            score, per = scorer.compute_score(g, r)
        finally:
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    except Exception as err:  # noqa: BLE001 - report, do not crash the other metrics
        return _unavailable(f"METEOR failed ({type(err).__name__}: {err})")
    items["meteor"] = [float(x) for x in per]
    return float(score)


def _spice(has_java: bool, why: str) -> Any:
    if not has_java:
        return _unavailable(f"SPICE runs its jar under Java: {why}")
    try:
        import pycocoevalcap.spice as spice_pkg
    except ImportError as err:
        return _unavailable(f"pycocoevalcap is not installed ({err})")
    lib = Path(spice_pkg.__file__).parent / "lib"
    missing = [j for j in _SPICE_JARS if not (lib / j).is_file()]
    if missing:
        return _unavailable(
            f"SPICE needs Stanford CoreNLP 3.6.0 ({', '.join(missing)}) in {lib}; "
            "pycocoevalcap downloads it on first use, which is impossible offline. Copy the "
            "two jars there to enable it.")
    return _unavailable("SPICE's CoreNLP jars are present but running SPICE is not wired in "
                        "this version (its scene-graph parse takes minutes per thousand "
                        "captions); run pycocoevalcap.spice.spice.Spice directly.")


def _sentence_sim(cands, refs, model: str | None, items: dict[str, list[float]]) -> Any:
    if model is None:
        return _unavailable("no local sentence-transformers model was given "
                            "(sentence_model=None; nothing is downloaded)")
    if not Path(model).expanduser().is_dir():
        return _unavailable(f"sentence_model={model!r} is not a local folder")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return _unavailable("sentence-transformers is not installed "
                            "(pip install sentence-transformers)")
    st = SentenceTransformer(str(Path(model).expanduser()), device="cpu")
    C = _unit(st.encode(list(cands)))
    per = [float(np.mean(C[i] @ _unit(st.encode(list(r))).T)) for i, r in enumerate(refs)]
    items["sentence_sim"] = per
    return float(np.mean(per))


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[float]:
    """Percentile bootstrap CI of the mean of per-item scores (items resampled).

    Examples
    --------
    >>> bootstrap_ci([1.0, 1.0, 1.0])
    [1.0, 1.0]
    """
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]


def mean_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0, *,
            binary: bool = False) -> list[float]:
    """95% CI of the mean of per-item scores: :func:`bootstrap_ci`, or, for 0/1 scores
    (``binary``: e.g. "is the shape named", a hit, averaged over subjects) at their bound
    (every item 0, or every item 1, where a bootstrap has zero width), the Wilson interval
    of that count over the items (:func:`~braindecode_kit.evaluate.binomial_ci`).

    Examples
    --------
    >>> [round(v, 4) for v in mean_ci([1.0] * 300, binary=True)]
    [0.9874, 1.0]
    """
    from .retrieval import binomial_ci

    v = np.asarray(values, np.float64)
    if binary and v.size and (np.all(v == 0.0) or np.all(v == 1.0)):
        return binomial_ci(float(v[0]), len(v))
    return bootstrap_ci(v, n_boot, seed=seed)


def caption_comparison(brain: dict[str, Any], captioner: dict[str, Any]) -> dict[str, Any]:
    """MindEye2's convention, named explicitly: ``brain_vs_references`` (captions from
    brain-decoded embeddings against the references), ``captioner_vs_references`` (the
    same captioner from the images' true embeddings) and ``brain_over_captioner`` (their
    ratio, per metric available in both).

    Parameters
    ----------
    brain, captioner : dict
        Two :func:`caption_metrics` results against the same references.
    """
    ratio = {}
    for m in ALL_METRICS:
        a, b = brain.get(m), captioner.get(m)
        if isinstance(a, float) and isinstance(b, float) and b != 0:
            ratio[m] = a / b
    strip = {"per_item"}
    return {"brain_vs_references": {k: v for k, v in brain.items() if k not in strip},
            "captioner_vs_references": {k: v for k, v in captioner.items() if k not in strip},
            "brain_over_captioner": ratio}
