"""CLIP targets of a stimulus set, and how they are computed and cached.

:class:`Targets` holds, per stimulus id, the pooled image embedding, optionally the text
embedding (the mean of its captions'), the image tower's tokens and the low-level target
(the image downsampled to a blurry ``3 x s x s`` array, :func:`blurry_images`). :func:`embed_stimuli`
makes them with an :class:`~braindecode_kit.embed.Embedder` and keeps every row in an
on-disk cache keyed by the model's identity, the stimulus' content fingerprint and the
preprocessing, so a second run embeds nothing.
"""

from __future__ import annotations

import html
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import UnknownKeyError, check_finite
from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike, atomic_dir, atomic_path, hash_jsonable
from ..splits import check_stimulus_ids

__all__ = ["Targets", "blurry_images", "embed_stimuli", "default_cache_dir"]

_ARRAYS = ("image", "text", "tokens", "blurry")
_FORMAT = "braindecode_kit.targets/1"
#: Version of the text-target recipe (mean of normalised caption embeddings); enters keys.
_TEXT_RECIPE = "mean-of-normalised-captions/1"


# --------------------------------------------------------------------------- Targets
class Targets:
    """CLIP embeddings per stimulus id.

    Parameters
    ----------
    ids : list of str
        Unique stimulus ids, one per row.
    image : ndarray, shape (n, d)
        Pooled image embeddings (L2-normalised rows when made by :func:`embed_stimuli`).
    text : ndarray, shape (n, d) | None
        Text embeddings: the re-normalised mean of the stimulus' normalised caption
        embeddings.
    tokens : ndarray, shape (n, t, w) | None
        The image tower's final-layer tokens.
    blurry : ndarray, shape (n, 3, s, s) | None
        The low-level target: each image downsampled to ``s x s``, RGB in ``[0, 1]``.
    meta : dict | None
        JSON-serialisable description (model identity, recipe, ...).

    Notes
    -----
    Arrays are stored as float32. :meth:`loc` looks rows up by id (ids may repeat, as
    with one id per trial), so ``targets.loc(trialset.stimulus_ids).image`` lines the
    embeddings up with the trials.
    """

    def __init__(
        self,
        ids: Sequence[str],
        image: np.ndarray,
        text: np.ndarray | None = None,
        tokens: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        blurry: np.ndarray | None = None,
    ) -> None:
        ids = [str(i) for i in ids]
        check_stimulus_ids(ids, "'ids'")
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError(f"'image' must be a 2-D array (n_stimuli, dim), but got shape "
                             f"{image.shape}.")
        if image.shape[0] != len(ids):
            raise ValueError(f"'image' must have one row per id: {len(ids)} ids but "
                             f"{image.shape[0]} rows.")
        index: dict[str, int] = {}
        for k, i in enumerate(ids):
            if i in index:
                dup = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) < 5000 else [i]
                raise ValueError(f"'ids' must be unique, but {dup[:5]} occur more than once.")
            index[i] = k
        check_finite("'image'", image)
        if text is not None:
            text = np.asarray(text, dtype=np.float32)
            if text.ndim != 2 or text.shape[0] != len(ids):
                raise ValueError(f"'text' must have shape ({len(ids)}, dim), but got "
                                 f"{text.shape}.")
            check_finite("'text'", text)
        if tokens is not None:
            tokens = np.asarray(tokens, dtype=np.float32)
            if tokens.ndim != 3 or tokens.shape[0] != len(ids):
                raise ValueError(f"'tokens' must have shape ({len(ids)}, n_tokens, width), but "
                                 f"got {tokens.shape}.")
        if blurry is not None:
            blurry = np.asarray(blurry, dtype=np.float32)
            if blurry.ndim != 4 or blurry.shape[:2] != (len(ids), 3):
                raise ValueError(f"'blurry' must have shape ({len(ids)}, 3, size, size), but "
                                 f"got {blurry.shape}.")
            check_finite("'blurry'", blurry)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"'meta' must be a dict or None, but got {type(meta).__name__}.")
        self.ids = ids
        self.image = image
        self.text = text
        self.tokens = tokens
        self.blurry = blurry
        self.meta = dict(meta or {})
        self._index = index

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, stimulus_id: object) -> bool:
        return stimulus_id in self._index

    @property
    def embed_dim(self) -> int:
        """Dimension of the image embeddings."""
        return int(self.image.shape[1])

    def positions(self, ids: Iterable[str] | str) -> np.ndarray:
        """Row numbers of ``ids`` (repeats allowed).

        Raises
        ------
        KeyError
            Naming the first missing ids and how many are missing.
        """
        if isinstance(ids, str):
            ids = [ids]
        index = self._index
        try:
            return np.fromiter((index[i] for i in ids), dtype=np.intp)
        except (KeyError, TypeError):
            ids = [str(i) for i in ids]
            missing = list(dict.fromkeys(i for i in ids if i not in index))
            if not missing:
                return np.fromiter((index[i] for i in ids), dtype=np.intp, count=len(ids))
            raise UnknownKeyError(
                f"{len(missing)} stimulus id(s) have no targets, e.g. {missing[:5]} (these "
                f"targets hold {len(self)} ids, e.g. {self.ids[:3]})."
            ) from None

    def loc(self, ids: Iterable[str] | str) -> Targets:
        """Targets for ``ids``, rows in that order; ids may repeat (one per trial).

        Parameters
        ----------
        ids : iterable of str
            Stimulus ids (a single str is one id).

        Returns
        -------
        Targets
            A new Targets whose ``ids`` are ``ids`` (repeats kept), so its ``ids`` may not
            be unique; its arrays are copies.

        Raises
        ------
        KeyError
            If some ids have no targets (the message names the first few and the count).
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        pos = self.positions(ids)
        new = object.__new__(Targets)
        new.ids = [str(i) for i in ids]
        new.image = np.take(self.image, pos, axis=0)
        new.text = None if self.text is None else np.take(self.text, pos, axis=0)
        new.tokens = None if self.tokens is None else np.take(self.tokens, pos, axis=0)
        new.blurry = None if self.blurry is None else np.take(self.blurry, pos, axis=0)
        new.meta = dict(self.meta)
        new._index = {i: k for k, i in enumerate(new.ids)}  # last row of a repeated id
        return new

    # ------------------------------------------------------------------ I/O
    def save(self, path: PathLike) -> Path:
        """Write ``targets.safetensors`` + ``targets.json`` into the folder ``path``
        (replaced atomically)."""
        from safetensors.numpy import save_file

        path = Path(path)
        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in _ARRAYS
                  if getattr(self, k) is not None}
        with atomic_dir(path, kind="targets",
                        produces={"targets.safetensors", "targets.json"}) as tmp:
            save_file(arrays, str(tmp / "targets.safetensors"), metadata={"format": _FORMAT})
            doc = {"format": _FORMAT, "ids": self.ids, "meta": self.meta,
                   "arrays": {k: list(v.shape) for k, v in arrays.items()}}
            (tmp / "targets.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: PathLike) -> Targets:
        """Read Targets written by :meth:`save` (safetensors: nothing is unpickled).

        Raises
        ------
        FileNotFoundError
            If ``targets.json`` or ``targets.safetensors`` is missing.
        ValueError
            If either is corrupt or they disagree (the message names the file).
        """
        from .._readers import CorruptFileError, check_keys, read_json, read_safetensors

        path = Path(path)
        doc_path, arr_path = path / "targets.json", path / "targets.safetensors"
        if not doc_path.is_file() or not arr_path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is not a saved Targets folder: expected targets.json and "
                f"targets.safetensors in it."
            )
        doc = read_json(doc_path, "targets description")
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{str(doc_path)!r} has format {doc.get('format')!r}, expected "
                             f"{_FORMAT!r}.")
        check_keys(doc, ("ids", "arrays"), doc_path, "targets description")
        arrays = read_safetensors(arr_path, "targets embeddings", framework="numpy")
        if "image" not in arrays:
            raise CorruptFileError(f"The targets embeddings {str(arr_path)!r} have no 'image' "
                                   f"array (found {sorted(arrays)}).")
        if list(arrays["image"].shape) != doc["arrays"].get("image"):
            raise ValueError(f"{str(path)!r} is inconsistent: targets.json and "
                             "targets.safetensors disagree on the image array's shape.")
        return cls(doc["ids"], arrays["image"], arrays.get("text"), arrays.get("tokens"),
                   doc.get("meta") or {}, blurry=arrays.get("blurry"))

    # ------------------------------------------------------------------ views
    def __repr__(self) -> str:
        parts = [f"image {self.image.shape[1]}"]
        if self.text is not None:
            parts.append(f"text {self.text.shape[1]}")
        if self.tokens is not None:
            parts.append(f"tokens {self.tokens.shape[1]}x{self.tokens.shape[2]}")
        if self.blurry is not None:
            parts.append(f"blurry {self.blurry.shape[2]}x{self.blurry.shape[3]}")
        who = self.meta.get("identity", "")
        return f"<Targets | {len(self)} stimuli, {', '.join(parts)}{' | ' + who if who else ''}>"

    def _repr_html_(self) -> str:
        rows = [("stimuli", len(self)), ("image", f"{self.image.shape}"),
                ("text", "—" if self.text is None else f"{self.text.shape}"),
                ("tokens", "—" if self.tokens is None else f"{self.tokens.shape}"),
                ("blurry", "—" if self.blurry is None else f"{self.blurry.shape}")]
        rows += [(k, v) for k, v in self.meta.items() if isinstance(v, (str, int, float))]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        ids = ", ".join(html.escape(i) for i in self.ids[:5])
        more = ", ..." if len(self) > 5 else ""
        return (f"<div><b>Targets</b><table>{body}</table>"
                f"<small>ids: {ids}{more}</small></div>")


# --------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$BRAINDECODE_KIT_CACHE/embed`` or ``~/.cache/braindecode_kit/embed``."""
    root = os.environ.get("BRAINDECODE_KIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "braindecode_kit"
    return base / "embed"


class _ShardCache:
    """Rows keyed by stimulus fingerprint, in safetensors shards of one folder.

    Each write adds a shard ``<time>-<uuid>.safetensors`` holding the array ``data`` and
    the rows' fingerprints in its metadata, written atomically; readers index every shard.
    """

    max_shard_bytes = 1 << 28

    def __init__(self, folder: Path, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = key

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.safetensors")) if self.folder.is_dir() else []

    def get(self, fingerprints: list[str]) -> dict[str, np.ndarray]:
        from safetensors import safe_open

        wanted = set(fingerprints)
        found: dict[str, np.ndarray] = {}
        for shard in self._shards():
            try:
                with safe_open(str(shard), framework="numpy") as f:
                    fps = json.loads((f.metadata() or {}).get("fingerprints", "[]"))
                    rows = [k for k, fp in enumerate(fps) if fp in wanted and fp not in found]
                    if not rows:
                        continue
                    data = f.get_tensor("data")
            except (OSError, ValueError, json.JSONDecodeError) as err:  # a broken shard
                logger.warning("embedding cache: ignoring unreadable shard %s (%s)", shard, err)
                continue
            for k in rows:
                found[fps[k]] = data[k]
        return found

    def put(self, fingerprints: list[str], data: np.ndarray) -> None:
        from safetensors.numpy import save_file

        if not fingerprints:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.exists():
            with atomic_path(key_file) as tmp:
                tmp.write_text(json.dumps(self.key, indent=1, sort_keys=True) + "\n")
        row_bytes = max(1, data[0].nbytes)
        step = max(1, self.max_shard_bytes // row_bytes)
        for s in range(0, len(fingerprints), step):
            name = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.safetensors"
            with atomic_path(self.folder / name) as tmp:
                save_file({"data": np.ascontiguousarray(data[s:s + step], dtype=np.float32)},
                          str(tmp), metadata={"fingerprints": json.dumps(fingerprints[s:s + step])})


def _cache_for(root: Path | None, embedder, kind: str) -> _ShardCache | None:
    if root is None:
        return None
    key = {"identity": embedder.identity, "kind": kind, "precision": embedder.precision}
    if kind in ("image", "tokens"):
        key["preprocessing"] = embedder.preprocessing
    if kind == "text":
        key["recipe"] = _TEXT_RECIPE
    return _ShardCache(root / embedder.identity / f"{kind}-{hash_jsonable(key)[:12]}", key)


def _cached_rows(cache, fingerprints: list[str], compute, what: str) -> np.ndarray:
    """Rows for ``fingerprints`` from the cache, computing (and storing) the missing ones.

    ``compute(positions) -> array`` embeds the stimuli at those positions.
    """
    found = cache.get(fingerprints) if cache is not None else {}
    first: dict[str, int] = {}
    for k, fp in enumerate(fingerprints):
        if fp not in found and fp not in first:
            first[fp] = k
    logger.info("%s: %d of %d stimuli cached, embedding %d", what,
                len(fingerprints) - sum(fp not in found for fp in fingerprints),
                len(fingerprints), len(first))
    if first:
        new = compute(list(first.values()))
        new_fps = list(first)
        if cache is not None:
            cache.put(new_fps, new)
        found.update(zip(new_fps, new))
    return np.stack([found[fp] for fp in fingerprints]).astype(np.float32, copy=False)


def _caption_means(embedder, stimuli, ids: list[str]) -> np.ndarray:
    """Per stimulus: the re-normalised mean of its L2-normalised caption embeddings."""
    caps = [stimuli.captions(i) for i in ids]
    unique = list(dict.fromkeys(c for cs in caps for c in cs))
    T = embedder.encode_texts(unique)
    where = {c: k for k, c in enumerate(unique)}
    out = np.stack([T[[where[c] for c in cs]].mean(0) for cs in caps])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@fill_doc
@verbose
def embed_stimuli(
    stimuli,
    embedder=None,
    *,
    tokens: bool = False,
    text: bool = True,
    blurry: int | None = None,
    cache_dir: PathLike | None | bool = None,
    verbose: bool | str | int | None = None,
) -> Targets:
    """Embed a StimulusSet with CLIP, reusing every row already in the on-disk cache.

    Parameters
    ----------
    stimuli : StimulusSet
        The stimuli (rows follow ``stimuli.ids``).
    embedder : Embedder | None
        The model (default: ``Embedder()``, the built-in CLIP).
    tokens : bool
        Also compute the image tower's tokens (:meth:`Embedder.encode_image_tokens`).
    text : bool
        Also compute text targets: per stimulus, the mean of its L2-normalised caption
        embeddings, re-normalised. If no stimulus has captions the text targets are
        skipped (with a warning).
    blurry : int | None
        Also compute the low-level targets: each image downsampled to ``blurry x
        blurry`` (:func:`blurry_images`); None skips them.
    cache_dir : path | None | False
        Cache folder; ``None`` uses ``embedder.cache_dir`` and else
        :func:`default_cache_dir`; ``False`` disables caching. Rows are keyed by the
        embedder's :attr:`~Embedder.identity`, its precision and preprocessing, and each
        stimulus' :meth:`~braindecode_kit.StimulusSet.fingerprint` (image and captions), so
        changed pixels or weights never reuse stale rows.
    %(verbose)s

    Returns
    -------
    Targets
        With ``meta`` naming the embedder (``identity``, ``model``, ``embed_dim``, ...).

    Raises
    ------
    ValueError
        If ``text=True`` and only some stimuli have captions (the message names them).
    """
    from .embedder import Embedder

    if not (hasattr(stimuli, "ids") and hasattr(stimuli, "fingerprint")):
        raise TypeError(f"'stimuli' must be a StimulusSet, but got {type(stimuli).__name__}.")
    if embedder is None:
        embedder = Embedder()
    elif not isinstance(embedder, Embedder):
        raise TypeError(f"'embedder' must be an Embedder or None, but got "
                        f"{type(embedder).__name__}.")
    if cache_dir is False:
        root = None
    elif cache_dir is None or cache_dir is True:
        root = embedder.cache_dir or default_cache_dir()
    else:
        root = Path(cache_dir)
    ids = stimuli.ids
    fps = [stimuli.fingerprint(i) for i in ids]

    def sub(positions: list[int]):
        return stimuli.subset([ids[k] for k in positions])

    image = _cached_rows(_cache_for(root, embedder, "image"), fps,
                         lambda pos: embedder.encode_images(sub(pos)), "image embeddings")
    text_arr = None
    if text:
        n_caps = np.array([len(stimuli.captions(i)) for i in ids])
        if (n_caps == 0).all():
            logger.warning("embed_stimuli: no stimulus has captions; no text targets.")
        elif (n_caps == 0).any():
            bare = [ids[k] for k in np.flatnonzero(n_caps == 0)]
            raise ValueError(
                f"text=True needs captions for every stimulus, but {len(bare)} stimuli have "
                f"none, e.g. {bare[:5]}; pass text=False or add captions."
            )
        else:
            text_arr = _cached_rows(
                _cache_for(root, embedder, "text"), fps,
                lambda pos: _caption_means(embedder, stimuli, [ids[k] for k in pos]),
                "text embeddings")
    tok_arr = None
    if tokens:
        tok_arr = _cached_rows(_cache_for(root, embedder, "tokens"), fps,
                               lambda pos: embedder.encode_image_tokens(sub(pos)),
                               "image tokens")
    meta = {
        "identity": embedder.identity,
        "model": embedder.model,
        "pretrained": embedder.pretrained,
        "precision": embedder.precision,
        "embed_dim": int(image.shape[1]),
        "image": "pooled image embedding, L2-normalised",
    }
    if text_arr is not None:
        meta["text"] = f"{_TEXT_RECIPE}: mean of L2-normalised caption embeddings, re-normalised"
    if tok_arr is not None:
        meta["tokens"] = "final-layer image tokens (see Embedder.encode_image_tokens)"
    blurry_arr = None
    if blurry is not None:
        blurry_arr = blurry_images(stimuli, blurry)
        meta["blurry"] = f"image downsampled to {int(blurry)}x{int(blurry)} (area), RGB in [0, 1]"
    return Targets(ids, image, text_arr, tok_arr, meta, blurry=blurry_arr)


def blurry_images(stimuli, size: int) -> np.ndarray:
    """The low-level targets: each image of ``stimuli`` (a StimulusSet, rows in its ids'
    order, or a uint8 array ``(n, H, W, 3)``) downsampled to ``size x size`` by area
    averaging (PIL ``BOX``), as float32 ``(n, 3, size, size)`` RGB in ``[0, 1]``."""
    from PIL import Image

    from .._checks import check_positive_int

    size = check_positive_int("blurry", size)
    if isinstance(stimuli, np.ndarray):
        images = [Image.fromarray(a) for a in stimuli]
    else:
        images = [stimuli.load_image(i).convert("RGB") for i in stimuli.ids]
    out = np.stack([np.asarray(im.resize((size, size), Image.BOX), dtype=np.float32)
                    for im in images]) / 255.0
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
