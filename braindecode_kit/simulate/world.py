"""The built-in stimulus world: procedurally drawn scenes with captions.

Each scene has one to three objects (shape, colour, size, position on a 3x3 grid) on a
background with a colour and a texture. Everything is deterministic: image ``i`` of the
world drawn with ``seed`` depends only on ``(seed, i, size)``, so ``make_world(100, 3)``
is the first hundred stimuli of ``make_world(1000, 3)``, and the same seed gives the
same bytes. Images are drawn lazily (on :meth:`StimulusSet.load_image`) with PIL at four
times the requested size and downsampled, which anti-aliases the edges.

Seeds ``>= TRAINING_SEED_START`` (10 000) are reserved for training the built-in models
(CLIP, decoder, captioner); evaluation and demo worlds use smaller seeds, so a demo never
scores a model on an image it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._utils import hash_jsonable
from ..stimuli import StimulusSet

__all__ = [
    "make_world",
    "render_scene",
    "describe_scene",
    "Scene",
    "SceneObject",
    "SHAPES",
    "COLOURS",
    "SIZES",
    "POSITIONS",
    "BACKGROUNDS",
    "TEXTURES",
    "TRAINING_SEED_START",
    "WORLD_VERSION",
]

#: Seeds at or above this value are reserved for training the built-in models.
TRAINING_SEED_START = 10_000
#: Bumped whenever drawing or captions change (it enters the stimulus fingerprints).
WORLD_VERSION = 1

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
#: Object colours (name -> RGB).
COLOURS = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (35, 165, 55),
    "cyan": (40, 205, 225),
    "blue": (35, 65, 215),
    "purple": (135, 45, 185),
    "pink": (250, 125, 190),
}
SIZES = ("small", "medium", "large")
#: Object radius as a fraction of the image side, per size.
SIZE_RADIUS = {"small": 0.085, "medium": 0.13, "large": 0.185}
#: 3x3 grid of positions, row-major (top row first).
POSITIONS = (
    "top left", "top", "top right",
    "left", "centre", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
#: Background colours (name -> RGB).
BACKGROUNDS = {
    "grey": (128, 128, 128),
    "white": (236, 236, 236),
    "black": (22, 22, 22),
    "brown": (105, 72, 45),
}
TEXTURES = ("plain", "striped", "dotted")

_SIZE_WORDS = {"small": ("small", "little"), "medium": ("medium", "medium-sized"),
               "large": ("large", "big")}  # fmt: skip
_POSITION_PHRASES = {
    "top left": ("at the top left", "in the top left corner"),
    "top": ("at the top", "at the top centre"),
    "top right": ("at the top right", "in the top right corner"),
    "left": ("on the left", "at the middle left"),
    "centre": ("in the centre", "in the middle"),
    "right": ("on the right", "at the middle right"),
    "bottom left": ("at the bottom left", "in the bottom left corner"),
    "bottom": ("at the bottom", "at the bottom centre"),
    "bottom right": ("at the bottom right", "in the bottom right corner"),
}
_TEXTURE_WORDS = {"plain": "", "striped": "striped ", "dotted": "dotted "}


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: its latent attributes and exact geometry."""

    shape: str
    colour: str
    size: str
    position: str
    rgb: tuple[int, int, int]
    cx: float  # centre, fraction of the image side
    cy: float
    radius: float  # fraction of the image side
    angle: float  # degrees


@dataclass(frozen=True)
class Scene:
    """A scene: objects (the first is the largest, drawn last so it is on top) and background."""

    objects: tuple[SceneObject, ...]
    background: str
    texture: str
    bg_rgb: tuple[int, int, int]
    texture_phase: float
    texture_angle: int


# --------------------------------------------------------------------------- sampling
def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int) -> tuple:
    d = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + e, 0, 255)) for c, e in zip(rgb, d))


def sample_scene(seed: int, index: int) -> Scene:
    """Draw the latent scene of stimulus ``index`` of the world ``seed`` (deterministic)."""
    rng = np.random.default_rng([WORLD_VERSION, int(seed), int(index)])
    n_objects = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.20]))
    cells = rng.permutation(len(POSITIONS))[:n_objects]
    if n_objects == 1:
        sizes = [SIZES[int(rng.integers(3))]]
    else:
        main = SIZES[int(rng.integers(1, 3))]  # medium or large, strictly the largest
        smaller = SIZES[: SIZES.index(main)]
        sizes = [main] + [smaller[int(rng.integers(len(smaller)))] for _ in range(n_objects - 1)]
    colours = list(COLOURS)
    objects = []
    for k in range(n_objects):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = colours[int(rng.integers(len(colours)))]
        pos = POSITIONS[int(cells[k])]
        row, col = divmod(int(cells[k]), 3)
        cx = (col + 0.5) / 3 + rng.uniform(-0.035, 0.035)
        cy = (row + 0.5) / 3 + rng.uniform(-0.035, 0.035)
        radius = SIZE_RADIUS[sizes[k]] * rng.uniform(0.92, 1.08)
        angle = rng.uniform(-15, 15)
        objects.append(
            SceneObject(shape, colour, sizes[k], pos, _jitter(rng, COLOURS[colour], 14),
                        float(cx), float(cy), float(radius), float(angle))
        )  # fmt: skip
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    return Scene(
        objects=tuple(objects),
        background=background,
        texture=texture,
        bg_rgb=_jitter(rng, BACKGROUNDS[background], 8),
        texture_phase=float(rng.uniform(0, 1)),
        texture_angle=int(rng.choice([0, 45, 90, 135])),
    )


