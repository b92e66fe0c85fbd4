"""The built-in CLIP: open_clip's own ``CLIP`` class, small, trained on the built-in world.

No model hub is reachable where this package runs, so it ships a CLIP of its own:
open_clip's ``CLIP`` with a ModifiedResNet image tower and a text transformer, a small
config registered in open_clip's model registry under the name ``builtin_clip``
(``data/builtin_clip.json``), and a word-level tokenizer over the world's vocabulary
(``data/builtin_clip_vocab.json``; the world's captions use ~50 words, so open_clip's
49k-token BPE table would be 95% of the weights for nothing). The weights are
``data/builtin_clip.safetensors``; ``data/builtin_clip_card.json`` records the recipe,
the seeds and the held-out figures measured after training.

It is trained contrastively (open_clip's ``ClipLoss``) on world images drawn with seeds
``>= TRAINING_SEED_START`` (10000); evaluation worlds use seeds below that, so no
evaluation image is ever a training image. Retrain with
``braindecode-kit train-builtin clip --out data/``.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._utils import PathLike, atomic_path, write_json_atomic

MODEL_NAME = "builtin_clip"
CONFIG_FILE = "builtin_clip.json"
VOCAB_FILE = "builtin_clip_vocab.json"
WEIGHTS_FILE = "builtin_clip.safetensors"
CARD_FILE = "builtin_clip_card.json"

#: open_clip model config of the built-in CLIP (registered as ``builtin_clip``).
BUILTIN_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
    "text_cfg": {"context_length": 24, "vocab_size": 64, "width": 128, "heads": 4, "layers": 3},
}

#: Image normalisation of the built-in CLIP (statistics of the world's pixels).
WORLD_MEAN = (0.5, 0.5, 0.5)
WORLD_STD = (0.25, 0.25, 0.25)

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


class WorldTokenizer:
    """A word-level tokenizer with open_clip's calling convention.

    ``tokenizer(texts) -> LongTensor (n, context_length)``: ``<start>`` words ``<end>``
    then padding with 0. ``<end>`` has the largest id, as open_clip's text tower pools
    the features at the arg-max token. Unknown words map to ``<unk>``.

    Parameters
    ----------
    words : list of str
        The vocabulary (ids 3.. in this order).
    context_length : int
        Tokens per text, ``<start>`` and ``<end>`` included.
    """

    PAD, SOT, UNK = 0, 1, 2

    def __init__(self, words: list[str], context_length: int = 32) -> None:
        self.words = list(words)
        self.context_length = context_length
        self.index = {w: i + 3 for i, w in enumerate(self.words)}
        self.eot = len(self.words) + 3
        self.vocab_size = self.eot + 1

    def encode(self, text: str) -> list[int]:
        """Token ids of one text (without start/end)."""
        return [self.index.get(w, self.UNK) for w in _WORD.findall(text.lower())]

    def __call__(self, texts: str | list[str], context_length: int | None = None):
        import torch

        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.SOT] + self.encode(text)[: length - 2] + [self.eot]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words, "context_length": self.context_length}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WorldTokenizer:
        return cls(d["words"], d["context_length"])


def world_vocabulary() -> list[str]:
    """Every word the world's caption grammar and zero-shot prompts can produce."""
    from ..simulate import make_world
    from ..simulate.world import COLOURS, SHAPES, TRAINING_SEED_START

    words: set[str] = set()
    world = make_world(3000, seed=TRAINING_SEED_START)
    for sid in world.ids:
        for c in world.captions(sid):
            words.update(_WORD.findall(c.lower()))
    for w in list(SHAPES) + list(COLOURS) + ["a", "photo", "of", "shape", "object", "coloured"]:
        words.update(_WORD.findall(w))
    return sorted(words)


_REGISTERED: set[Path] = set()


def register_config(directory: PathLike | None = None) -> str:
    """Register the built-in CLIP's config file in open_clip's model registry (once per
    file) and return its model name, ``builtin_clip``.

    The shipped ``data/builtin_clip.json`` is used unless ``directory`` holds another one.
    """
    import open_clip

    from .._resources import data_dir

    path = (Path(directory or data_dir()) / CONFIG_FILE).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"The built-in CLIP config {path} is missing.")
    if path not in _REGISTERED:
        open_clip.add_model_config(path)
        _REGISTERED.add(path)
    if open_clip.get_model_config(MODEL_NAME) != json.loads(path.read_text()):
        open_clip.add_model_config(path)  # another folder's config was registered since
    return MODEL_NAME


def builtin_transform():
    """Image preprocessing of the built-in CLIP (PIL image -> normalised tensor)."""
    from torchvision import transforms

    size = BUILTIN_CLIP_CONFIG["vision_cfg"]["image_size"]
    return transforms.Compose([
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(WORLD_MEAN, WORLD_STD),
    ])


