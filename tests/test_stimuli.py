"""StimulusSet: folder/COCO readers, lazy loading, subsets, fingerprints, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from braindecode_kit.stimuli import StimulusSet


def _write_images(folder, n=4, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n):
        arr = np.full((size, size, 3), 30 * k, dtype=np.uint8)
        arr[0, 0] = (255, 0, k)
        name = f"img{k}.png"
        Image.fromarray(arr).save(folder / name)
        names.append(name)
    return names


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "stim"
    names = _write_images(d)
    table = pd.DataFrame({
        "stimulus_id": [f"s{k}" for k in range(4)],
        "file": names,
        "captions": ["a dark square|a black picture", "", "grey", "light"],
        "category": ["a", "b", "a", "b"],
    })
    table.to_csv(d / "stimuli.csv", index=False)
    table.to_csv(d / "stimuli.tsv", index=False, sep="\t")
    return d


@pytest.mark.parametrize("table", ["stimuli.csv", "stimuli.tsv"])
def test_from_folder_table(folder, table):
    s = StimulusSet.from_folder(folder, folder / table)
    assert len(s) == 4 and s.ids == ["s0", "s1", "s2", "s3"]
    img = s.load_image("s2")
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 8)
    assert np.asarray(img)[1, 1, 0] == 60
    assert s.captions("s0") == ["a dark square", "a black picture"]
    assert s.captions("s1") == []
    assert list(s.attributes.columns) == ["file", "category"]
    assert s.attributes.loc["s3", "category"] == "b"
    assert s.attributes.index.name == "stimulus_id"
    assert s.to_array().shape == (4, 8, 8, 3)


def test_from_folder_without_table_and_rgb_conversion(tmp_path):
    d = tmp_path / "plain"
    _write_images(d, n=2)
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(d / "grey.png")
    s = StimulusSet.from_folder(d)
    assert s.ids == ["grey", "img0", "img1"]
    assert s.load_image("grey").mode == "RGB"


def test_lazy_loading_and_returned_copy(folder):
    s = StimulusSet.from_folder(folder, "stimuli.csv")
    (folder / "img3.png").unlink()  # never loaded yet: construction checked existence only
    with pytest.raises(FileNotFoundError, match="img3.png"):
        s.load_image("s3")
    img = s.load_image("s0")
    img.paste((1, 2, 3), (0, 0, 8, 8))
    assert np.asarray(s.load_image("s0"))[1, 1, 0] == 0


def test_unreadable_image_names_path(folder):
    (folder / "img1.png").write_bytes(b"this is not a png")
    s = StimulusSet.from_folder(folder, "stimuli.csv")
    with pytest.raises(ValueError, match=r"img1\.png.*unreadable"):
        s.load_image("s1")


def test_from_folder_errors(folder, tmp_path):
    df = pd.read_csv(folder / "stimuli.csv")
    with pytest.raises(ValueError, match=r"must have the columns.*\['file'\] are missing"):
        StimulusSet.from_folder(folder, df.drop(columns="file"))
    dup = df.copy()
    dup.loc[1, "stimulus_id"] = "s0"
    with pytest.raises(ValueError, match=r"unique.*'s0'"):
        StimulusSet.from_folder(folder, dup)
    missing = df.copy()
    missing.loc[2, "file"] = "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        StimulusSet.from_folder(folder, missing)
    with pytest.raises(FileNotFoundError, match="no_table.csv"):
        StimulusSet.from_folder(folder, "no_table.csv")
    with pytest.raises(FileNotFoundError, match="'folder'"):
        StimulusSet.from_folder(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No image files"):
        StimulusSet.from_folder(empty)
    with pytest.raises(ValueError, match="caption_column"):
        StimulusSet.from_folder(folder, df, caption_column="text")


def test_from_coco(folder):
    doc = {
        "images": [{"id": 7, "file_name": "img0.png", "width": 8, "height": 8},
                   {"id": 9, "file_name": "img1.png", "width": 8, "height": 8}],
        "annotations": [{"image_id": 7, "caption": " a dark one "},
                        {"image_id": 9, "caption": "two"},
                        {"image_id": 7, "caption": "another"}],
    }
    path = folder / "captions.json"
    path.write_text(json.dumps(doc))
    s = StimulusSet.from_coco(folder, path)
    assert s.ids == ["7", "9"]
    assert s.captions("7") == ["a dark one", "another"]
    assert s.attributes.loc["9", "file_name"] == "img1.png"
    bad = folder / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'images' and 'annotations'"):
        StimulusSet.from_coco(folder, bad)
    doc["images"][1]["file_name"] = "gone.png"
    path.write_text(json.dumps(doc))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        StimulusSet.from_coco(folder, path)


def test_subset_fingerprint_and_unknown_ids(folder):
    s = StimulusSet.from_folder(folder, "stimuli.csv")
    sub = s.subset(["s2", "s0"])
    assert sub.ids == ["s2", "s0"]
    assert sub.attributes.index.tolist() == ["s2", "s0"]
    assert sub.fingerprint("s0") == s.fingerprint("s0")
    fps = {s.fingerprint(i) for i in s.ids}
    assert len(fps) == 4
    with pytest.raises(KeyError, match="zz"):
        s.subset(["s1", "zz"])
    with pytest.raises(KeyError, match="Unknown stimulus id 'zz'"):
        s.load_image("zz")
    # the fingerprint follows the content: same pixels + captions -> same hash
    twin = StimulusSet(["x"], {"x": folder / "img0.png"}, captions={"x": s.captions("s0")})
    assert twin.fingerprint("x") == s.fingerprint("s0")
    other = StimulusSet(["x"], {"x": folder / "img0.png"}, captions={"x": ["changed"]})
    assert other.fingerprint("x") != s.fingerprint("s0")


def test_constructor_errors(folder):
    with pytest.raises(ValueError, match="at least one"):
        StimulusSet([], lambda i: None)
    with pytest.raises(ValueError, match=r"unique.*'a'"):
        StimulusSet(["a", "b", "a"], lambda i: None)
    with pytest.raises(TypeError, match="'images'"):
        StimulusSet(["a"], 3)
    with pytest.raises(ValueError, match="one row per stimulus"):
        StimulusSet(["a", "b"], lambda i: None, attributes=pd.DataFrame({"x": [1]}, index=["a"]))


def test_repr_html_thumbnails(folder):
    s = StimulusSet.from_folder(folder, "stimuli.csv")
    html = s._repr_html_()
    assert html.count("data:image/png;base64,") == 4
    assert "s3" in html and "StimulusSet" in html
    assert "4 stimuli" in repr(s)