# --------------------------------------------------------------------------- drawing
def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    if shape == "square":
        a = 1 / math.sqrt(2)
        return [(-a, -a), (a, -a), (a, a), (-a, a)]
    if shape == "triangle":  # pointing up, centroid at the origin
        return [(0.0, -1.0), (0.866, 0.5), (-0.866, 0.5)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]
    if shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            t = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(t), r * math.sin(t)))
        return pts
    if shape == "cross":
        w = 0.33
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1),
                (-w, w), (-1, w), (-1, -w), (-w, -w)]  # fmt: skip
    raise ValueError(f"Unknown shape {shape!r}; allowed: {SHAPES}.")


_UNIT = {s: _unit_polygon(s) for s in SHAPES if s != "circle"}


def _shade(rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    sign = -1 if sum(rgb) > 3 * 128 else 1
    return tuple(int(np.clip(c + sign * amount, 0, 255)) for c in rgb)


def render_scene(scene: Scene, size: int = 64, supersample: int = 4):
    """Draw a :class:`Scene` as an RGB PIL image of ``size x size`` pixels.

    The scene is drawn at ``supersample`` times the size and downsampled with a box
    filter, which anti-aliases the edges.
    """
    from PIL import Image, ImageDraw

    big = int(size) * int(supersample)
    img = Image.new("RGB", (big, big), scene.bg_rgb)
    draw = ImageDraw.Draw(img)
    tex_rgb = _shade(scene.bg_rgb, 28)
    if scene.texture == "striped":
        period = big / 8
        width = max(1, int(period * 0.35))
        off = scene.texture_phase * period
        if scene.texture_angle in (0, 90):
            for k in range(-1, 10):
                p = off + k * period
                box = [(0, p), (big, p)] if scene.texture_angle == 0 else [(p, 0), (p, big)]
                draw.line(box, fill=tex_rgb, width=width)
        else:
            sgn = 1 if scene.texture_angle == 45 else -1
            for k in range(-12, 13):
                p = off + k * period * math.sqrt(2)
                if sgn > 0:
                    draw.line([(p, 0), (p + big, big)], fill=tex_rgb, width=width)
                else:
                    draw.line([(p + big, 0), (p, big)], fill=tex_rgb, width=width)
    elif scene.texture == "dotted":
        period = big / 7
        r = period * 0.16
        off = scene.texture_phase * period
        for i in range(-1, 9):
            for j in range(-1, 9):
                x = off + i * period + (period / 2 if j % 2 else 0)
                y = off + j * period
                draw.ellipse([x - r, y - r, x + r, y + r], fill=tex_rgb)
    # the largest object (index 0) is drawn last, on top of the others
    for obj in reversed(scene.objects):
        cx, cy, rad = obj.cx * big, obj.cy * big, obj.radius * big
        if obj.shape == "circle":
            draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=obj.rgb)
            continue
        t = math.radians(obj.angle)
        c, s = math.cos(t), math.sin(t)
        pts = [(cx + rad * (x * c - y * s), cy + rad * (x * s + y * c)) for x, y in _UNIT[obj.shape]]
        draw.polygon(pts, fill=obj.rgb)
    if supersample > 1:
        img = img.resize((int(size), int(size)), Image.BOX)
    return img


