"""Per-image scores of reconstructions of world images."""

from __future__ import annotations

import numpy as np

from braindecode_kit.embed import Embedder
from braindecode_kit.reconstruct.scores import seen_readings, summary_scores, world_scores
from braindecode_kit.simulate import make_world


def test_the_seen_images_score_perfectly_and_shuffled_ones_do_not():
    world = make_world(24, seed=3)
    seen = world.to_array()
    emb = Embedder("builtin")
    feats = emb.encode_images(seen)
    readings = seen_readings(emb, world, feats)
    assert set(readings) == {"shape", "colour"}
    same = world_scores(emb, world, seen, feats, readings)
    assert set(same) == {"builtin_clip_2way", "shape_agreement", "colour_agreement",
                         "shape_correct", "colour_correct", "shape_template"}
    np.testing.assert_array_equal(same["shape_template"], 1.0)
    assert all(len(v) == 24 for v in same.values())
    np.testing.assert_array_equal(same["builtin_clip_2way"], 1.0)
    np.testing.assert_array_equal(same["shape_agreement"], 1.0)
    # the readings of the seen images against the world's truth
    assert same["colour_correct"].mean() == np.mean(
        readings["colour"] == world.attributes["colour"].to_numpy())
    shuffled = world_scores(emb, world, np.roll(seen, 1, axis=0), feats)  # readings made here
    assert shuffled["builtin_clip_2way"].mean() < 0.75
    assert shuffled["colour_agreement"].mean() < 0.5
    assert shuffled["shape_template"].mean() < 0.5
    # the means, with PixCorr and SSIM: what the ceiling and the benchmark report
    rolled = np.roll(seen, 1, axis=0)
    summary = summary_scores(emb, world, seen, rolled, feats, readings)
    assert set(summary) == {"builtin_clip_2way", "shape_agreement", "colour_agreement",
                            "shape_accuracy", "colour_accuracy", "shape_template", "pixcorr",
                            "ssim"}
    for key in ("builtin_clip_2way", "shape_agreement", "shape_template"):
        assert summary[key] == shuffled[key].mean()
    assert summary["colour_accuracy"] == shuffled["colour_correct"].mean()
    assert summary["ssim"] < 0.9 and summary["pixcorr"] < 0.5
    assert summary_scores(emb, world, seen, seen, feats)["ssim"] == 1.0


def test_template_shapes_read_the_truth_from_seen_images_and_not_from_others():
    from braindecode_kit.reconstruct.scores import template_shapes

    world = make_world(120, seed=4)
    seen = world.to_array()
    truth = world.attributes["shape"].to_numpy()
    np.testing.assert_array_equal(template_shapes(world, seen), truth)
    # the same at twice the resolution (the geometry is relative)
    big = make_world(30, seed=4, size=128)
    np.testing.assert_array_equal(template_shapes(big, big.to_array()), truth[:30])
    # another image's pixels (other object, other place, other background) rarely read as
    # this truth: the background is the image's own, so a wrong one is not an object
    wrong = template_shapes(world, np.roll(seen, 1, axis=0))
    assert np.mean(wrong == truth) < 0.1
    # the right object on another background colour still reads right
    recoloured = seen.copy()
    for img in recoloured:
        corner = img[0, 0].astype(int)
        near = np.abs(img.astype(int) - corner).sum(-1) < 12  # the plain background pixels
        img[near] = 255 - img[0, 0]
    plain = world.attributes["texture"].to_numpy() == "plain"
    np.testing.assert_array_equal(template_shapes(world, recoloured)[plain], truth[plain])
    # nothing drawn where the object is: "none"
    blank = np.stack([np.broadcast_to(np.asarray(world.to_array()[i, 0, 0]), seen.shape[1:])
                      for i in range(len(seen))])  # each image's own corner colour
    assert np.mean(template_shapes(world, blank) == "none") > 0.9


def test_template_shapes_refuse_non_world_stimuli_and_bad_images(tmp_path):
    import pytest
    from PIL import Image

    from braindecode_kit.reconstruct.scores import template_shapes
    from braindecode_kit.stimuli import StimulusSet

    world = make_world(3, seed=4)
    with pytest.raises(ValueError, match=r"3 square uint8 RGB images .* got 2 of shape"):
        template_shapes(world, world.to_array()[:2])
    with pytest.raises(ValueError, match=r"square uint8 .* \[\(64, 48, 3\)\]"):
        template_shapes(world, world.to_array()[:, :, :48])
    with pytest.raises(ValueError, match=r"dtype\(s\) \['float64'\]"):
        template_shapes(world, world.to_array() / 255.0)
    for name, img in zip(["cat", "dog", "owl"], world.to_array()):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
    photos = StimulusSet.from_folder(tmp_path)
    with pytest.raises(ValueError, match="built-in world images .* 'cat'"):
        template_shapes(photos, photos.to_array())
