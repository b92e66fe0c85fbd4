"""The built-in captioner: a ClipCap-style prefix language model trained on the built-in world.

A CLIP image embedding (unit norm) is mapped by an MLP (ClipCap's mapper: ``d -> k*w/2 ->
k*w``, Tanh) into a prefix of ``k = 10`` token embeddings of a tiny GPT-2
(:class:`transformers.GPT2LMHeadModel`, 3 layers of width 128); the caption follows a
``<bos>`` token and ends with ``<eos>``. The tokenizer is word-level over the world's
caption vocabulary (a :mod:`tokenizers` ``WordLevel`` model wrapped as
:class:`transformers.PreTrainedTokenizerFast`): the world's captions use ~60 words, so a
BPE table would be most of the weights for nothing.

It is trained (cross-entropy of the caption given the prefix, GPT-2 fine-tuned with the
mapper, as ClipCap's MLP variant) on world images drawn with seeds ``>=
TRAINING_SEED_START`` and their four grammar captions, from the built-in CLIP's image
embeddings with Gaussian noise added (then re-normalised), so that it still names what
it sees from imperfect, decoded embeddings. Files in ``data/``:
``builtin_captioner.json`` (configuration), ``builtin_captioner_tokenizer.json``,
``builtin_captioner.safetensors`` (float16 weights), ``builtin_captioner_card.json``
(recipe and held-out figures). Retrain with ``braindecode-kit train-builtin captioner
--out data/``; ``benchmarks/captioner.py`` measures the held-out figures.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_int
from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._utils import PathLike, atomic_path, write_json_atomic
from .base import CaptionBackend, as_embeddings

__all__ = [
    "PrefixLMCaptioner",
    "attribute_accuracy",
    "build_world_tokenizer",
    "caption_attributes",
    "train_builtin_captioner",
    "write_prefix_lm",
]

CONFIG_FILE = "builtin_captioner.json"
TOKENIZER_FILE = "builtin_captioner_tokenizer.json"
WEIGHTS_FILE = "builtin_captioner.safetensors"
CARD_FILE = "builtin_captioner_card.json"

#: Architecture of the built-in captioner (GPT-2 fields + the prefix mapper's).
BUILTIN_CAPTIONER_CONFIG: dict[str, Any] = {
    "prefix_length": 10,
    "embed_dim": 128,
    "gpt2": {"n_embd": 128, "n_layer": 3, "n_head": 4, "n_positions": 48,
             "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1},
}
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


# --------------------------------------------------------------------------- tokenizer
def build_world_tokenizer(words: list[str] | None = None):
    """A word-level :class:`~transformers.PreTrainedTokenizerFast` over the world's words.

    Text is lower-cased, split on whitespace and commas (kept as tokens); unknown words map
    to ``<unk>``. ``words`` defaults to every word of the world's caption grammar.
    """
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    if words is None:
        from ..embed.builtin import world_vocabulary

        words = world_vocabulary()
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS.values())}
    for w in [*sorted(set(words)), ","]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r"[,.]"), behavior="isolated"),
    ])
    return _wrap(tok)


def _wrap(tok):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIAL_TOKENS["pad"], bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"], unk_token=SPECIAL_TOKENS["unk"])


def _load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return _wrap(Tokenizer.from_file(str(path)))


def clean_caption(text: str) -> str:
    """Join word-level tokens back into text (``"star , a"`` -> ``"star, a"``)."""
    return re.sub(r"\s+([,.])", r"\1", " ".join(text.split())).strip()


# --------------------------------------------------------------------------- the model
def _build_module(config: dict[str, Any], vocab_size: int, special: dict[str, int]):
    import torch
    from torch import nn
    from transformers import GPT2Config, GPT2LMHeadModel

    class PrefixLM(nn.Module):
        """ClipCap: MLP mapper from a CLIP embedding to ``k`` prefix embeddings + GPT-2."""

        def __init__(self) -> None:
            super().__init__()
            k, d = config["prefix_length"], config["embed_dim"]
            w = config["gpt2"]["n_embd"]
            self.prefix_length = k
            self.mapper = nn.Sequential(nn.Linear(d, k * w // 2), nn.Tanh(),
                                        nn.Linear(k * w // 2, k * w))
            gcfg = GPT2Config(vocab_size=vocab_size, bos_token_id=special["bos"],
                              eos_token_id=special["eos"], pad_token_id=special["pad"],
                              **config["gpt2"])
            self.gpt = GPT2LMHeadModel(gcfg)

        def prefix(self, emb: torch.Tensor) -> torch.Tensor:
            emb = nn.functional.normalize(emb, dim=-1)
            return self.mapper(emb).view(emb.shape[0], self.prefix_length, -1)

        def forward(self, emb, ids, mask):
            """Loss of the captions ``ids`` (``<bos>`` first) given the embeddings."""
            tok = self.gpt.transformer.wte(ids)
            x = torch.cat([self.prefix(emb), tok], dim=1)
            ones = torch.ones(emb.shape[0], self.prefix_length, dtype=mask.dtype,
                              device=mask.device)
            labels = torch.cat([torch.full_like(ones, -100), ids.masked_fill(mask == 0, -100)],
                               dim=1)
            labels[:, self.prefix_length] = -100  # <bos> is given, not predicted
            return self.gpt(inputs_embeds=x, attention_mask=torch.cat([ones, mask], 1),
                            labels=labels).loss

    return PrefixLM()


class PrefixLMCaptioner(CaptionBackend):
    """A trained prefix LM (the built-in captioner, or one of the same layout in a folder).

    Parameters
    ----------
    model : path | None
        A folder holding ``builtin_captioner.json``, ``builtin_captioner_tokenizer.json``
        and ``builtin_captioner.safetensors`` (default: the shipped ``data/``).
    device : str
        Torch device.
    """

    name = "prefix_lm"

    def __init__(self, model: PathLike | None = None, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file

        from .._resources import data_dir
        from ..embed.builtin import check_safetensors

        folder = Path(model) if model is not None else data_dir()
        missing = [f for f in (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE)
                   if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"The prefix-LM captioner folder {str(folder)!r} lacks {missing}. Train one "
                f"with `braindecode-kit train-builtin captioner --out {folder}`.")
        self.folder = folder
        self.config = json.loads((folder / CONFIG_FILE).read_text())
        self.tokenizer = _load_tokenizer(folder / TOKENIZER_FILE)
        check_safetensors(folder / WEIGHTS_FILE)
        self.module = _build_module(self.config, len(self.tokenizer), self._special())
        state = load_file(folder / WEIGHTS_FILE)
        missing, unexpected = self.module.load_state_dict(
            {k: v.float() for k, v in state.items()}, strict=False)
        if unexpected or set(missing) - {"gpt.lm_head.weight"}:  # the head is tied to wte
            raise ValueError(f"{folder / WEIGHTS_FILE} does not fit its config: missing "
                             f"{sorted(set(missing) - {'gpt.lm_head.weight'})}, unexpected "
                             f"{sorted(unexpected)}.")
        self.module.gpt.tie_weights()
        self.module.eval().to(torch.device(device))
        self.device = str(device)
        self.embed_dim = int(self.config["embed_dim"])

    def _special(self) -> dict[str, int]:
        t = self.tokenizer
        return {"pad": t.pad_token_id, "bos": t.bos_token_id, "eos": t.eos_token_id}

    def describe(self) -> dict[str, Any]:
        n = sum(p.numel() for p in self.module.parameters())
        return {"backend": "prefix_lm (ClipCap MLP + GPT-2)", "folder": str(self.folder),
                "parameters": n, "prefix_length": self.config["prefix_length"],
                "vocabulary": len(self.tokenizer), "embed_dim": self.embed_dim}

    def generate(self, embeddings: np.ndarray, *, max_length: int = 24, num_beams: int = 3,
                 batch_size: int = 64, seed: int = 0) -> list[str]:
        """Captions of unit-norm embeddings ``(n, embed_dim)``, by beam search
        (``num_beams=1``: greedy)."""
        return _generate_prefix(self.module, self.tokenizer, embeddings, self.embed_dim,
                                self.device, max_length, num_beams, batch_size, seed)


def _generate_prefix(module, tokenizer, embeddings, embed_dim, device, max_length, num_beams,
                     batch_size, seed) -> list[str]:
    import torch

    X = as_embeddings(embeddings, embed_dim)
    bos = tokenizer.bos_token_id
    out: list[str] = []
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        for s in range(0, len(X), batch_size):
            emb = torch.from_numpy(X[s:s + batch_size]).to(device)
            prefix = module.prefix(emb)
            start = module.gpt.transformer.wte(
                torch.full((len(emb), 1), bos, dtype=torch.long, device=device))
            x = torch.cat([prefix, start], dim=1)
            ids = module.gpt.generate(
                inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long,
                                                           device=device),
                max_new_tokens=max_length, num_beams=num_beams, do_sample=False,
                early_stopping=True if num_beams > 1 else False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                bos_token_id=bos)
            texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
            out += [clean_caption(t) for t in texts]
    return out


def write_prefix_lm(directory: PathLike, module=None, tokenizer=None, *, seed: int = 0,
                    config: dict[str, Any] | None = None, dtype: str = "float32") -> Path:
    """Write a prefix LM's files (config, tokenizer, safetensors weights) into a folder.

    ``module=None`` initialises one at random (seeded): tests use it to get a captioner
    of the built-in layout without training.
    """
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(config or BUILTIN_CAPTIONER_CONFIG))
    tokenizer = tokenizer or build_world_tokenizer()
    if module is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build_module(config, len(tokenizer), {
                "pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id,
                "eos": tokenizer.eos_token_id})
    dt = getattr(torch, dtype)
    # the LM head shares the token embedding (GPT-2 ties them): store it once
    state = {k: v.detach().to(dt).contiguous() for k, v in module.state_dict().items()
             if k != "gpt.lm_head.weight"}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model": "builtin_captioner"})
    write_json_atomic(directory / CONFIG_FILE, config)
    with atomic_path(directory / TOKENIZER_FILE) as tmp:
        tokenizer.backend_tokenizer.save(str(tmp))
    return directory


# --------------------------------------------------------------------------- scoring
def caption_attributes(caption: str) -> dict[str, str | None]:
    """The first shape and the first object colour a caption names (None: none).

    The world's captions name the largest object first, so these are what a caption says
    of the main object.
    """
    from ..simulate.world import COLOURS, SHAPES

    words = _WORD.findall(caption.lower())
    shape = next((w for w in words if w in SHAPES), None)
    colour = next((w for w in words if w in COLOURS), None)
    return {"shape": shape, "colour": colour}


def attribute_accuracy(captions: list[str], attributes) -> dict[str, float]:
    """Share of captions whose first shape / colour word is the main object's."""
    named = [caption_attributes(c) for c in captions]
    return {a: float(np.mean([n[a] == v for n, v in zip(named, attributes[a])]))
            for a in ("shape", "colour")}