def create_builtin_clip(directory: PathLike | None = None, pretrained: bool = True):
    """The built-in CLIP as ``(model, preprocess, tokenizer)``, on the CPU in float32.

    Parameters
    ----------
    directory : path or None
        Where the config, vocabulary and weights are (default: the shipped ``data/``).
    pretrained : bool
        Load the weights (False: a randomly initialised model of the same architecture).

    Raises
    ------
    ValueError
        If the weights file is not a safetensors file.
    """
    import open_clip
    from safetensors.torch import load_file

    from .._resources import data_dir

    directory = Path(directory or data_dir())
    vocab = WorldTokenizer.from_json(json.loads((directory / VOCAB_FILE).read_text()))
    model = open_clip.model.CLIP(**open_clip.get_model_config(register_config(directory)))
    if pretrained:
        weights = directory / WEIGHTS_FILE
        check_safetensors(weights)
        model.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
    model.eval()
    return model, builtin_transform(), vocab


def check_safetensors(path: PathLike) -> None:
    """Refuse a checkpoint that is not a safetensors file (nothing is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        ok = 0 < n < 100_000_000 and f.read(1) == b"{"
    if not ok:
        raise ValueError(
            f"Expected a safetensors checkpoint, but {path} is not one (its first bytes are "
            f"{head[:8]!r}); pickled checkpoints are refused. Convert it with "
            "safetensors.torch.save_file."
        )


class _TextEncoder:
    """The ``encode_texts`` of an Embedder, for a model that is still being trained."""

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(texts), normalize=True).numpy()


# --------------------------------------------------------------------------- training
def _to_tensor(images: np.ndarray):
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(WORLD_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(WORLD_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@fill_doc
@verbose
def train_builtin_clip(
    out_dir: PathLike,
    *,
    steps: int = 4000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    n_images: int = 40_000,
    seed: int = 0,
    eval_every: int = 500,
    hard_groups: int = 10,
    threads: int | None = None,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Train the built-in CLIP on the built-in world and write its files into ``out_dir``.

    Writes ``builtin_clip.json`` (open_clip config), ``builtin_clip_vocab.json``,
    ``builtin_clip.safetensors`` (float16 weights) and ``builtin_clip_card.json`` (recipe,
    seeds, held-out figures). A killed run resumes from ``out_dir/.builtin_clip_ckpt``.

    Parameters
    ----------
    out_dir : path
        Output folder (``data/`` of the repository to update the shipped model).
    steps : int
        Optimisation steps (AdamW, one-cycle learning rate).
    batch_size : int
        Image-caption pairs per step.
    lr, weight_decay : float
        Peak learning rate and AdamW weight decay (not on gains, biases, embeddings).
    n_images : int
        Training world size (seed ``TRAINING_SEED_START + seed``).
    seed : int
        Seeds the training world, the initialisation and the batches.
    eval_every : int
        Steps between held-out checks (world seed ``TRAINING_SEED_START + 9999``).
    hard_groups : int
        Hard-negative groups per batch: each is one image of every shape, all sharing the
        largest object's colour and the background, captioned with the grammar's short
        form ("a red star on grey"). In random batches colour, position and background
        already tell captions apart, so without such groups the contrastive loss barely
        rewards telling shapes apart.
    threads : int or None
        torch threads (None: leave as is).
    %(verbose)s

    Returns
    -------
    dict
        The model card written to ``builtin_clip_card.json``.
    """
    import open_clip
    import torch
    from safetensors.torch import load_file, save_file

    from ..simulate import make_world
    from ..simulate.world import TRAINING_SEED_START
    from .zeroshot import zero_shot_attributes

    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    vocab = WorldTokenizer(world_vocabulary(), BUILTIN_CLIP_CONFIG["text_cfg"]["context_length"])
    cfg = json.loads(json.dumps(BUILTIN_CLIP_CONFIG))
    cfg["text_cfg"]["vocab_size"] = vocab.vocab_size
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = open_clip.model.CLIP(**cfg)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built-in CLIP: %d parameters", n_params)

    world = make_world(n_images, seed=TRAINING_SEED_START + seed)
    images = world.to_array()
    captions = [world.captions(i) for i in world.ids]
    tokens = [vocab(c) for c in captions]
    attrs = world.attributes
    short_tokens = vocab([f"a {c} {s} on {b}" for c, s, b in
                          zip(attrs["colour"], attrs["shape"], attrs["background"])])
    groups: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for (colour, bg, shape), rows in attrs.reset_index().groupby(
            ["colour", "background", "shape"]).indices.items():
        groups.setdefault((colour, bg), {})[shape] = np.asarray(rows)
    n_shapes = attrs["shape"].nunique()
    group_keys = [k for k, v in groups.items() if len(v) == n_shapes]
    val_world = make_world(1000, seed=TRAINING_SEED_START + 9999)
    val_x = _to_tensor(val_world.to_array())

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = open_clip.loss.ClipLoss()

    ckpt = out_dir / ".builtin_clip_ckpt"
    start = 0
    if (ckpt / "state.json").exists():
        state = json.loads((ckpt / "state.json").read_text())
        if state.get("config") == cfg and state.get("seed") == seed and state.get("steps") == steps:
            model.load_state_dict(load_file(ckpt / "model.safetensors"))
            for _ in range(state["step"]):
                sched.step()
            rng = np.random.default_rng([seed, state["step"]])
            torch.manual_seed(seed + state["step"])
            start = state["step"]
            logger.info("resuming built-in CLIP training at step %d", start)

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            f = torch.cat([model.encode_image(val_x[i:i + 500], normalize=True)
                           for i in range(0, len(val_x), 500)]).numpy()
        text = _TextEncoder(model, vocab)
        scores = {f"zero_shot_{a}": zero_shot_attributes(text, val_world, a, image_features=f)[
            "accuracy"] for a in ("shape", "colour")}
        model.train()
        return scores

    model.train()
    history = []
    bar = progress(range(start, steps), total=steps, initial=start, desc="built-in CLIP")
    for step in bar:
        hard = []
        for g in rng.choice(len(group_keys), size=hard_groups, replace=False):
            hard.extend(int(rng.choice(r)) for r in groups[group_keys[g]].values())
        rest = rng.choice(len(images), size=batch_size - len(hard), replace=False)
        idx = np.concatenate([np.asarray(hard, dtype=int), rest])
        x = _to_tensor(images[idx])
        t = torch.stack([short_tokens[i] for i in hard]
                        + [tokens[i][rng.integers(len(tokens[i]))] for i in rest])
        img_f = model.encode_image(x, normalize=True)
        txt_f = model.encode_text(t, normalize=True)
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            ev = evaluate()
            history.append({"step": step + 1, "loss": loss.item(), **ev})
            logger.info("step %d loss %.3f shape %.3f colour %.3f", step + 1, loss.item(),
                        ev["zero_shot_shape"], ev["zero_shot_colour"])
            ckpt.mkdir(exist_ok=True)
            with atomic_path(ckpt / "model.safetensors") as tmp:
                save_file(model.state_dict(), str(tmp))
            write_json_atomic(ckpt / "state.json", {"step": step + 1, "config": cfg,
                                                    "seed": seed, "steps": steps})
    model.eval()
    final = evaluate()
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model": MODEL_NAME})
    write_json_atomic(out_dir / CONFIG_FILE, cfg)
    write_json_atomic(out_dir / VOCAB_FILE, vocab.to_json())
    card = {
        "model": MODEL_NAME,
        "architecture": "open_clip.model.CLIP (ModifiedResNet image tower, text transformer)",
        "parameters": n_params,
        "recipe": {"steps": steps, "batch_size": batch_size, "lr": lr, "hard_groups": hard_groups,
                   "weight_decay": weight_decay, "optimizer": "AdamW(0.9, 0.98) + OneCycle",
                   "loss": "open_clip.loss.ClipLoss", "n_images": n_images,
                   "train_world_seed": TRAINING_SEED_START + seed,
                   "val_world_seed": TRAINING_SEED_START + 9999, "seed": seed,
                   "captions": "one of each image's grammar captions, drawn per step"},
        "validation": final,
        "history": history,
        "train_seconds": round(time.perf_counter() - t_start, 1),
        "command": f"braindecode-kit train-builtin clip --out {out_dir} --steps {steps} --seed {seed}",
    }
    write_json_atomic(out_dir / CARD_FILE, card)
    import shutil

    shutil.rmtree(ckpt, ignore_errors=True)
    return card


