"""``BrainDecoder``: per-subject adapters + a shared encoder + CLIP heads."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_finite, check_option
from .._utils import PathLike, atomic_dir
from ._registry import ADAPTERS
from .adapters import build_adapter
from .config import DecoderConfig, SubjectSpec
from .encoders import build_encoder, encoder_class
from .heads import BlurryHead, PooledHead, TokenHead

__all__ = ["BrainDecoder", "HEADS"]

#: names of the heads a decoder can have
HEADS = ("image", "tokens", "text", "blurry", "generation")
_WEIGHTS = "model.safetensors"
_CONFIG = "config.json"


class BrainDecoder(nn.Module):
    """Decode CLIP embeddings from brain activity, for many subjects at once.

    Each subject's trials go through that subject's adapter (its
    :class:`~braindecode_kit.models.SubjectSpec` in ``config.subjects`` fixes the
    per-trial shape: ``(n_voxels,)`` or ``(n_channels, n_times)``) and the adapter's norm
    into a shared ``d_shared`` space, then through the shared encoder (``config.encoder``)
    and the heads. A batch may mix subjects: pass a mapping ``subject -> tensor``, or one
    tensor with a per-row sequence of subject names (then all those subjects must have the
    same feature shape); rows are grouped by subject inside :meth:`forward`.

    Input normalisation is not part of the model: z-score the data upstream (per subject,
    per session, with training statistics) as NSD pipelines do.

    Parameters
    ----------
    config : DecoderConfig
        The architecture.
    seed : int or None
        If given, the weights are initialised from this seed without touching the global
        torch random state.

    Examples
    --------
    >>> cfg = DecoderConfig(subjects={"sub-01": 1500, "sub-02": 1800}, embed_dim=128)
    >>> model = BrainDecoder(cfg, seed=0)
    >>> emb = model.predict(np.zeros((4, 1500), "float32"), subject="sub-01")  # (4, 128)
    """

    def __init__(self, config: DecoderConfig, seed: int | None = None) -> None:
        super().__init__()
        if isinstance(config, Mapping):
            config = DecoderConfig.from_dict(config)
        if not isinstance(config, DecoderConfig):
            raise TypeError(
                f"config must be a DecoderConfig (or its dict), but got {type(config).__name__}."
            )
        self.config = copy.deepcopy(config)
        self.register_load_state_dict_pre_hook(_upgrade_state)
        if seed is None:
            self._build()
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                self._build()

    def _build(self) -> None:
        cfg = self.config
        for subject in cfg.subjects:  # before drawing any weight
            self._check_compatible(subject)
        # modules that the subjects of an adapter kind share (the spatial attention over
        # sensor positions), one per kind, built with its first subject; empty otherwise
        self.shared = nn.ModuleDict()
        self.adapters = nn.ModuleDict()
        for subject in cfg.subjects:
            self._make_adapter(subject)
        self.encoder = build_encoder(cfg.encoder, cfg)
        self.heads = nn.ModuleDict()
        self.heads["image"] = PooledHead(cfg.d_shared, cfg.embed_dim, cfg.head_hidden)
        if cfg.token_shape is not None:
            self.heads["tokens"] = TokenHead(cfg.d_shared, *cfg.token_shape, rank=cfg.token_rank)
        if cfg.text_dim is not None:
            self.heads["text"] = PooledHead(cfg.d_shared, cfg.text_dim, cfg.head_hidden)
        if cfg.blurry_size is not None:
            self.heads["blurry"] = BlurryHead(cfg.d_shared, cfg.blurry_size)
        if cfg.generation_head:
            self.heads["generation"] = PooledHead(cfg.d_shared, cfg.embed_dim, cfg.head_hidden)
        if cfg.stimulus_map:
            self._register_stimulus_map(
                torch.zeros(cfg.d_shared, cfg.embed_dim + cfg.stimulus_map_text_dim),
                torch.zeros(cfg.d_shared))

    def _register_stimulus_map(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # buffers, not parameters: saved and moved with the model, never trained
        self.register_buffer("stimulus_map_weight", weight.float().contiguous())
        self.register_buffer("stimulus_map_bias", bias.float().contiguous())

    def _check_compatible(self, subject: str) -> None:
        """Refuse an adapter whose output the encoder does not consume."""
        cfg = self.config
        kind = cfg.adapter_kind(subject)
        check_option("adapter", kind, ADAPTERS.names())
        produces = getattr(ADAPTERS[kind], "produces", None)
        consumes = getattr(encoder_class(cfg.encoder), "consumes", None)
        if produces != consumes:
            layout = {"vector": "(n, d_shared)", "sequence": "(n, d_shared, T)"}
            raise ValueError(
                f"Subject {subject!r}'s adapter {kind!r} produces {produces} features "
                f"{layout.get(produces, '')}, but the encoder {cfg.encoder!r} consumes "
                f"{consumes} features {layout.get(consumes, '')}: choose an adapter that "
                f"produces {consumes} features, or an encoder that consumes {produces} ones."
            )
        check = getattr(encoder_class(cfg.encoder), "check_subject", None)
        if check is not None:
            check(cfg.spec(subject), cfg)

    def _make_adapter(self, subject: str) -> nn.Module:
        cfg = self.config
        kind = cfg.adapter_kind(subject)
        key = getattr(ADAPTERS[kind], "shared", None)
        if key and key not in self.shared:
            self.shared[key] = ADAPTERS[kind].build_shared(cfg).to(self._param_device())
        adapter = build_adapter(kind, cfg.spec(subject), cfg,
                                shared=self.shared[key] if key else None)
        self.adapters[subject] = adapter
        return adapter

    # ------------------------------------------------------------------ properties
    @property
    def subjects(self) -> list[str]:
        """The subjects this decoder has adapters for."""
        return list(self.config.subjects)

    @property
    def head_names(self) -> list[str]:
        """The heads this decoder has (``"image"`` always; ``"tokens"``, ``"text"``,
        ``"blurry"`` and ``"generation"`` when its config sets them)."""
        return list(self.heads.keys())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _param_device(self) -> torch.device:
        p = next(self.parameters(), None)
        return torch.device("cpu") if p is None else p.device

    def add_subject(self, name: str, spec: SubjectSpec | int | Sequence[int],
                    adapter: str | None = None, seed: int | None = None) -> nn.Module:
        """Add a fresh adapter (with its norm) for a new subject (in place) and return it.

        Parameters
        ----------
        name : str
            The new subject's name (must not exist yet).
        spec : SubjectSpec, int or tuple of int
            What its input is: a :class:`~braindecode_kit.models.SubjectSpec` (e.g.
            ``SubjectSpec.from_trialset(ts)``), or a number of features / a per-trial
            shape (an fMRI subject).
        adapter : str or None
            Adapter kind; None uses the spec's, else ``config.adapter``.
        seed : int or None
            If given, the adapter is initialised from this seed without touching the
            global torch random state (else from the global state).

        Returns
        -------
        torch.nn.Module
            The new adapter (``decoder.adapters[name]``), on the decoder's device.
        """
        name = str(name)
        if name in self.config.subjects:
            raise ValueError(
                f"Subject {name!r} already has an adapter; existing subjects are "
                f"{self.subjects}."
            )
        try:
            spec = SubjectSpec.from_value(spec)
        except (TypeError, ValueError) as err:
            raise type(err)(f"add_subject({name!r}): {err}") from err
        if adapter is not None:
            if spec.adapter is not None and spec.adapter != adapter:
                raise ValueError(
                    f"add_subject({name!r}) got adapter={adapter!r} but its SubjectSpec says "
                    f"{spec.adapter!r}: give it once."
                )
            if adapter != self.config.adapter:
                spec.adapter = adapter
        new_cfg = self.config.to_dict()
        new_cfg["subjects"][name] = spec.to_dict()
        new_config = DecoderConfig.from_dict(new_cfg)
        old_config, self.config = self.config, new_config
        try:
            self._check_compatible(name)
        except ValueError:
            self.config = old_config
            raise
        if seed is None:
            module = self._make_adapter(name)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                module = self._make_adapter(name)
        return module.to(self.device)

    # ------------------------------------------------------------------ stimulus map
    @property
    def has_stimulus_map(self) -> bool:
        """Whether :meth:`map_stimuli` is available (see ``fit_stimulus_map``)."""
        return bool(self.config.stimulus_map)

    def set_stimulus_map(self, weight: np.ndarray | torch.Tensor,
                         bias: np.ndarray | torch.Tensor, text_dim: int = 0) -> None:
        """Set the linear map stimulus CLIP embeddings -> shared space (in place).

        Parameters
        ----------
        weight : array, shape (d_shared, embed_dim + text_dim)
            Columns: the image embedding's, then the caption-text embedding's.
        bias : array, shape (d_shared,)
        text_dim : int
            Dimension of the caption-text embedding the map reads (0: image only).
        """
        w = torch.as_tensor(np.asarray(weight, np.float32))
        b = torch.as_tensor(np.asarray(bias, np.float32))
        text_dim = int(text_dim)
        want = (self.config.d_shared, self.config.embed_dim + text_dim)
        if text_dim < 0 or tuple(w.shape) != want or tuple(b.shape) != (want[0],):
            raise ValueError(
                f"The stimulus map must have weight {want} and bias ({want[0]},) (text_dim "
                f"{text_dim}), but got {tuple(w.shape)} and {tuple(b.shape)}."
            )
        check_finite("stimulus map weight", w.numpy())
        check_finite("stimulus map bias", b.numpy())
        cfg = self.config.to_dict()
        cfg["stimulus_map"], cfg["stimulus_map_text_dim"] = True, text_dim
        self.config = DecoderConfig.from_dict(cfg)
        device = self.device
        self._register_stimulus_map(w.to(device), b.to(device))

    def map_stimuli(self, Y: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
        """Shared-space representation predicted for stimuli from their CLIP embeddings.

        Parameters
        ----------
        Y : array, shape (n, embed_dim)
            CLIP image embeddings.
        text : array, shape (n, text_dim) or None
            Their caption-text embeddings, needed when the map reads them
            (``config.stimulus_map_text_dim > 0``).

        Returns
        -------
        ndarray, float32, shape (n, d_shared)
            The mean encoder input the training subjects' brains give such stimuli.
        """
        cfg = self.config
        if not cfg.stimulus_map:
            raise RuntimeError(
                "This decoder has no stimulus map. Fit one after training with "
                "braindecode_kit.train.fit_stimulus_map(decoder, trainsets, targets) "
                "(the pipeline's train stage does)."
            )
        Y = np.asarray(Y, np.float32)
        if Y.ndim != 2 or Y.shape[1] != cfg.embed_dim:
            raise ValueError(
                f"Y must have shape (n, {cfg.embed_dim}) (CLIP image embeddings), but "
                f"got {Y.shape}."
            )
        parts = [Y]
        if cfg.stimulus_map_text_dim:
            if text is None:
                raise ValueError(
                    f"This decoder's stimulus map also reads {cfg.stimulus_map_text_dim}-dim "
                    "caption-text embeddings: pass text= (e.g. Targets.text)."
                )
            text = np.asarray(text, np.float32)
            if text.shape != (Y.shape[0], cfg.stimulus_map_text_dim):
                raise ValueError(
                    f"text must have shape ({Y.shape[0]}, {cfg.stimulus_map_text_dim}), but "
                    f"got {text.shape}."
                )
            parts.append(text)
        F = np.concatenate(parts, axis=1)
        check_finite("stimulus embeddings", F)
        w = self.stimulus_map_weight.detach().cpu().numpy()
        b = self.stimulus_map_bias.detach().cpu().numpy()
        return (F @ w.T + b).astype(np.float32)

    def shared_features(self, X: Any, subject: str | None = None,
                        batch_size: int = 512) -> np.ndarray:
        """Encoder inputs of one subject's trials (its adapter, norm included).

        ``X`` and ``subject`` as in :meth:`predict`. ``(n, d_shared)`` for vector
        adapters (``(n, d_shared, T)`` for sequence ones).
        """
        return self._batched(X, subject, batch_size, self.encode, (self.config.d_shared,))

    # ------------------------------------------------------------------ forward
    def _check_shape(self, subject: str, x: torch.Tensor | np.ndarray) -> None:
        spec = self.config.spec(subject)
        expected = spec.feature_shape
        got = tuple(x.shape[1:])
        if got != expected:
            exp = expected[0] if len(expected) == 1 else expected
            found = got[0] if len(got) == 1 else got
            hint = ("Was the data masked with a different mask, or given to the wrong subject?"
                    if spec.modality == "fmri" else
                    "Were the epochs cut with other channels or another tmin/tmax/sfreq, or "
                    "given to the wrong subject?")
            raise ValueError(
                f"Subject {subject!r} ({spec.modality}) expects {exp} features per trial, but "
                f"the input has {found} (input shape {tuple(x.shape)}). {hint}"
            )

    def encode(self, x: torch.Tensor, subject: str) -> torch.Tensor:
        """Shared-space features of one subject's trials: its adapter, norm included.

        ``(n, d_shared)`` for vector adapters (``(n, d_shared, T)`` for sequence ones),
        before the shared encoder.
        """
        if subject not in self.adapters:
            raise KeyError(
                f"Unknown subject {subject!r}; this decoder knows {self.subjects}. "
                "Use add_subject() or adapt_subject() for a new subject."
            )
        self._check_shape(subject, x)
        return self.adapters[subject](x)

    def forward(
        self,
        x: torch.Tensor | Mapping[str, torch.Tensor],
        subject: str | Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predict every head's output.

        Parameters
        ----------
        x : Tensor or mapping of str to Tensor
            One subject's trials ``(n, *features)`` (with ``subject`` a name), one tensor
            of mixed subjects (with ``subject`` a sequence of n names), or a mapping
            ``subject -> (n_s, *features)``: the outputs then follow the mapping's order,
            concatenated.
        subject : str, sequence of str or None
            See ``x``.

        Returns
        -------
        dict of str to Tensor
            ``"image"`` ``(n, embed_dim)``; ``"tokens"`` ``(n, n_tokens, token_dim)`` and
            ``"text"`` ``(n, text_dim)``, ``"blurry"`` ``(n, 3, s, s)`` and
            ``"generation"`` ``(n, embed_dim)`` when those heads exist.
        """
        if isinstance(x, Mapping):
            if subject is not None:
                raise ValueError("subject must be None when x is a mapping subject -> tensor.")
            feats = torch.cat([self.encode(v, str(k)) for k, v in x.items()], dim=0)
        elif isinstance(subject, str):
            feats = self.encode(x, subject)
        elif subject is None:
            if len(self.adapters) != 1:
                raise ValueError(
                    f"subject must be given: this decoder has {len(self.adapters)} subjects "
                    f"({self.subjects})."
                )
            feats = self.encode(x, self.subjects[0])
        else:
            subject = [str(s) for s in subject]
            if len(subject) != x.shape[0]:
                raise ValueError(
                    f"subject must name one subject per row: got {len(subject)} names for "
                    f"{x.shape[0]} rows."
                )
            feats = None
            names = np.asarray(subject)
            for s in dict.fromkeys(subject):
                idx = torch.as_tensor(np.flatnonzero(names == s), device=x.device)
                part = self.encode(x[idx], s)
                if feats is None:
                    feats = x.new_empty((x.shape[0], *part.shape[1:]))
                feats = feats.index_copy(0, idx, part.to(feats.dtype))
        h = self.encoder(feats)
        detached = {"blurry": self.config.blurry_detach,
                    "generation": self.config.generation_detach}
        return {name: head(h.detach() if detached.get(name, False) else h)
                for name, head in self.heads.items()}

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        X: Any,
        subject: str | None = None,
        batch_size: int = 256,
        head: str = "image",
    ) -> np.ndarray:
        """Predicted embeddings for one subject's trials (eval mode, no gradient).

        Parameters
        ----------
        X : array or TrialSet
            ``(n_trials, *features)`` array (float), or a TrialSet (its ``data`` and
            ``subject`` are used).
        subject : str or None
            The subject; None takes the TrialSet's subject, or the only subject.
        batch_size : int
            Trials per forward pass.
        head : {"image", "tokens", "text", "blurry", "generation"}
            Which head's output to return (``"blurry"``: ``(n, 3, s, s)`` images in
            ``[0, 1]``, clipped; ``"generation"``: the regression head's embedding, what
            captions and reconstructions are generated from).

        Returns
        -------
        ndarray, float32
            ``(n_trials, embed_dim)`` (or the chosen head's shape).
        """
        check_option("head", head, self.head_names)
        b = self.config.blurry_size
        shape = {"image": (self.config.embed_dim,), "text": (self.config.text_dim,),
                 "tokens": tuple(self.config.token_shape or ()),
                 "blurry": (3, b, b) if b else (),
                 "generation": (self.config.embed_dim,)}[head]
        out = self._batched(X, subject, batch_size, lambda xb, s: self(xb, s)[head], shape)
        return np.clip(out, 0.0, 1.0) if head == "blurry" else out

    def _batched(self, X: Any, subject: str | None, batch_size: int, fn,
                 out_shape: tuple[int, ...]) -> np.ndarray:
        """``fn(batch, subject)`` over ``X`` in batches, eval mode, no gradient, float32."""
        if hasattr(X, "data") and hasattr(X, "subject") and not isinstance(X, np.ndarray):
            subject = subject if subject is not None else str(X.subject)
            X = X.data
        if subject is None:
            if len(self.adapters) != 1:
                raise ValueError(
                    f"subject must be given: this decoder has {len(self.adapters)} subjects "
                    f"({self.subjects})."
                )
            subject = self.subjects[0]
        subject = str(subject)
        if subject not in self.adapters:
            raise KeyError(
                f"Unknown subject {subject!r}; this decoder knows {self.subjects}. "
                "Use add_subject() or adapt_subject() for a new subject."
            )
        if not hasattr(X, "shape") or len(X.shape) < 2:
            raise ValueError(
                f"X must be an array of shape (n_trials, *features), but got "
                f"{type(X).__name__} with shape {getattr(X, 'shape', None)}."
            )
        self._check_shape(subject, X)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}.")
        was_training = self.training
        self.eval()
        device = self.device
        dtype = next(self.parameters()).dtype
        out = []
        try:
            with torch.no_grad():
                for start in range(0, X.shape[0], int(batch_size)):
                    chunk = np.asarray(X[start:start + int(batch_size)], dtype=np.float32)
                    check_finite("X", chunk)
                    xb = torch.from_numpy(chunk).to(device=device, dtype=dtype)
                    out.append(fn(xb, subject).float().cpu().numpy())
        finally:
            self.train(was_training)
        if not out:
            return np.zeros((0, *out_shape), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: PathLike) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``directory`` (atomically).

        Returns the directory. Loading never unpickles: see :meth:`from_pretrained`.
        """
        from safetensors.torch import save_file

        from .._version import __version__

        directory = Path(directory)
        with atomic_dir(directory, kind="BrainDecoder", produces={_WEIGHTS, _CONFIG}) as tmp:
            save_file(state_dict_for_saving(self), str(tmp / _WEIGHTS),
                      metadata={"format": "pt"})
            cfg = {"_class": type(self).__name__, "_version": __version__,
                   **self.config.to_dict()}
            (tmp / _CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: PathLike, device: str | torch.device = "cpu"
                        ) -> BrainDecoder:
        """Load a decoder written by :meth:`save_pretrained` (safetensors, no pickle).

        Raises
        ------
        FileNotFoundError
            If ``config.json`` or ``model.safetensors`` is missing.
        ValueError
            If either is corrupt (invalid JSON, a truncated file, another format renamed
            ``.safetensors``), or a weight holds NaN/inf values (it would predict NaN);
            the message names the file and the tensor.
        """
        from .._readers import CorruptFileError, read_json, read_safetensors

        directory = Path(directory)
        for name in (_CONFIG, _WEIGHTS):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory} is not a saved BrainDecoder: {name} is missing (expected "
                    f"{_CONFIG} and {_WEIGHTS} written by save_pretrained)."
                )
        raw = read_json(directory / _CONFIG, "decoder config")
        try:
            cfg = DecoderConfig.from_dict({k: v for k, v in raw.items()
                                           if not k.startswith("_")})
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptFileError(
                f"The decoder config {str(directory / _CONFIG)!r} is invalid: "
                f"{err.args[0] if isinstance(err, KeyError) else err}") from None
        state = read_safetensors(directory / _WEIGHTS, "decoder weights")
        for key, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                n_bad = int((~torch.isfinite(tensor)).sum())
                raise CorruptFileError(
                    f"The decoder weights {str(directory / _WEIGHTS)!r} hold {n_bad} NaN or "
                    f"infinite value(s) in {key!r}: the model would predict NaN. Load an "
                    "earlier checkpoint or retrain (a diverged training run saves such "
                    "weights)."
                )
        model = cls(cfg)
        # weights saved before the adapters owned their norms load too (see _upgrade_state)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CorruptFileError(
                f"The decoder weights {str(directory / _WEIGHTS)!r} do not fit the "
                f"architecture of {str(directory / _CONFIG)!r}: {str(err).splitlines()[0]} "
                "(were the two files written together?)") from None
        return model.to(device).eval()

    def _repr_html_(self) -> str:
        import html

        c = self.config
        n_params = sum(p.numel() for p in self.parameters())
        subj = "".join(
            f"<tr><td>{html.escape(s)}</td><td>{html.escape(c.subjects[s].modality)}</td>"
            f"<td>{html.escape(' x '.join(map(str, c.subjects[s].feature_shape)))}</td>"
            f"<td>{html.escape(c.adapter_kind(s))}</td></tr>" for s in self.subjects)
        smap = ("no" if not c.stimulus_map else
                "image + caption embeddings" if c.stimulus_map_text_dim else "image embedding")
        rows = [("shared space", f"{c.d_shared}-d"),
                ("encoder", f"{c.encoder} ({c.n_blocks} blocks)"),
                ("heads", ", ".join(self.head_names) + f" (image: {c.embed_dim}-d)"),
                ("parameters", f"{n_params:,}"),
                ("stimulus map (new subjects in closed form)", smap)]
        info = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows)
        return ("<div><strong>BrainDecoder</strong><table>" + info + "</table>"
                "<table><tr><th>subject</th><th>modality</th><th>features</th>"
                "<th>adapter</th></tr>" + subj
                + "</table></div>")

    def extra_repr(self) -> str:
        c = self.config
        return (f"subjects={self.subjects}, d_shared={c.d_shared}, encoder={c.encoder!r}, "
                f"n_blocks={c.n_blocks}, heads={self.head_names}")


def state_dict_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU, contiguous, unshared copy of ``module.state_dict()`` for safetensors."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _upgrade_state(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                   *args: Any) -> None:
    """Rename the keys of weights saved before the adapters owned their norms, in place.

    ``adapter_norms.<subject>.<param>`` (the norms once held beside the adapters) becomes
    ``adapters.<subject>.norm.<param>``; a load_state_dict pre-hook, so
    :meth:`BrainDecoder.from_pretrained` and ``load_state_dict`` both read old weights.
    """
    old = prefix + "adapter_norms."
    for key in [k for k in state_dict if k.startswith(old)]:
        subject, _, param = key[len(old):].partition(".")  # module names hold no "."
        state_dict[f"{prefix}adapters.{subject}.norm.{param}"] = state_dict.pop(key)
