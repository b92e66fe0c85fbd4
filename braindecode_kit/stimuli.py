"""StimulusSet: ``stimulus_id -> image (+ captions, + attribute columns)``.

A StimulusSet reads its images lazily (nothing is decoded until :meth:`StimulusSet.load_image`
asks for it, and recently used images are kept in a small LRU cache). It is built from a
folder of images with a table (:meth:`StimulusSet.from_folder`), from a COCO-style
captions JSON (:meth:`StimulusSet.from_coco`), or from the built-in world
(:func:`braindecode_kit.simulate.make_world`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._readers import read_json, reading
from ._utils import PathLike, hash_bytes, hash_file
from .splits import check_stimulus_ids

__all__ = ["StimulusSet", "IMAGE_EXTENSIONS"]

#: File name endings read as images by :meth:`StimulusSet.from_folder`.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

ImageSource = Callable[[str], Any]


class _LRU:
    """A tiny least-recently-used cache of decoded images, shared by subsets."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = int(maxsize)
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any | None:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return None

    def put(self, key: str, value: Any) -> None:
        if self.maxsize <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)


def _check_ids(ids: Sequence[Any], where: str) -> list[str]:
    ids = [str(i) for i in ids]
    if len(ids) == 0:
        raise ValueError(f"A StimulusSet needs at least one stimulus, but {where} gave none.")
    check_stimulus_ids(ids, f"The stimulus ids of {where}")
    seen: set[str] = set()
    dup: list[str] = []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    if dup:
        shown = ", ".join(repr(d) for d in dup[:10])
        more = f" (and {len(dup) - 10} more)" if len(dup) > 10 else ""
        raise ValueError(
            f"Stimulus ids must be unique, but {where} has {len(dup)} duplicated id(s): "
            f"{shown}{more}."
        )
    return ids


def _open_rgb(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"Stimulus image file not found: {str(path)!r}.") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(
            f"Could not read the stimulus image {str(path)!r}: expected an image file PIL can "
            f"decode, but got an unreadable file ({type(err).__name__}: {err})."
        ) from err