def write_builtin_files(directory: PathLike, model=None, *, seed: int = 0,
                        vocabulary: list[str] | None = None) -> Path:
    """Write a built-in CLIP's files (config, vocabulary, safetensors weights) into a folder.

    The files are laid out as :func:`train_builtin_clip` writes them, so
    :func:`create_builtin_clip` (and ``Embedder("builtin", pretrained=directory)``) reads
    them. Used to ship trained weights and, in tests, to make a randomly initialised
    built-in CLIP without training.

    Parameters
    ----------
    directory : path
        The folder to write into (created if needed).
    model : open_clip.model.CLIP | None
        The model whose weights are written; ``None`` initialises one at random with
        :data:`BUILTIN_CLIP_CONFIG` (seeded by ``seed``).
    seed : int
        Seed of the random initialisation (only when ``model`` is None).
    vocabulary : list of str | None
        The tokenizer's words; default :func:`world_vocabulary`.

    Returns
    -------
    Path
        ``directory``.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    words = world_vocabulary() if vocabulary is None else list(vocabulary)
    vocab = WorldTokenizer(words, BUILTIN_CLIP_CONFIG["text_cfg"]["context_length"])
    cfg = json.loads(json.dumps(BUILTIN_CLIP_CONFIG))
    cfg["text_cfg"]["vocab_size"] = vocab.vocab_size
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.model.CLIP(**cfg)
    elif model.token_embedding.num_embeddings != vocab.vocab_size:
        raise ValueError(
            f"The model's text vocabulary has {model.token_embedding.num_embeddings} tokens but "
            f"the tokenizer has {vocab.vocab_size}; pass the vocabulary it was trained with."
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model": MODEL_NAME})
    write_json_atomic(directory / CONFIG_FILE, cfg)
    write_json_atomic(directory / VOCAB_FILE, vocab.to_json())
    return directory
