"""The CLIP embedder: pooled image embeddings, image tokens and text embeddings.

:class:`Embedder` wraps an open_clip model — the package's own built-in CLIP
(``model="builtin"``) or any open_clip architecture with weights from a tag or a local
safetensors checkpoint — behind three batched calls: :meth:`Embedder.encode_images`,
:meth:`Embedder.encode_texts` and :meth:`Embedder.encode_image_tokens`. Everything runs
offline; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_device, check_option
from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._utils import PathLike, hash_file

__all__ = ["Embedder", "PRECISIONS"]

#: Allowed values of ``Embedder(precision=...)``.
PRECISIONS = ("fp32", "fp16", "bf16")

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so a big checkpoint is read once."""
    real = path.resolve()
    if real.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", real.name):
        return real.name  # a Hugging Face cache blob is named by its content's sha256
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = hash_file(path)
    return _FILE_HASHES[key]


def _state_dict_digest(model) -> str:
    """sha256 over a model's parameters and buffers (names, dtypes, shapes and bytes)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _is_stimulus_set(obj: Any) -> bool:
    return hasattr(obj, "load_image") and hasattr(obj, "ids") and hasattr(obj, "fingerprint")


def _looks_like_path(value: str) -> bool:
    return (os.sep in value or "/" in value or value.startswith(".") or value.startswith("~")
            or Path(value).suffix.lower() in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"))


@fill_doc
class Embedder:
    """A CLIP model that turns images and texts into L2-normalised embeddings.

    Parameters
    ----------
    model : str
        ``"builtin"`` for the package's built-in CLIP (shipped in ``data/``), or an
        open_clip model name (``"ViT-B-32"``, ``"ViT-bigG-14"``, or any name registered
        with :func:`open_clip.add_model_config`).
    pretrained : str | None
        For ``"builtin"``: a folder holding built-in CLIP files (``builtin_clip.json``,
        ``builtin_clip_vocab.json``, ``builtin_clip.safetensors``) instead of the shipped
        ones. For an open_clip model: a pretrained tag (``"laion2b_s39b_b160k"``; needs the
        weights in the local Hugging Face cache, as nothing is downloaded offline) or the
        path of a local safetensors checkpoint. ``None`` with an open_clip model gives a
        randomly initialised model.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    cache_dir : path | None
        Default on-disk cache folder of :func:`~braindecode_kit.embed.embed_stimuli`.
    batch_size : int
        Images or texts per forward pass.
    precision : {"fp32", "fp16", "bf16"}
        Weights and inputs dtype; outputs are always float32.
    %(verbose)s

    Attributes
    ----------
    model_name : str
        The resolved model name (``"builtin_clip"`` for the built-in CLIP).
    embed_dim : int
        Dimension of image and text embeddings.
    identity : str
        ``"<model name>@<12 hex digits>"``: a hash of the weights' content (and the
        model's config and tokenizer where they are files), the cache key of the model.

    Examples
    --------
    >>> from braindecode_kit.embed import Embedder
    >>> from braindecode_kit.simulate import make_world
    >>> emb = Embedder()  # the built-in CLIP
    >>> X = emb.encode_images(make_world(8, seed=1))  # (8, 128), unit rows
    >>> T = emb.encode_texts(["a red star", "a blue circle"])  # (2, 128)
    """

    def __init__(
        self,
        model: str = "builtin",
        pretrained: str | None = None,
        device: str = "cpu",
        cache_dir: PathLike | None = None,
        batch_size: int = 256,
        precision: str = "fp32",
        verbose: bool | str | int | None = None,
    ) -> None:
        self._load(model, pretrained, device, cache_dir, batch_size, precision, verbose=verbose)

    # ------------------------------------------------------------------ loading
    @verbose
    def _load(self, model, pretrained, device, cache_dir, batch_size, precision, *,
              verbose=None) -> None:
        import torch

        if not isinstance(model, str) or not model:
            raise TypeError(f"'model' must be a non-empty str (\"builtin\" or an open_clip model "
                            f"name), but got {model!r}.")
        if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
            raise TypeError(f"'pretrained' must be a str, a path or None, but got "
                            f"{type(pretrained).__name__}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"'batch_size' must be a positive int, but got {batch_size!r}.")
        check_option("precision", precision, PRECISIONS)
        dev = check_device(device)

        self.model = model
        self.pretrained = None if pretrained is None else str(pretrained)
        self.device = dev
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.batch_size = int(batch_size)
        self.precision = precision
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16,
                       "bf16": torch.bfloat16}[precision]

        if model == "builtin":
            clip, preprocess, tokenizer, digest = self._load_builtin(self.pretrained)
            self.model_name = "builtin_clip"
        else:
            clip, preprocess, tokenizer, digest = self._load_open_clip(model, self.pretrained)
            self.model_name = model
        clip.eval()
        clip.to(device=dev, dtype=self._dtype)
        for p in clip.parameters():
            p.requires_grad_(False)
        self.clip = clip
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self._digest = digest
        logger.info("Embedder %s on %s (%s)", self.model_name, self.device, precision)

    def _load_builtin(self, pretrained: str | None):
        from .builtin import CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, create_builtin_clip

        if pretrained is None:
            from .._resources import data_dir

            folder = data_dir()
        else:
            folder = Path(pretrained).expanduser()
            if folder.is_file() and folder.name == WEIGHTS_FILE:
                folder = folder.parent
            if not folder.is_dir():
                raise FileNotFoundError(
                    "For model='builtin', 'pretrained' must be None (the shipped weights) or a "
                    f"folder holding {CONFIG_FILE}, {VOCAB_FILE} and {WEIGHTS_FILE}, but "
                    f"{str(folder)!r} is not a folder."
                )
        missing = [f for f in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"The built-in CLIP folder {str(folder)!r} lacks {missing}. Train it with "
                f"`braindecode-kit train-builtin clip --out {folder}`."
            )
        model, preprocess, tokenizer = create_builtin_clip(folder, pretrained=True)
        h = hashlib.sha256()
        for f in (CONFIG_FILE, VOCAB_FILE):  # JSON content, not formatting
            h.update(json.dumps(json.loads((folder / f).read_text()), sort_keys=True).encode())
        h.update(_file_digest(folder / WEIGHTS_FILE).encode())
        return model, preprocess, tokenizer, h.hexdigest()

    def _load_open_clip(self, name: str, pretrained: str | None):
        import open_clip

        from .builtin import check_safetensors

        hub = name.startswith("hf-hub:")
        known = set(open_clip.list_models())
        if name not in known and not hub:
            close = [m for m in sorted(known) if name.lower()[:5] in m.lower()][:8]
            raise ValueError(
                f"Invalid value for the 'model' parameter: expected \"builtin\" or an open_clip "
                f"model name, but got {name!r}"
                + (f" (close names: {close})" if close else "")
                + "; open_clip.list_models() lists them and open_clip.add_model_config "
                "registers a new one."
            )
        if pretrained is not None and not hub and (Path(pretrained).expanduser().exists()
                                                   or _looks_like_path(pretrained)):
            path = Path(pretrained).expanduser()
            if path.is_dir():
                files = sorted(path.glob("*.safetensors"))
                if len(files) != 1:
                    raise FileNotFoundError(
                        f"'pretrained' folder {str(path)!r} must hold exactly one .safetensors "
                        f"checkpoint, but it holds {len(files)}."
                    )
                path = files[0]
            check_safetensors(path)  # refuses pickles before anything reads them
            model, preprocess, tokenizer = self._create_from_file(name, path)
            digest = hashlib.sha256(f"{name}\n{_file_digest(path)}".encode()).hexdigest()
            return model, preprocess, tokenizer, digest

        weights = None
        if hub or pretrained is not None:
            if not hub:
                tags = open_clip.list_pretrained_tags_by_model(name)
                if pretrained not in tags:
                    raise ValueError(
                        f"Invalid value for the 'pretrained' parameter: {pretrained!r} is neither "
                        f"a local checkpoint file nor a pretrained tag of {name!r} (its tags: "
                        f"{tags})."
                    )
            # where open_clip will read the weights from (the local Hugging Face cache when
            # offline); checked to be safetensors before open_clip opens it
            weights = Path(self._resolve_hub_weights(name, pretrained))
            try:
                check_safetensors(weights)
            except ValueError as err:
                raise ValueError(
                    f"The weights of open_clip model {name!r} (pretrained={pretrained!r}) resolve "
                    f"to {str(weights)!r}, which is not a safetensors file; pickled checkpoints "
                    "are refused. Convert it with safetensors.torch.save_file and pass its path "
                    "as 'pretrained'."
                ) from err
        kwargs = {} if hub or pretrained is None else {"pretrained": pretrained}
        model, _, preprocess = open_clip.create_model_and_transforms(name, **kwargs)
        tokenizer = open_clip.get_tokenizer(name)
        if weights is None:
            logger.warning("Embedder(%r, pretrained=None): a randomly initialised model.", name)
            content = _state_dict_digest(model)
        else:
            content = _file_digest(weights)
        digest = hashlib.sha256(f"{name}\n{content}".encode()).hexdigest()
        return model, preprocess, tokenizer, digest

    @staticmethod
    def _resolve_hub_weights(name: str, pretrained: str | None) -> str:
        """The local file of a tag's (or an ``hf-hub:`` model's) weights, as open_clip finds
        it; a clear error when it is neither cached nor downloadable."""
        import open_clip
        from open_clip import pretrained as oc_pretrained

        try:
            if name.startswith("hf-hub:"):
                return oc_pretrained.download_pretrained_from_hf(name[len("hf-hub:"):])
            path = oc_pretrained.download_pretrained(
                open_clip.get_pretrained_cfg(name, pretrained))
            if not path:
                raise FileNotFoundError("the tag names no weights file")
            return path
        except Exception as err:
            offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
            how = "HF_HUB_OFFLINE is set, so" if offline else "they could not be fetched and"
            raise RuntimeError(
                f"Could not load the weights of open_clip model {name!r} with pretrained="
                f"{pretrained!r}: {how} weights cannot be downloaded offline and they are not in "
                "the local Hugging Face cache. Pass pretrained=<path of a local .safetensors "
                f"checkpoint> instead. ({type(err).__name__}: {err})"
            ) from err

    @staticmethod
    def _create_from_file(name: str, path: Path):
        """open_clip model + transforms + tokenizer with weights from a safetensors file."""
        import tempfile

        import open_clip

        if path.suffix == ".safetensors":
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=str(path))
        else:  # open_clip picks its reader by suffix: give it a .safetensors name
            with tempfile.TemporaryDirectory() as tmp:
                link = Path(tmp) / "weights.safetensors"
                try:
                    link.symlink_to(path.resolve())
                except OSError:
                    import shutil

                    shutil.copyfile(path, link)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=str(link))
        return model, preprocess, open_clip.get_tokenizer(name)

    # ------------------------------------------------------------------ properties
    @cached_property
    def embed_dim(self) -> int:
        """Dimension of the image and text embeddings."""
        d = getattr(self.clip, "embed_dim", None) or getattr(self.clip.visual, "output_dim", None)
        if not d:
            proj = getattr(self.clip, "text_projection", None)
            d = proj.shape[-1] if proj is not None and hasattr(proj, "shape") else None
        if not d:  # any other tower: ask it
            d = self.encode_texts(["a"]).shape[1]
        return int(d)

    @property
    def identity(self) -> str:
        """``"<model name>@<hash>"``: changes whenever the weights change."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_name).strip("-")
        return f"{safe}@{self._digest[:12]}"

    @property
    def preprocessing(self) -> str:
        """A stable text description of the image preprocessing (part of cache keys)."""
        return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(self.preprocess))

    def __repr__(self) -> str:
        return (f"<Embedder {self.identity} | dim {self.embed_dim}, device {self.device}, "
                f"{self.precision}, batch {self.batch_size}>")

    # ------------------------------------------------------------------ inputs
    def _images(self, images) -> tuple[int, Iterator[Any]]:
        """(number of images, iterator of PIL images) from any accepted input."""
        from PIL import Image

        if _is_stimulus_set(images):
            ids = list(images.ids)
            return len(ids), (images.load_image(i) for i in ids)
        if isinstance(images, Image.Image):
            return 1, iter([images])
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(
                    "'images' as an array must be uint8 of shape (n, height, width, 3), but "
                    f"got dtype {images.dtype} and shape {images.shape}."
                )
            return len(images), (Image.fromarray(a) for a in images)
        if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
            bad = [k for k, im in enumerate(images) if not isinstance(im, Image.Image)]
            if bad:
                raise TypeError(
                    f"'images' as a list must hold PIL images, but item {bad[0]} is a "
                    f"{type(images[bad[0]]).__name__} ({len(bad)} bad item(s))."
                )
            return len(images), iter(images)
        raise TypeError(
            "'images' must be a StimulusSet, a list of PIL images or a uint8 array (n, h, w, "
            f"3), but got {type(images).__name__}."
        )

    def _image_batches(self, images, desc: str):
        import torch

        n, it = self._images(images)
        n_batches = (n + self.batch_size - 1) // self.batch_size
        for _ in progress(range(n_batches), total=n_batches, desc=desc):
            batch = [self.preprocess(next(it)) for _ in range(min(self.batch_size, n))]
            n -= len(batch)
            yield torch.stack(batch).to(device=self.device, dtype=self._dtype)

    # ------------------------------------------------------------------ encoders
    def encode_images(self, images_or_stimulusset) -> np.ndarray:
        """Pooled image embeddings, L2-normalised.

        Parameters
        ----------
        images_or_stimulusset : StimulusSet | list of PIL.Image.Image | ndarray
            A StimulusSet (embedded in the order of its ids), a list of PIL images, or a
            uint8 array ``(n, height, width, 3)``.

        Returns
        -------
        ndarray, shape (n, embed_dim), float32
            One unit-norm row per image.
        """
        import torch

        out = []
        with torch.inference_mode():
            for x in self._image_batches(images_or_stimulusset, "embed images"):
                f = self.clip.encode_image(x).float()
                out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        return self._stack(out, (self.embed_dim,))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings, L2-normalised.

        Parameters
        ----------
        texts : list of str
            The texts (a single str is one text).

        Returns
        -------
        ndarray, shape (m, embed_dim), float32
        """
        import torch

        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            found = type(texts).__name__ if not isinstance(texts, Sequence) else \
                type(next(t for t in texts if not isinstance(t, str))).__name__
            raise TypeError(f"'texts' must be a list of str, but got {found}.")
        out = []
        starts = range(0, len(texts), self.batch_size)
        with torch.inference_mode():
            for s in progress(starts, total=len(starts), desc="embed texts"):
                tok = self.tokenizer(list(texts[s:s + self.batch_size])).to(self.device)
                f = self.clip.encode_text(tok).float()
                out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        return self._stack(out, (self.embed_dim,))

    def encode_image_tokens(self, images_or_stimulusset) -> np.ndarray:
        """The image tower's final-layer tokens (not normalised).

        Parameters
        ----------
        images_or_stimulusset : StimulusSet | list of PIL.Image.Image | ndarray
            As :meth:`encode_images`.

        Returns
        -------
        ndarray, shape (n, tokens, width), float32
            For a ViT tower (open_clip ``VisionTransformer``): the transformer's output
            sequence, class token first then one token per patch, after the final layer
            norm ``ln_post`` (before the projection), as MindEye2 takes them. For a
            convolutional tower (open_clip ``ModifiedResNet``, the built-in CLIP): the
            ``layer4`` feature map before attention pooling, its ``h x w`` grid read in
            row-major order as ``h * w`` tokens of ``width`` channels.
        """
        import torch

        out = []
        with torch.inference_mode():
            for x in self._image_batches(images_or_stimulusset, "embed image tokens"):
                out.append(self._tokens(x).float().cpu().numpy())
        return self._stack(out, None)

    def _tokens(self, x):
        import open_clip

        visual = self.clip.visual
        if isinstance(visual, open_clip.transformer.VisionTransformer):
            h = visual.transformer(visual._embeds(x))
            if visual.attn_pool is not None:  # CoCa-style towers: the attention pool's tokens
                return visual._pool(h)[1]
            return visual.ln_post(h)
        if isinstance(visual, open_clip.modified_resnet.ModifiedResNet):
            h = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))
            return h.flatten(2).transpose(1, 2)
        if hasattr(visual, "trunk") and hasattr(visual.trunk, "forward_features"):  # timm
            h = visual.trunk.forward_features(x)
            return h.flatten(2).transpose(1, 2) if h.ndim == 4 else h
        raise TypeError(f"encode_image_tokens does not know the image tower "
                        f"{type(visual).__name__} of {self.model_name!r}.")

    @staticmethod
    def _stack(parts: list[np.ndarray], tail: tuple[int, ...] | None) -> np.ndarray:
        if parts:
            return np.concatenate(parts).astype(np.float32, copy=False)
        return np.zeros((0, *(tail or (0, 0))), np.float32)
