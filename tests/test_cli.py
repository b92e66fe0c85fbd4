"""The command line: parsing, shipped pipelines, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from braindecode_kit.cli import build_parser, main


def test_parser_has_the_commands():
    p = build_parser()
    args = p.parse_args(["demo", "--out", "x", "--seed", "3"])
    assert args.out == "x" and args.seed == 3
    args = p.parse_args(["run", "pipelines/demo.yaml", "--out", "y"])
    assert args.pipeline == "pipelines/demo.yaml" and args.seed is None
    args = p.parse_args(["simulate", "fmri", "--out", "z", "--subjects", "2", "--seed", "1"])
    assert args.subjects == 2 and args.kind == "fmri"


def test_unknown_pipeline_is_named(tmp_path):
    with pytest.raises(SystemExit, match="neither a file nor a shipped pipeline"):
        main(["run", "no-such-pipeline", "--out", str(tmp_path)])


def test_invalid_pipeline_reports_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {epochs: -1}\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_pipelines_lists_demo(capsys):
    assert main(["pipelines"]) == 0
    assert "demo" in capsys.readouterr().out


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "braindecode_kit.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert "braindecode-kit 0.1.0" in out.stdout


def test_import_is_fast_and_lazy():
    code = ("import sys, time; t=time.perf_counter(); import braindecode_kit; "
            "dt=time.perf_counter()-t; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'mne' not in sys.modules; print(dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1.0


def test_simulate_fmri_command_writes_bids(tmp_path, capsys):
    import json

    out = tmp_path / "sim"
    assert main(["simulate", "fmri", "--out", str(out), "--subjects", "2", "--seed", "1",
                 "--images", "160", "--test-images", "40", "--voxels", "200", "-q"]) == 0
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["Name"] and desc["BIDSVersion"]
    for sub in ("01", "02"):
        assert list((out / f"sub-{sub}").glob("ses-*/func/*_bold.nii*"))
        assert list((out / f"sub-{sub}").glob("ses-*/func/*_events.tsv"))


@pytest.mark.parametrize("kind", ["meg", "seeg"])
def test_simulate_meg_seeg_commands_write_bids(tmp_path, capsys, kind):
    out = tmp_path / kind
    assert main(["simulate", kind, "--out", str(out), "--subjects", "1", "--seed", "2",
                 "--images", "40", "--test-images", "4", "--train-images", "6", "-q"]) == 0
    datatype = "meg" if kind == "meg" else "ieeg"
    assert len(list(out.glob(f"sub-01/ses-01/{datatype}/*_events.tsv"))) == 2
    assert (out / "derivatives" / "simulation" / "simulation.json").is_file()
    assert ("SimulatedMEG" if kind == "meg" else "SimulatedSEEG") in capsys.readouterr().out


@pytest.mark.parametrize("flag", [["--device", "cpu"], ["--init", "data"], ["--lr", "0.1"],
                                  ["--batch-size", "8"], ["--n-images", "10"]])
def test_train_builtin_refuses_image_decoder_flags_for_other_models(tmp_path, flag):
    with pytest.raises(SystemExit, match=f"{flag[0]} is for image-decoder only"):
        main(["train-builtin", "captioner", "--out", str(tmp_path), *flag])
    assert not any(tmp_path.iterdir())  # refused before anything was written