# --------------------------------------------------------------------------- captions
def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe_scene(scene: Scene, seed: int, index: int) -> list[str]:
    """Captions of a scene from a small grammar, with paraphrases (deterministic).

    Returns four captions: a full description of the largest object and the background,
    a short one, a "there is ..." paraphrase mentioning the other objects, and a list of
    all objects.
    """
    rng = np.random.default_rng([WORLD_VERSION, int(seed), int(index), 1])
    main, others = scene.objects[0], scene.objects[1:]
    tex = _TEXTURE_WORDS[scene.texture]

    def pick(options):
        return options[int(rng.integers(len(options)))]

    size_w = pick(_SIZE_WORDS[main.size])
    pos_w = pick(_POSITION_PHRASES[main.position])
    full = f"{_a(size_w)} {main.colour} {main.shape} {pos_w} on {_a(tex + scene.background)} background"
    short = f"{_a(main.colour)} {main.shape} on {scene.background}"
    size_w2 = pick(_SIZE_WORDS[main.size])
    pos_w2 = pick(_POSITION_PHRASES[main.position])
    there = f"there is {_a(size_w2)} {main.colour} {main.shape} {pos_w2}"
    other_phr = [f"{_a(pick(_SIZE_WORDS[o.size]))} {o.colour} {o.shape}" for o in others]
    if others:
        there += f" with {_join(other_phr)}"
    every = [f"{_a(main.colour)} {main.shape}"] + [f"{_a(o.colour)} {o.shape}" for o in others]
    if others:
        listing = f"{_join(every)} on {_a(tex + scene.background)} background"
    else:
        listing = f"one {main.colour} {main.shape} {pick(_POSITION_PHRASES[main.position])}"
    return [full, short, there, listing]


# --------------------------------------------------------------------------- the world
def _scene_row(scene: Scene) -> dict:
    main = scene.objects[0]
    row = {
        "shape": main.shape,
        "colour": main.colour,
        "size": main.size,
        "position": main.position,
        "n_objects": len(scene.objects),
        "background": scene.background,
        "texture": scene.texture,
    }
    for k in range(3):
        o = scene.objects[k] if k < len(scene.objects) else None
        row[f"obj{k}_shape"] = o.shape if o else ""
        row[f"obj{k}_colour"] = o.colour if o else ""
        row[f"obj{k}_size"] = o.size if o else ""
        row[f"obj{k}_position"] = o.position if o else ""
        row[f"obj{k}_x"] = o.cx if o else np.nan
        row[f"obj{k}_y"] = o.cy if o else np.nan
    return row


class _WorldSource:
    """Draws world images on demand (the image source of a world StimulusSet)."""

    def __init__(self, scenes: dict[str, Scene], size: int) -> None:
        self.scenes = scenes
        self.size = size

    def __call__(self, stimulus_id: str):
        return render_scene(self.scenes[stimulus_id], self.size)


def make_world(n: int, seed: int = 0, size: int = 64) -> StimulusSet:
    """Draw ``n`` procedural scenes of the built-in world.

    Parameters
    ----------
    n : int
        Number of stimuli (>= 1).
    seed : int
        The world's seed (>= 0). Same seed, same scenes, same bytes; stimulus ``i`` does not
        depend on ``n``. Seeds ``>= 10_000`` (:data:`TRAINING_SEED_START`) are reserved for
        training the built-in models; evaluate on smaller seeds.
    size : int
        Image side in pixels (>= 16).

    Returns
    -------
    StimulusSet
        Ids ``f"w{seed}-{i:05d}"``; four captions per image; attributes ``shape``,
        ``colour``, ``size``, ``position`` (of the largest object), ``n_objects``,
        ``background``, ``texture``, the per-object columns ``obj{k}_shape``,
        ``obj{k}_colour``, ``obj{k}_size``, ``obj{k}_position``, ``obj{k}_x``, ``obj{k}_y``
        (k = 0, 1, 2; empty/NaN when absent) and ``seed``, ``index``. Images are drawn on
        first access.

    Examples
    --------
    >>> from braindecode_kit.simulate import make_world
    >>> world = make_world(4, seed=1)
    >>> world.ids[0]
    'w1-00000'
    >>> world.load_image("w1-00000").size
    (64, 64)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"'n' must be a positive integer, but got {n!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative integer, but got {seed!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"'size' must be an integer >= 16 (pixels), but got {size!r}.")
    n, seed, size = int(n), int(seed), int(size)
    ids = [f"w{seed}-{i:05d}" for i in range(n)]
    scenes: dict[str, Scene] = {}
    captions: dict[str, list[str]] = {}
    rows = []
    for i, sid in enumerate(ids):
        scene = sample_scene(seed, i)
        scenes[sid] = scene
        captions[sid] = describe_scene(scene, seed, i)
        row = _scene_row(scene)
        row["seed"] = seed
        row["index"] = i
        rows.append(row)
    attributes = pd.DataFrame(rows, index=pd.Index(ids, name="stimulus_id"))

    def fingerprint(sid: str) -> str:
        i = int(sid.rsplit("-", 1)[1])
        return hash_jsonable({"world": WORLD_VERSION, "seed": seed, "index": i, "size": size})

    return StimulusSet(
        ids,
        _WorldSource(scenes, size),
        captions=captions,
        attributes=attributes,
        fingerprints=fingerprint,
        name=f"world(seed={seed}, size={size})",
        cache_size=4096,
    )
