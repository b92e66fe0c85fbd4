"""Helpers of the built-in stages: pooling retrieval over subjects, the held-out subject,
metric names that follow the fraction, run-folder paths per recording kind."""

from __future__ import annotations

import pytest

from braindecode_kit.evaluate import binomial_ci
from braindecode_kit.pipeline import load_config
from braindecode_kit.pipeline.stages import (
    fraction_label,
    kind_path,
    pool_over_subjects,
    split_subjects,
)


def test_pool_many_draws_uses_the_spread_over_draws():
    a = {"draws": [0.2, 0.4, 0.3], "n_candidates": 300, "chance": 1 / 300}
    b = {"draws": [0.4, 0.2, 0.3], "n_candidates": 300, "chance": 1 / 300}
    pooled = pool_over_subjects([a, b])
    assert pooled["draws"] == pytest.approx([0.3, 0.3, 0.3])
    assert pooled["top1"] == pytest.approx(0.3)
    assert pooled["ci"] == pytest.approx([0.3, 0.3])  # identical pooled draws: no spread


def test_pool_single_draw_gets_a_binomial_ci():
    a = {"draws": [0.3], "n_candidates": 300, "chance": 1 / 300}
    b = {"draws": [0.4], "n_candidates": 300, "chance": 1 / 300}
    pooled = pool_over_subjects([a, b])
    assert pooled["top1"] == pytest.approx(0.35)
    # the Wilson interval of 210 hits in 600 identifications
    assert pooled["ci"] == pytest.approx(binomial_ci(0.35, 600))
    assert pooled["ci"][0] == pytest.approx(0.3129, abs=1e-4)


def test_pool_counts_each_subject_once_with_the_mean_chance():
    a = {"draws": [0.3], "n_candidates": 300, "chance": 1 / 300}
    b = {"draws": [0.5], "n_candidates": 200, "chance": 1 / 200}
    pooled = pool_over_subjects([a, b])
    assert pooled["top1"] == pytest.approx(0.4)  # not (90 + 100) / 500
    assert pooled["chance"] == pytest.approx((1 / 300 + 1 / 200) / 2)


@pytest.mark.parametrize("fraction, label", [(0.1, "10pct"), (0.25, "25pct"),
                                             (0.05, "5pct"), (0.025, "2.5pct"), (1.0, "100pct"),
                                             (0.07, "7pct")])
def test_fraction_label_says_the_share(fraction, label):
    assert fraction_label(fraction) == label


def test_held_out_subject_defaults_to_the_last():
    cfg = load_config({"name": "x"})
    assert split_subjects(["03", "01", "02"], cfg) == (["01", "02"], "03")


def test_held_out_subject_is_named_in_the_config():
    cfg = load_config({"name": "x", "new_subject": {"subject": "01"}})
    assert split_subjects(["03", "01", "02"], cfg) == (["02", "03"], "01")


def test_held_out_subject_must_exist():
    cfg = load_config({"name": "x", "new_subject": {"subject": "09"}})
    with pytest.raises(ValueError, match=r"'new_subject\.subject' parameter\. Allowed values are "
                                         r"'01', '02', but got '09'"):
        split_subjects(["01", "02"], cfg)


def test_no_held_out_subject_when_disabled_or_alone():
    assert split_subjects(["01", "02"], load_config(
        {"name": "x", "new_subject": {"enabled": False}})) == (["01", "02"], None)
    assert split_subjects(["01"], load_config({"name": "x"})) == (["01"], None)


def test_fmri_keeps_the_top_level_layout():
    assert kind_path("fmri", "trials", "sub-01") == "trials/sub-01"
    assert kind_path("meg", "trials", "sub-01") == "meg/trials/sub-01"
    assert kind_path("seeg", "model") == "seeg/model"