# --------------------------------------------------------------------------- training
@fill_doc
@verbose
def train_builtin_captioner(
    out_dir: PathLike,
    *,
    steps: int = 800,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    n_images: int = 8000,
    noise: float = 0.8,
    seed: int = 0,
    eval_every: int = 100,
    n_val: int = 300,
    threads: int | None = None,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Train the built-in captioner on the built-in world and write its files into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (``data/`` of the repository to update the shipped model).
    steps : int
        Optimisation steps (AdamW, one-cycle learning rate).
    batch_size : int
        Image-caption pairs per step (one of each image's four captions, drawn per step).
    lr, weight_decay : float
        Peak learning rate and AdamW weight decay.
    n_images : int
        Training world size (seed ``TRAINING_SEED_START + seed``).
    noise : float
        Embedding noise: each training embedding ``e`` becomes ``normalise(e + s * z)``,
        ``z`` Gaussian of unit expected norm, ``s`` uniform in ``[0, noise]`` per sample
        (``noise=0.8``: cosines to the clean embedding down to ~0.78).
    seed : int
        Seeds the training world, the initialisation and the batches.
    eval_every : int
        Steps between checks (greedy captions) on world ``TRAINING_SEED_START + 9999``.
    n_val : int
        Images of that world checked.
    threads : int | None
        torch threads (None: leave as is).
    %(verbose)s

    Returns
    -------
    dict
        The model card written to ``builtin_captioner_card.json``.
    """
    import torch

    from ..embed import Embedder
    from ..simulate import make_world
    from ..simulate.world import TRAINING_SEED_START

    check_int("steps", steps, lo=1)
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_world_tokenizer()
    config = json.loads(json.dumps(BUILTIN_CAPTIONER_CONFIG))
    special = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id,
               "eos": tokenizer.eos_token_id}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = _build_module(config, len(tokenizer), special)
    n_params = sum(p.numel() for p in module.parameters())
    logger.info("built-in captioner: %d parameters", n_params)

    embedder = Embedder("builtin")
    world = make_world(n_images, seed=TRAINING_SEED_START + seed)
    X = torch.from_numpy(embedder.encode_images(world))
    logger.info("embedded %d training images (%.0f s)", len(X), time.perf_counter() - t0)
    caps = [world.captions(i) for i in world.ids]
    n_caps = len(caps[0])
    flat = [c for cs in caps for c in cs]
    enc = tokenizer([f"{tokenizer.bos_token} {c} {tokenizer.eos_token}" for c in flat],
                    padding="longest", return_tensors="pt")
    ids_all, mask_all = enc["input_ids"], enc["attention_mask"]
    val_world = make_world(n_val, seed=TRAINING_SEED_START + 9999)
    val_X = embedder.encode_images(val_world)

    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    history = []
    module.train()
    for step in progress(range(steps), total=steps, desc="built-in captioner"):
        idx = rng.choice(len(X), size=batch_size, replace=False)
        which = idx * n_caps + rng.integers(n_caps, size=batch_size)
        emb = X[idx]
        z = torch.from_numpy(rng.standard_normal(emb.shape).astype(np.float32))
        s = torch.from_numpy(rng.uniform(0, noise, (batch_size, 1)).astype(np.float32))
        emb = emb + s * z / np.sqrt(emb.shape[1])
        m = mask_all[which]
        width = int(m.sum(1).max())
        loss = module(emb, ids_all[which, :width], m[:, :width])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            module.eval()
            pred = _generate_prefix(module, tokenizer, val_X, config["embed_dim"], "cpu",
                                    24, 1, 150, seed)
            acc = attribute_accuracy(pred, val_world.attributes)
            module.train()
            history.append({"step": step + 1, "loss": round(loss.item(), 4), **acc})
            logger.info("step %d loss %.3f shape %.3f colour %.3f", step + 1, loss.item(),
                        acc["shape"], acc["colour"])
    module.eval()
    write_prefix_lm(out_dir, module, tokenizer, config=config, dtype="float16")
    card = {
        "model": "builtin_captioner",
        "architecture": "ClipCap: MLP mapper (128 -> 640 -> 10 x 128, Tanh) into a 10-token "
                        "prefix of transformers.GPT2LMHeadModel (3 layers, width 128, 4 heads)",
        "parameters": n_params,
        "tokenizer": "tokenizers WordLevel over the world's caption words (+ ','), as "
                     "PreTrainedTokenizerFast",
        "clip": embedder.identity,
        "recipe": {"steps": steps, "batch_size": batch_size, "lr": lr,
                   "weight_decay": weight_decay, "optimizer": "AdamW + OneCycle",
                   "loss": "cross-entropy of the caption given the prefix (GPT-2 fine-tuned)",
                   "n_images": n_images, "train_world_seed": TRAINING_SEED_START + seed,
                   "val_world_seed": TRAINING_SEED_START + 9999, "seed": seed,
                   "noise": f"normalise(e + s z / sqrt(d)), s ~ U(0, {noise})",
                   "captions": "one of each image's four grammar captions, drawn per step"},
        "history": history,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "command": f"braindecode-kit train-builtin captioner --out {out_dir} --steps {steps} "
                   f"--seed {seed}",
    }
    write_json_atomic(out_dir / CARD_FILE, card)
    return card
