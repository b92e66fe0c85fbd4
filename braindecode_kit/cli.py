"""The ``braindecode-kit`` command line.

    braindecode-kit demo --out runs/demo [--seed N]
    braindecode-kit run pipelines/demo.yaml --out runs/demo [--seed N] [--restart]
    braindecode-kit simulate fmri|meg|seeg --out DIR --subjects N --seed S
    braindecode-kit train-builtin clip|captioner|image-decoder --out DIR [--steps N]
    braindecode-kit reconstruct --run runs/demo [--name NAME] [--steps N] [--guidance G] ...
    braindecode-kit pipelines

A user error (a bad file, a bad value, a folder that must not be touched) prints one line,
``braindecode-kit: error: ...``, and exits with status 2; ``--debug`` (or
``BRAINDECODE_KIT_DEBUG=1``) shows its traceback. Anything else is a bug and shows its
traceback.

Multi-GPU / multi-node runs go through Hugging Face accelerate:
``accelerate launch -m braindecode_kit.cli run pipelines/x.yaml --out runs/x``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ._version import __version__


def _resolve_pipeline(name: str) -> Path:
    """A pipeline given as a path, or by the name of a shipped pipeline."""
    from ._resources import pipelines_dir

    path = Path(name)
    if path.is_file():
        return path
    shipped = pipelines_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    available = sorted(p.stem for p in pipelines_dir().glob("*.yaml"))
    raise SystemExit(
        f"braindecode-kit: pipeline {name!r} is neither a file nor a shipped pipeline "
        f"(shipped: {', '.join(available)})"
    )


def _cmd_run(args: argparse.Namespace, pipeline: str | None = None) -> int:
    from .pipeline import load_config, run_pipeline

    path = _resolve_pipeline(pipeline or args.pipeline)
    config = load_config(path, seed=args.seed)
    metrics = run_pipeline(config, args.out, restart=args.restart, verbose=args.verbose)
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch: one summary
        return 0
    print(f"Run folder: {args.out}")
    print(f"  metrics: {Path(args.out) / 'metrics.json'}")
    print(f"  report:  {Path(args.out) / 'report.html'}")
    summary = metrics.get("summary")
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import make_world, simulate_fmri, simulate_meg, simulate_seeg

    world = make_world(args.images, seed=args.seed)
    if args.kind == "fmri":
        sim = simulate_fmri(world, args.out, seed=args.seed, snr=args.snr,
                            n_subjects=3 if args.subjects is None else args.subjects,
                            n_shared_test=300 if args.test_images is None else args.test_images,
                            n_voxels=args.voxels, verbose=args.verbose)
    else:
        kw = {"n_subjects": 2 if args.subjects is None else args.subjects, "seed": args.seed,
              "n_test": 20 if args.test_images is None else args.test_images,
              "verbose": args.verbose}
        if args.snr is not None:
            kw["snr"] = args.snr
        if args.train_images is not None:
            kw["n_train"] = args.train_images
        if args.kind == "meg":
            sim = simulate_meg(world, args.out, system=args.system, **kw)
        else:
            sim = simulate_seeg(world, args.out, **kw)
    print(sim)
    return 0


def _cmd_train_builtin(args: argparse.Namespace) -> int:
    if args.model == "captioner":
        from .caption.prefix_lm import train_builtin_captioner as train
    elif args.model == "clip":
        from .embed.builtin import train_builtin_clip as train
    elif args.model == "image-decoder":
        from .reconstruct.builtin import train_builtin_image_decoder as train
    else:
        raise SystemExit(f"braindecode-kit train-builtin: unknown model {args.model!r} "
                         "(known: clip, captioner, image-decoder)")
    kwargs = {"seed": args.seed}
    if args.steps is not None:
        kwargs["steps"] = args.steps
    for name in ("device", "init", "batch_size", "lr", "n_images"):
        value = getattr(args, name)
        if value is not None:
            if args.model != "image-decoder":
                raise SystemExit(f"braindecode-kit train-builtin: --{name.replace('_', '-')} "
                                 "is for image-decoder only")
            kwargs[name] = value
    train(args.out, verbose=args.verbose, **kwargs)
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from ._logging import use_log_level
    from .pipeline.stages.reconstruct import reconstruct_run

    names = {"backend": "backend", "model": "model", "device": "device", "dtype": "dtype",
             "batch_size": "batch_size", "steps": "num_inference_steps",
             "guidance": "guidance_scale", "strength": "strength", "n_stimuli": "n_stimuli"}
    overrides = {field: getattr(args, arg) for arg, field in names.items()
                 if getattr(args, arg) is not None}
    with use_log_level(args.verbose):
        result = reconstruct_run(args.run, name=args.name, **overrides)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    out = Path(args.run) / "reconstructions" / args.name
    print(f"Reconstructions: {out}")
    for kind, m in result["metrics"].items():
        r = m["reconstruct"]
        print(f"  {kind}: built-in CLIP 2-way decoder {r['decoder']['builtin_clip_2way']:.3f}, "
              f"ridge {r['ridge']['builtin_clip_2way']:.3f}, "
              f"ceiling {r['ceiling']['builtin_clip_2way']:.3f} (chance 0.5)")
    return 0


def _cmd_pipelines(args: argparse.Namespace) -> int:
    from ._resources import pipelines_dir

    for p in sorted(pipelines_dir().glob("*.yaml")):
        first = p.read_text().splitlines()[0].lstrip("# ").strip()
        print(f"{p.stem:20s} {first}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="braindecode-kit",
        description="Decode what a person saw from fMRI, MEG and sEEG recordings.",
    )
    parser.add_argument("--version", action="version", version=f"braindecode-kit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.set_defaults(verbose="INFO")  # progress is logged unless --quiet
        p.add_argument("-q", "--quiet", dest="verbose", action="store_const", const="WARNING",
                       help="only warnings and errors")

    p = sub.add_parser("run", help="run a pipeline YAML into a run folder (resumable)")
    p.add_argument("pipeline", help="a pipeline YAML file or the name of a shipped pipeline")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--seed", type=int, default=None, help="override the pipeline's seed")
    p.add_argument("--restart", action="store_true",
                   help="empty the run folder first (only a run folder: one with a manifest)")
    common(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="the built-in demo pipeline (pipelines/demo.yaml)")
    p.add_argument("--out", default="runs/demo", help="the run folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=None, help="changes the world, subjects and split")
    p.add_argument("--restart", action="store_true", help="empty the run folder first")
    common(p)
    p.set_defaults(func=lambda a: _cmd_run(a, pipeline="demo"))

    p = sub.add_parser("simulate", help="write simulated subjects in real file formats")
    p.add_argument("kind", choices=["fmri", "meg", "seeg"], help="recording kind")
    p.add_argument("--out", required=True, help="output folder (a BIDS dataset)")
    p.add_argument("--subjects", type=int, default=None,
                   help="number of subjects (default: 3 fmri, 2 meg/seeg)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=1200, help="size of the stimulus world")
    p.add_argument("--test-images", type=int, default=None,
                   help="shared test images, shown repeatedly to every subject (default: 300 "
                        "fmri, 20 meg/seeg)")
    p.add_argument("--train-images", type=int, default=None,
                   help="meg/seeg: training images, shown once (default 120)")
    p.add_argument("--system", choices=["ctf275", "neuromag306"], default="ctf275",
                   help="meg: the sensor geometry")
    p.add_argument("--voxels", type=int, default=2000, help="visual voxels per subject (about)")
    p.add_argument("--snr", type=float, default=None,
                   help="default: NSD-calibrated noise (fmri), the simulators' default (meg/seeg)")
    common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train-builtin", help="retrain a built-in model of the world")
    p.add_argument("model", choices=["clip", "captioner", "image-decoder"])
    p.add_argument("--device", default=None, help="image-decoder: torch device (e.g. cuda)")
    p.add_argument("--out", required=True, help="folder for the weights")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None,
                   help="image-decoder: continue training the generator in this folder")
    p.add_argument("--batch-size", type=int, default=None, help="image-decoder: images per step")
    p.add_argument("--lr", type=float, default=None, help="image-decoder: peak learning rate")
    p.add_argument("--n-images", type=int, default=None,
                   help="image-decoder: training world size")
    common(p)
    p.set_defaults(func=_cmd_train_builtin)

    p = sub.add_parser("reconstruct", help="reconstruct the test images of a finished run "
                                           "(resumable; shard with accelerate launch)")
    p.add_argument("--run", required=True, help="the run folder")
    p.add_argument("--name", default="cli",
                   help="sub-folder of <run>/reconstructions/ for these images (default cli)")
    p.add_argument("--backend", choices=["builtin", "unclip", "kandinsky", "ip_adapter"])
    p.add_argument("--model", help="hub id (local cache) or folder of the backend's weights")
    p.add_argument("--device", help="torch device (default: the run's, cpu)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--steps", type=int, help="sampling steps")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    p.add_argument("--strength", type=float, help="img2img strength of the low-level route")
    p.add_argument("--n-stimuli", type=int, dest="n_stimuli",
                   help="test images per subject (default: the run's setting)")
    common(p)
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("pipelines", help="list the shipped pipelines")
    p.set_defaults(func=_cmd_pipelines)
    return parser


#: the errors a user can cause: shown as one line when raised by braindecode_kit itself
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


def _raised_by_us(err: BaseException) -> bool:
    """Whether ``err`` was raised by braindecode_kit's own code (not inside a dependency)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    package = Path(__file__).resolve().parent
    try:
        Path(tb.tb_frame.f_code.co_filename).resolve().relative_to(package)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``braindecode-kit`` console script.

    Returns 0 on success and 2 on a user error (one line on stderr, no traceback unless
    ``--debug``); any other exception propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("BRAINDECODE_KIT_DEBUG", "").strip() in ("1", "true")
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        if debug or not _raised_by_us(err):
            raise
        msg = str(err)
        print(f"braindecode-kit: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
