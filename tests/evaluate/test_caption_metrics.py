"""Caption metrics on hand-checked cases: identical captions score 1, a worked BLEU/ROUGE
example, CLIP-S and RefCLIP-S against their formulas with a fake CLIP, metrics that cannot
run say why, and the MindEye2 comparison names its parts."""

from __future__ import annotations

import numpy as np
import pytest

from braindecode_kit.evaluate import caption_metrics as cm


class FakeCLIP:
    """Deterministic text embeddings: a fixed vector per text (prompt prefix included)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode_texts(self, texts):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def test_identical_caption_scores_one():
    m = cm.caption_metrics(["a red star on grey"], [["a red star on grey"]],
                           metrics=["bleu1", "bleu4", "rouge_l"], tokenizer="simple")
    assert m["bleu1"] == pytest.approx(1.0, abs=1e-6)
    assert m["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert m["rouge_l"] == pytest.approx(1.0)
    assert m["tokenizer"] == "simple" and m["n"] == 1


def test_worked_bleu_and_rouge_example():
    # candidate "the cat sat on the mat" vs reference "the cat is on the mat":
    # unigram precision 5/6, bigram 3/5 (the cat, on the, the mat), same length (BP = 1)
    m = cm.caption_metrics(["the cat sat on the mat"], [["the cat is on the mat"]],
                           metrics=["bleu1", "bleu2", "rouge_l"], tokenizer="simple")
    assert m["bleu1"] == pytest.approx(5 / 6, abs=1e-6)
    assert m["bleu2"] == pytest.approx(np.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    # LCS = "the cat on the mat" (5): P = R = 5/6, ROUGE-L (beta 1.2) = 5/6
    assert m["rouge_l"] == pytest.approx(5 / 6, abs=1e-6)


def test_cider_ranks_the_right_caption_first():
    refs = [["a red star on grey", "there is a red star"], ["a blue circle on white",
                                                              "a big blue circle"],
            ["a green cross on black", "one green cross"]]
    good = cm.caption_metrics(["a red star", "a blue circle", "a green cross"], refs,
                              metrics=["cider_d"], tokenizer="simple", per_item=True)
    bad = cm.caption_metrics(["a green cross", "a red star", "a blue circle"], refs,
                             metrics=["cider_d"], tokenizer="simple")
    assert good["cider_d"] > 1.0 > bad["cider_d"]
    assert len(good["per_item"]["cider_d"]) == 3


def test_simple_tokenizer_drops_punctuation_as_ptb():
    assert cm.simple_tokenize("A red star, a blue circle.") == "a red star a blue circle"
    assert cm.simple_tokenize("a medium-sized star") == "a medium-sized star"


def test_ptb_tokenizer_when_java_is_there():
    ok, _ = cm.java_available()
    if not ok:
        pytest.skip("no Java on this machine")
    tokens, how = cm.tokenize_captions(["A red star, on grey.", "a medium-sized star"])
    assert how == "ptb"
    assert tokens == ["a red star on grey", "a medium-sized star"]


def test_without_java_the_fallback_is_named(monkeypatch):
    monkeypatch.setattr(cm, "java_available", lambda: (False, "no 'java' executable"))
    m = cm.caption_metrics(["a red star"], [["a red star"]],
                           metrics=["bleu1", "meteor", "spice"])
    assert m["tokenizer"] == "simple"
    assert m["meteor"] == {"available": False, "reason": pytest.approx(m["meteor"]["reason"])}
    assert "Java" in m["meteor"]["reason"] and m["spice"]["available"] is False
    with pytest.raises(RuntimeError, match="Java"):
        cm.caption_metrics(["a"], [["a"]], metrics=["bleu1"], tokenizer="ptb")


def test_spice_and_sentence_similarity_say_why_not():
    m = cm.caption_metrics(["a red star"], [["a red star"]], metrics=["spice", "sentence_sim"],
                           tokenizer="simple")
    assert m["spice"]["available"] is False and "CoreNLP" in m["spice"]["reason"]
    assert m["sentence_sim"]["available"] is False
    assert "sentence" in m["sentence_sim"]["reason"]


def test_clip_s_and_refclip_s_follow_their_formulas():
    rng = np.random.default_rng(0)
    vec = {t: rng.standard_normal(8) for t in
           ["c1", "c2", "A photo depicts c1", "A photo depicts c2", "r1", "r2", "r3"]}
    unit = {t: v / np.linalg.norm(v) for t, v in vec.items()}
    images = rng.standard_normal((2, 8))
    im = images / np.linalg.norm(images, axis=1, keepdims=True)
    m = cm.caption_metrics(["c1", "c2"], [["r1", "r2"], ["r3"]], image_embeddings=images,
                           embedder=FakeCLIP(vec), metrics=["clip_s", "refclip_s", "text_sim"],
                           per_item=True)
    clip = [2.5 * max(im[i] @ unit[f"A photo depicts c{i + 1}"], 0) for i in range(2)]
    assert m["clip_s"] == pytest.approx(np.mean(clip), abs=1e-5)
    ref = [max(unit["c1"] @ unit["r1"], unit["c1"] @ unit["r2"], 0), max(unit["c2"] @ unit["r3"], 0)]
    hm = [2 * c * r / (c + r) if c + r > 0 else 0.0 for c, r in zip(clip, ref)]
    assert m["refclip_s"] == pytest.approx(np.mean(hm), abs=1e-5)
    ts = [np.mean([unit["c1"] @ unit["r1"], unit["c1"] @ unit["r2"]]), unit["c2"] @ unit["r3"]]
    assert m["text_sim"] == pytest.approx(np.mean(ts), abs=1e-5)
    assert m["per_item"]["clip_s"] == pytest.approx(clip, abs=1e-5)


def test_clip_metrics_unavailable_without_a_clip_or_images():
    m = cm.caption_metrics(["a"], [["a"]], metrics=["clip_s", "text_sim"], tokenizer="simple")
    assert m["clip_s"]["available"] is False and "embedder" in m["clip_s"]["reason"]
    fake = FakeCLIP({"a": np.ones(4)})
    m = cm.caption_metrics(["a"], [["a"]], embedder=fake, metrics=["clip_s", "text_sim"])
    assert m["clip_s"]["available"] is False and "image" in m["clip_s"]["reason"]
    assert m["text_sim"] == pytest.approx(1.0)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="one entry per candidate"):
        cm.caption_metrics(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="list of str"):
        cm.caption_metrics("a red star", [["a"]])
    with pytest.raises(ValueError, match="metrics"):
        cm.caption_metrics(["a"], [["a"]], metrics=["bleu5"])


def test_bootstrap_ci_and_the_mindeye2_comparison():
    lo, hi = cm.bootstrap_ci(np.r_[np.zeros(50), np.ones(50)], n_boot=500, seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.3
    brain = {"bleu4": 0.2, "cider_d": 0.5, "spice": {"available": False, "reason": "x"}}
    image = {"bleu4": 0.4, "cider_d": 1.0}
    out = cm.caption_comparison(brain, image)
    assert out["brain_over_captioner"] == {"bleu4": 0.5, "cider_d": 0.5}
    assert out["brain_vs_references"]["bleu4"] == 0.2
    assert out["captioner_vs_references"]["cider_d"] == 1.0
