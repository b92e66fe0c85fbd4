"""GIT fed predicted vision tokens (MindEye2's route to captions).

:class:`transformers.GitForCausalLM` captions an image from its image encoder's tokens
(``(T, D)``: 197 x 768 for ``git-base``, 257 x 1024 for ``git-large``), projected into
the text decoder. Brain decoders predict CLIP embeddings, not those tokens, so a linear
map (ridge, alpha by generalised cross-validation) from the decoder's embedding space to
GIT's vision-token space is fitted on stimuli: their CLIP embeddings against the tokens
GIT's own image encoder gives for them (:meth:`GitCaptioner.fit_token_map`), and saved
(``token_map.safetensors`` + ``token_map.json``).

Stock ``GitModel`` always runs ``git.image_encoder`` on ``pixel_values``. The clean way
in used here: after the map is fitted, ``git.image_encoder`` is replaced by
:func:`vision_token_pass_through`, a module that returns the tokens it is given, and the
predicted tokens are passed as ``pixel_values`` of shape ``(n, 1, T, D)`` (GIT's forward
wants a 4-D tensor there). Everything else (projection, decoder, beam search through
``generate``) is the stock model; no model file is copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import PathLike, atomic_path, write_json_atomic
from .base import CaptionBackend, as_embeddings

__all__ = ["GitCaptioner", "fit_token_map", "vision_token_pass_through"]

MAP_WEIGHTS = "token_map.safetensors"
MAP_CONFIG = "token_map.json"


def _pass_through_class():
    from torch import nn
    from transformers.modeling_outputs import BaseModelOutput

    class VisionTokenPassThrough(nn.Module):
        """Replaces ``GitModel.image_encoder``: its "pixel values" are already the vision
        tokens, ``(n, 1, T, D)``; it returns them as the encoder's last hidden state."""

        def forward(self, pixel_values, interpolate_pos_encoding: bool = False, **kwargs):
            return BaseModelOutput(last_hidden_state=pixel_values[:, 0])

    return VisionTokenPassThrough


def vision_token_pass_through():
    """A ``VisionTokenPassThrough`` module (the class is made on first use, so importing
    this module does not import torch)."""
    return _pass_through_class()()