class StimulusSet:
    """A set of visual stimuli: ids, images (loaded lazily), captions and attributes.

    Parameters
    ----------
    ids : sequence of str
        Unique stimulus ids, in order.
    images : mapping of id -> path, or callable
        Where each image comes from: a mapping from id to an image file path, or a
        function ``f(id) -> PIL.Image.Image``.
    captions : mapping of id -> list of str | None
        Captions per stimulus (missing ids get an empty list).
    attributes : DataFrame | None
        One row per stimulus, indexed by id (extra rows are dropped; missing rows are an
        error). ``None`` gives an empty table indexed by the ids.
    fingerprints : callable | None
        ``f(id) -> str``, a content hash of the image. Default: the hash of the image
        file's bytes (path mapping) or of the decoded pixels (callable source).
    name : str
        A short name shown in the HTML view.
    cache_size : int
        How many decoded images to keep in memory.

    Notes
    -----
    A StimulusSet never mutates: :meth:`subset` returns a new set sharing the image
    source and the cache.
    """

    def __init__(
        self,
        ids: Sequence[str],
        images: Mapping[str, PathLike] | ImageSource,
        captions: Mapping[str, Sequence[str]] | None = None,
        attributes: pd.DataFrame | None = None,
        fingerprints: Callable[[str], str] | None = None,
        name: str = "stimuli",
        cache_size: int = 1024,
    ) -> None:
        ids = _check_ids(ids, "'ids'")
        self._ids = ids
        self._index = {i: k for k, i in enumerate(ids)}
        if callable(images):
            self._source: ImageSource = images
            self._paths: dict[str, Path] | None = None
        elif isinstance(images, Mapping):
            missing = [i for i in ids if i not in images]
            if missing:
                raise ValueError(
                    f"'images' must give an image for every id, but {len(missing)} id(s) have "
                    f"none, e.g. {missing[:5]}."
                )
            self._paths = {i: Path(images[i]) for i in ids}
            self._source = self._load_path
        else:
            raise TypeError(
                "'images' must be a mapping id -> path or a callable id -> PIL image, but got "
                f"{type(images).__name__}."
            )
        caps: dict[str, list[str]] = {}
        for i in ids:
            c = (captions or {}).get(i, [])
            if isinstance(c, str):
                c = [c]
            caps[i] = [str(x) for x in c]
        self._captions = caps
        if attributes is None:
            attributes = pd.DataFrame(index=pd.Index(ids, name="stimulus_id"))
        else:
            if not isinstance(attributes, pd.DataFrame):
                raise TypeError(
                    f"'attributes' must be a pandas DataFrame, got {type(attributes).__name__}."
                )
            attributes = attributes.copy()
            attributes.index = attributes.index.astype(str)
            if attributes.index.has_duplicates:
                dup = attributes.index[attributes.index.duplicated()].unique().tolist()
                raise ValueError(f"'attributes' has duplicated stimulus ids: {dup[:10]}.")
            missing = [i for i in ids if i not in attributes.index]
            if missing:
                raise ValueError(
                    f"'attributes' must have one row per stimulus id, but {len(missing)} id(s) "
                    f"have none, e.g. {missing[:5]}."
                )
            attributes = attributes.loc[ids]
            attributes.index.name = "stimulus_id"
        self._attributes = attributes
        self._fingerprint_fn = fingerprints
        self._fingerprints: dict[str, str] = {}
        self.name = str(name)
        self._cache = _LRU(cache_size)

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __contains__(self, stimulus_id: object) -> bool:
        return stimulus_id in self._index

    def __repr__(self) -> str:
        n_caps = sum(len(c) for c in self._captions.values())
        cols = list(self._attributes.columns)
        return (
            f"<StimulusSet {self.name!r} | {len(self)} stimuli, {n_caps} captions, "
            f"attributes: {cols[:8]}{'...' if len(cols) > 8 else ''}>"
        )

    @property
    def ids(self) -> list[str]:
        """The stimulus ids, in order (a copy)."""
        return list(self._ids)

    @property
    def attributes(self) -> pd.DataFrame:
        """Attribute table, one row per stimulus, indexed by stimulus id (a copy)."""
        return self._attributes.copy()

    @property
    def paths(self) -> dict[str, Path] | None:
        """Image file per id when the set reads files, else ``None``."""
        return None if self._paths is None else dict(self._paths)

    def _check_id(self, stimulus_id: str) -> str:
        sid = str(stimulus_id)
        if sid not in self._index:
            raise KeyError(
                f"Unknown stimulus id {sid!r}; this StimulusSet has {len(self)} ids "
                f"(e.g. {self._ids[:3]})."
            )
        return sid

    def _load_path(self, stimulus_id: str):
        assert self._paths is not None
        return _open_rgb(self._paths[stimulus_id])

    def load_image(self, stimulus_id: str):
        """The image of one stimulus as an RGB :class:`PIL.Image.Image`.

        Parameters
        ----------
        stimulus_id : str
            The id.

        Returns
        -------
        PIL.Image.Image
            A fresh RGB image (a copy: changing it does not change the set).

        Raises
        ------
        KeyError
            If the id is not in the set.
        FileNotFoundError, ValueError
            If the image file is missing or unreadable (the message names the path).
        """
        sid = self._check_id(stimulus_id)
        img = self._cache.get(sid)
        if img is None:
            img = self._source(sid)
            if img.mode != "RGB":
                img = img.convert("RGB")
            self._cache.put(sid, img)
        return img.copy()

    def to_array(self, ids: Iterable[str] | None = None, size: int | None = None) -> np.ndarray:
        """Images as one ``uint8`` array ``(n, h, w, 3)``.

        Parameters
        ----------
        ids : iterable of str | None
            Which stimuli (default: all, in order).
        size : int | None
            Resize every image to ``size x size`` (bicubic); needed when sizes differ.
        """
        from PIL import Image

        ids = self._ids if ids is None else [self._check_id(i) for i in ids]
        out = []
        for i in ids:
            img = self.load_image(i)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            out.append(np.asarray(img, dtype=np.uint8))
        shapes = {a.shape for a in out}
        if len(shapes) > 1:
            raise ValueError(
                f"Images have different shapes {sorted(shapes)[:4]}; pass 'size' to resize them."
            )
        return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)

    def captions(self, stimulus_id: str) -> list[str]:
        """The captions of one stimulus (possibly empty)."""
        return list(self._captions[self._check_id(stimulus_id)])

    def fingerprint(self, stimulus_id: str) -> str:
        """A content hash of one stimulus (its image and captions), for caches.

        Two stimuli with the same image bytes and captions share a fingerprint whatever
        their id; any change of pixels or captions changes it.
        """
        sid = self._check_id(stimulus_id)
        fp = self._fingerprints.get(sid)
        if fp is None:
            if self._fingerprint_fn is not None:
                image_hash = str(self._fingerprint_fn(sid))
            elif self._paths is not None:
                path = self._paths[sid]
                if not path.exists():
                    raise FileNotFoundError(f"Stimulus image file not found: {str(path)!r}.")
                image_hash = hash_file(path)
            else:
                img = self.load_image(sid)
                image_hash = hash_bytes(f"{img.size}{img.mode}".encode() + img.tobytes())
            caps = json.dumps(self._captions[sid])
            fp = hash_bytes(f"{image_hash}\n{caps}".encode())[:32]
            self._fingerprints[sid] = fp
        return fp

    # ------------------------------------------------------------------ new sets
    def subset(self, ids: Iterable[str]) -> StimulusSet:
        """A new StimulusSet with only ``ids`` (in the given order); shares the image cache.

        Raises
        ------
        KeyError
            Naming the ids that are not in this set.
        """
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in self._index]
        if missing:
            raise KeyError(
                f"{len(missing)} id(s) passed to subset() are not in this StimulusSet, "
                f"e.g. {missing[:5]}."
            )
        new = object.__new__(StimulusSet)
        new._ids = _check_ids(ids, "subset()")
        new._index = {i: k for k, i in enumerate(new._ids)}
        new._source = self._source
        new._paths = None if self._paths is None else {i: self._paths[i] for i in new._ids}
        new._captions = {i: self._captions[i] for i in new._ids}
        new._attributes = self._attributes.loc[new._ids].copy()
        new._fingerprint_fn = self._fingerprint_fn
        new._fingerprints = {i: self._fingerprints[i] for i in new._ids if i in self._fingerprints}
        new.name = self.name
        new._cache = self._cache
        return new

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_folder(
        cls,
        folder: PathLike,
        table: PathLike | pd.DataFrame | None = None,
        *,
        id_column: str = "stimulus_id",
        file_column: str = "file",
        caption_column: str | None = None,
        caption_sep: str = "|",
        name: str | None = None,
    ) -> StimulusSet:
        """Read a folder of images with an optional table.

        Parameters
        ----------
        folder : path
            The folder holding the images.
        table : path | DataFrame | None
            A CSV (``.csv``) or TSV (``.tsv``/``.txt``) file, or a DataFrame, with one row
            per stimulus and at least the columns ``id_column`` and ``file_column`` (a path
            relative to ``folder``). Captions come from ``caption_column`` (several captions
            separated by ``caption_sep``) and/or columns named ``caption_0``, ``caption_1``,
            ...; every other column becomes an attribute. ``None``: every image file in
            ``folder`` (sorted), with the file name without its extension as id.
        id_column, file_column : str
            Names of the id and file columns.
        caption_column : str | None
            Column with captions; default ``"captions"`` or ``"caption"`` if present.
        caption_sep : str
            Separator between several captions in one cell.
        name : str | None
            Name shown in the HTML view (default: the folder's name).

        Returns
        -------
        StimulusSet

        Raises
        ------
        FileNotFoundError
            If the folder, the table or an image file named in it is missing (the message
            names the path).
        ValueError
            If a required column is missing, ids are duplicated or the folder has no images.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"'folder' must be an existing folder, got {str(folder)!r}.")
        name = name or folder.name
        if table is None:
            files = sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not files:
                raise ValueError(
                    f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found in {str(folder)!r}."
                )
            ids = [p.stem for p in files]
            _check_ids(ids, f"the file names in {str(folder)!r}")
            return cls(ids, dict(zip(ids, files)), name=name)

        if isinstance(table, pd.DataFrame):
            df = table.copy()
            where = "the table"
        else:
            tpath = Path(table)
            if not tpath.is_absolute() and not tpath.exists() and (folder / tpath).exists():
                tpath = folder / tpath
            if not tpath.exists():
                raise FileNotFoundError(f"Stimulus table not found: {str(tpath)!r}.")
            sep = "\t" if tpath.suffix.lower() in (".tsv", ".txt") else ","
            with reading(tpath, "stimulus table", "a table with a header row"):
                df = pd.read_csv(tpath, sep=sep, dtype={id_column: str},
                                 keep_default_na=False)
            where = repr(str(tpath))
        missing_cols = [c for c in (id_column, file_column) if c not in df.columns]
        if missing_cols:
            raise ValueError(
                f"The stimulus table {where} must have the columns {[id_column, file_column]}, "
                f"but {missing_cols} are missing (found columns: {list(df.columns)})."
            )
        ids = _check_ids(df[id_column].astype(str).tolist(), f"the table {where}")
        paths = {}
        for sid, f in zip(ids, df[file_column].astype(str)):
            p = Path(f)
            p = p if p.is_absolute() else folder / p
            paths[sid] = p
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image file(s) named in the table {where} do not exist, e.g. "
                f"{missing[:3]}."
            )
        if caption_column is None:
            caption_column = next((c for c in ("captions", "caption") if c in df.columns), None)
        elif caption_column not in df.columns:
            raise ValueError(
                f"'caption_column' {caption_column!r} is not a column of the table {where} "
                f"(found columns: {list(df.columns)})."
            )
        numbered = sorted(
            (c for c in df.columns if str(c).startswith("caption_") and str(c)[8:].isdigit()),
            key=lambda c: int(str(c)[8:]),
        )
        captions: dict[str, list[str]] = {}
        for k, sid in enumerate(ids):
            caps: list[str] = []
            if caption_column is not None:
                cell = df[caption_column].iloc[k]
                if isinstance(cell, str) and cell.strip():
                    caps += [c.strip() for c in cell.split(caption_sep) if c.strip()]
            for c in numbered:
                cell = df[c].iloc[k]
                if isinstance(cell, str) and cell.strip():
                    caps.append(cell.strip())
            captions[sid] = caps
        drop = [id_column] + ([caption_column] if caption_column else []) + numbered
        attrs = df.drop(columns=drop)
        attrs.index = pd.Index(ids, name="stimulus_id")
        return cls(ids, paths, captions=captions, attributes=attrs, name=name)

    @classmethod
    def from_coco(
        cls,
        images_dir: PathLike,
        captions_json: PathLike,
        *,
        name: str | None = None,
    ) -> StimulusSet:
        """Read COCO-style captions (``{"images": [...], "annotations": [...]}``).

        Parameters
        ----------
        images_dir : path
            Folder with the image files named in ``images[*].file_name``.
        captions_json : path
            A COCO captions JSON: ``images`` entries with ``id`` and ``file_name``;
            ``annotations`` entries with ``image_id`` and ``caption``.
        name : str | None
            Name shown in the HTML view.

        Returns
        -------
        StimulusSet
            Ids are the COCO image ids as strings; attributes hold ``file_name`` and, when
            present, ``width``, ``height``, ``coco_url``.
        """
        images_dir = Path(images_dir)
        captions_json = Path(captions_json)
        if not images_dir.is_dir():
            raise FileNotFoundError(
                f"'images_dir' must be an existing folder, got {str(images_dir)!r}."
            )
        if not captions_json.is_file():
            raise FileNotFoundError(f"COCO captions file not found: {str(captions_json)!r}.")
        doc = read_json(captions_json, "COCO captions file", expected_type=None)
        if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
            found = list(doc) if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(
                f"A COCO captions JSON must have the keys 'images' and 'annotations', but "
                f"{str(captions_json)!r} has {found}."
            )
        rows = []
        for k, im in enumerate(doc["images"]):
            if "id" not in im or "file_name" not in im:
                raise ValueError(
                    f"images[{k}] in {str(captions_json)!r} must have 'id' and 'file_name', "
                    f"got keys {sorted(im)}."
                )
            rows.append(im)
        ids = _check_ids([str(im["id"]) for im in rows], f"'images' of {str(captions_json)!r}")
        paths = {sid: images_dir / im["file_name"] for sid, im in zip(ids, rows)}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image file(s) named in {str(captions_json)!r} do not exist, "
                f"e.g. {missing[:3]}."
            )
        captions: dict[str, list[str]] = {sid: [] for sid in ids}
        for k, ann in enumerate(doc["annotations"]):
            if "image_id" not in ann or "caption" not in ann:
                raise ValueError(
                    f"annotations[{k}] in {str(captions_json)!r} must have 'image_id' and "
                    f"'caption', got keys {sorted(ann)}."
                )
            sid = str(ann["image_id"])
            if sid in captions:
                captions[sid].append(str(ann["caption"]).strip())
        cols = [c for c in ("file_name", "width", "height", "coco_url") if c in rows[0]]
        attrs = pd.DataFrame([{c: im.get(c) for c in cols} for im in rows], index=ids)
        return cls(
            ids, paths, captions=captions, attributes=attrs, name=name or captions_json.stem
        )

    # ------------------------------------------------------------------ notebook view
    def _repr_html_(self, n: int = 24, thumb: int = 64) -> str:
        cells = []
        for sid in self._ids[:n]:
            try:
                img = self.load_image(sid)
                img.thumbnail((thumb, thumb))
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
                pic = f'<img src="{src}" width="{thumb}" style="image-rendering:auto"/>'
            except (OSError, ValueError) as err:
                pic = f"<div style='color:#b00'>unreadable: {html.escape(str(err)[:80])}</div>"
            caps = self._captions[sid]
            title = html.escape(caps[0]) if caps else ""
            cells.append(
                f"<figure style='display:inline-block;margin:3px;width:{thumb + 16}px;"
                f"vertical-align:top;text-align:center' title='{title}'>{pic}"
                f"<figcaption style='font-size:9px;overflow:hidden'>{html.escape(sid)}"
                "</figcaption></figure>"
            )
        more = f"<p>... and {len(self) - n} more</p>" if len(self) > n else ""
        cols = ", ".join(html.escape(str(c)) for c in self._attributes.columns)
        return (
            f"<div><b>StimulusSet</b> {html.escape(self.name)}: {len(self)} stimuli"
            f"{'; attributes: ' + cols if cols else ''}<br/>{''.join(cells)}{more}</div>"
        )