class GitCaptioner(CaptionBackend):
    """GIT captions from embeddings through a fitted embedding -> vision-token map.

    Parameters
    ----------
    model : str
        A hub id (read from the local Hugging Face cache; nothing is downloaded when
        ``HF_HUB_OFFLINE`` is set) or a local folder of a ``GitForCausalLM`` with its
        tokenizer (and, optionally, its image processor).
    token_map : path | None
        The folder of a map saved by :meth:`fit_token_map` (None: fit one before
        generating).
    device : str
        Torch device.
    """

    name = "git"

    def __init__(self, model: str, token_map: PathLike | None = None,
                 device: str = "cpu") -> None:
        import torch
        from transformers import AutoTokenizer, GitForCausalLM

        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        local = Path(str(model)).expanduser()
        kwargs = {"local_files_only": True} if offline or local.is_dir() else {}
        try:
            self.model = GitForCausalLM.from_pretrained(str(local) if local.is_dir() else model,
                                                        **kwargs)
            self.tokenizer = AutoTokenizer.from_pretrained(
                str(local) if local.is_dir() else model, **kwargs)
        except OSError as err:
            raise FileNotFoundError(
                f"Could not load the GIT model {model!r}: it is neither a local folder nor in "
                f"the local Hugging Face cache ({err}). Pass the folder of a "
                "GitForCausalLM saved with save_pretrained.") from err
        self.model_id = str(model)
        self.device = str(device)
        self.model.eval().to(torch.device(device))
        vcfg = self.model.config.vision_config
        self.n_tokens = (vcfg.image_size // vcfg.patch_size) ** 2 + 1
        self.token_dim = int(vcfg.hidden_size)
        self.image_size = int(vcfg.image_size)
        self._encoder = self.model.git.image_encoder  # kept to fit maps
        self.model.git.image_encoder = vision_token_pass_through()
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.map_info: dict[str, Any] = {}
        self.embed_dim: int | None = None
        if token_map is not None:
            self.load_token_map(token_map)

    # ------------------------------------------------------------------ the map
    def vision_tokens(self, images, batch_size: int = 32) -> np.ndarray:
        """GIT's image-encoder tokens of images, ``(n, T, D)`` (the map's targets).

        ``images``: a list of PIL images, or a StimulusSet (in the order of its ids).
        """
        import torch

        if hasattr(images, "load_image") and hasattr(images, "ids"):
            images = [images.load_image(i) for i in images.ids]
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                x = self._pixels(images[s:s + batch_size])
                out.append(self._encoder(x).last_hidden_state.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def _pixels(self, images):
        """GIT's preprocessing: its image processor when the folder has one, else a resize
        to the encoder's size with CLIP's normalisation (GIT's own)."""
        import torch

        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(self.model_id, local_files_only=True)
            return proc(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        except (OSError, ValueError):
            pass
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
        arr = np.stack([np.asarray(im.convert("RGB").resize((self.image_size,) * 2), np.float32)
                        for im in images]) / 255.0
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        return ((x - mean) / std).to(self.device)

    def fit_token_map(self, embeddings: np.ndarray, images, out: PathLike | None = None,
                      alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
                      ) -> dict[str, Any]:
        """Fit the linear map from embeddings ``(n, d)`` of stimuli to GIT's vision tokens
        of the same stimuli (ridge, one alpha for all outputs by generalised CV).

        Parameters
        ----------
        embeddings : array (n, d)
            The stimuli's embeddings in the decoder's target space (e.g. CLIP image
            embeddings), L2-normalised here.
        images : list of PIL images | StimulusSet
            The same stimuli, in the same order.
        out : path | None
            A folder to save the map into (``token_map.safetensors`` + ``.json``).
        alphas : tuple of float
            Ridge penalties tried.

        Returns
        -------
        dict
            The map's description (``alpha``, ``n_fitted``, ``r2_train``, shapes).
        """
        from sklearn.linear_model import RidgeCV

        X = as_embeddings(embeddings)
        Y = self.vision_tokens(images).reshape(len(X), -1)
        if len(Y) != len(X):
            raise ValueError(f"'images' ({len(Y)}) and 'embeddings' ({len(X)}) must describe "
                             "the same stimuli.")
        ridge = RidgeCV(alphas=alphas).fit(X, Y)
        self.W = ridge.coef_.T.astype(np.float32)  # (d, T*D)
        self.b = np.asarray(ridge.intercept_, np.float32)
        self.embed_dim = int(X.shape[1])
        resid = Y - (X @ self.W + self.b)
        r2 = 1.0 - float((resid ** 2).sum() / max(((Y - Y.mean(0)) ** 2).sum(), 1e-12))
        self.map_info = {"git_model": self.model_id, "embed_dim": self.embed_dim,
                         "n_tokens": self.n_tokens, "token_dim": self.token_dim,
                         "alpha": float(ridge.alpha_), "n_fitted": int(len(X)),
                         "r2_train": r2, "method": "sklearn RidgeCV (GCV)"}
        if out is not None:
            self.save_token_map(out)
        return dict(self.map_info)

    def save_token_map(self, folder: PathLike) -> Path:
        """Save the fitted map (safetensors + JSON)."""
        import torch
        from safetensors.torch import save_file

        if self.W is None:
            raise RuntimeError("No token map is fitted: call fit_token_map first.")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MAP_WEIGHTS) as tmp:
            save_file({"weight": torch.from_numpy(self.W), "bias": torch.from_numpy(self.b)},
                      str(tmp))
        write_json_atomic(folder / MAP_CONFIG, self.map_info)
        return folder

    def load_token_map(self, folder: PathLike) -> None:
        """Load a map saved by :meth:`save_token_map` (checked against this model)."""
        from safetensors.numpy import load_file

        from ..embed.builtin import check_safetensors

        folder = Path(folder)
        check_safetensors(folder / MAP_WEIGHTS)
        info = json.loads((folder / MAP_CONFIG).read_text())
        if (info["n_tokens"], info["token_dim"]) != (self.n_tokens, self.token_dim):
            raise ValueError(
                f"The token map in {folder} predicts {info['n_tokens']} x {info['token_dim']} "
                f"tokens but {self.model_id!r} takes {self.n_tokens} x {self.token_dim}.")
        w = load_file(folder / MAP_WEIGHTS)
        self.W, self.b = w["weight"], w["bias"]
        self.map_info = info
        self.embed_dim = int(info["embed_dim"])

    def describe(self) -> dict[str, Any]:
        return {"backend": "git (GitForCausalLM + linear map to its vision tokens)",
                "model": self.model_id, "vision_tokens": f"{self.n_tokens} x {self.token_dim}",
                **{f"map_{k}": v for k, v in self.map_info.items() if k != "git_model"}}

    # ------------------------------------------------------------------ captions
    def generate(self, embeddings: np.ndarray, *, max_length: int = 24, num_beams: int = 3,
                 batch_size: int = 32, seed: int = 0) -> list[str]:
        """Captions of unit-norm embeddings through the fitted token map."""
        import torch

        if self.W is None:
            raise RuntimeError("GitCaptioner has no token map: fit one with fit_token_map "
                               "or pass token_map=<folder>.")
        out: list[str] = []
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            for s in range(0, len(embeddings), batch_size):
                tok = embeddings[s:s + batch_size] @ self.W + self.b
                x = torch.from_numpy(tok.reshape(len(tok), 1, self.n_tokens, self.token_dim))
                ids = self.model.generate(pixel_values=x.to(self.device),
                                          max_new_tokens=max_length, num_beams=num_beams,
                                          do_sample=False)
                out += [t.strip() for t in
                        self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out


def fit_token_map(captioner, embeddings: np.ndarray, images, out: PathLike | None = None
                  ) -> dict[str, Any]:
    """Fit a :class:`~braindecode_kit.caption.Captioner`'s (``backend="git"``) token map;
    see :meth:`GitCaptioner.fit_token_map`."""
    impl = getattr(captioner, "impl", captioner)
    if not isinstance(impl, GitCaptioner):
        raise TypeError(f"fit_token_map needs a GIT captioner, but got {type(impl).__name__}.")
    return impl.fit_token_map(embeddings, images, out=out)
