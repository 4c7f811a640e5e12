"""``rnnimg list``, ``rnnimg train``, ``rnnimg evaluate`` and ``rnnimg demo``."""

from __future__ import annotations

import argparse
import json
import math

from rnnimg.cli.common import (
    add_device_arg,
    out_of_memory_hint,
    parse_assignments,
    positive_int,
    print_table,
)


def register(sub) -> None:
    p = sub.add_parser("list", help="list models, presets and datasets",
                       description="List the registered models (with task and presets) and datasets.")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser(
        "train", help="train a model", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on a dataset and write a run folder (config.json, model.safetensors, "
                    "checkpoints/{last,best,stepN}.ckpt, metrics.csv, samples/, curves.png; tb/ with "
                    "the tensorboard extra).\n\n"
                    "Ctrl-C (or SIGTERM) finishes the current step, saves checkpoints/last.ckpt and "
                    "exits 130 (143); a second Ctrl-C stops at once. --resume continues a run with "
                    "the settings saved in its folder (flags may only extend --max-steps/--epochs); "
                    "the final weights are bit for bit those of an uninterrupted run. A run folder "
                    "is locked while a process trains in it.",
        epilog="examples:\n  rnnimg train rowrnn --data mnist-5k --preset mnist --max-steps 2000\n"
               "  rnnimg train rowrnn --data folder:./faces   (size, channels from the images)\n"
               "  rnnimg train rowrnn --data folder:./faces --set image_size=32   (resized)\n"
               "  rnnimg train --resume --out runs/rowrnn-mnist --max-steps 4000\n"
               "  rnnimg train rowrnn --preset mnist --max-steps 4000 --out runs/r --resume auto\n"
               "  rnnimg train --config runs/rowrnn-mnist/config.json --out runs/again\n"
               "  rnnimg train rowrnn --preset mnist --print-config > my.yaml")
    p.add_argument("model", nargs="?", help="model name (see `rnnimg list`); optional with --resume "
                   "or a --config that names it")
    p.add_argument("--config", metavar="FILE", help="read settings from a JSON or YAML file (a run's "
                   "config.json works); flags given as well override it")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved settings as JSON (valid YAML) and exit without training")
    p.add_argument("--data", help="dataset name, or folder:PATH for your own images (default: mnist-5k)")
    p.add_argument("--preset", help="model preset, e.g. debug or mnist (see `rnnimg list`)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
                   help="override a model config field, e.g. --set cell=gru (repeatable); image "
                        "size, channels, classes, vocabulary and frame size come from the data "
                        "unless set")
    p.add_argument("--out", help="run folder (default: runs/MODEL-PRESET)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--epochs", type=positive_int, help="train this many epochs")
    stop.add_argument("--max-steps", type=positive_int, help="train this many optimizer steps "
                      "(default: 1 epoch)")
    p.add_argument("--batch-size", type=positive_int, help="default: the preset's, else 64")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's, else 1e-3)")
    p.add_argument("--weight-decay", type=float, help="Adam weight decay (default 0)")
    p.add_argument("--grad-clip", type=float, help="clip gradient norm (0: off; default 1)")
    p.add_argument("--seed", type=int, help="seed for reproducible runs (default 0)")
    p.add_argument("--val-fraction", type=float,
                   help="share of train held out for validation when the data have no val split "
                        "(default 0.05)")
    p.add_argument("--val-batches", type=positive_int, help="validation batches per epoch (default 20)")
    p.add_argument("--ckpt-every", type=positive_int, metavar="N", dest="ckpt_every_n_steps",
                   help="write checkpoints/stepN.ckpt and last.ckpt every N steps (default 200)")
    p.add_argument("--keep-ckpts", type=positive_int, metavar="K", dest="keep_checkpoints",
                   help="keep the newest K periodic checkpoints (default 3)")
    p.add_argument("--sample-every", type=positive_int, metavar="N", dest="sample_every_n_steps",
                   help="write sample pictures into samples/ every N steps (default 200)")
    p.add_argument("--log-every", type=positive_int, metavar="N", dest="log_every_n_steps",
                   help="log metrics every N steps (default 10)")
    p.add_argument("--resume", nargs="?", const=True, default=False, type=_resume_mode,
                   metavar="auto", help="continue the run in --out from its newest checkpoint with "
                   "its saved settings (a complete run: says so, exits 0); --resume auto: start the "
                   "run if --out holds none, else resume it (one command for every launch)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--data-dir", help="where torchvision datasets live (default: ./data)")
    p.add_argument("--download", action="store_true", help="allow torchvision to download the data")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="another dataset option, e.g. --data-opt binarize_seed=1 (repeatable)")
    p.add_argument("--num-workers", type=int, help="data loader worker processes (default 0)")
    g = p.add_argument_group("hardware (passed to Lightning; see docs/training.md for multi-node)")
    g.add_argument("--accelerator", help="cpu, gpu, auto (default)")
    g.add_argument("--devices", help="number of devices per node, a list such as 0,1, or 'auto'")
    g.add_argument("--strategy", help="e.g. ddp, ddp_spawn, fsdp (default auto)")
    g.add_argument("--num-nodes", type=positive_int, help="machines for multi-node DDP (default 1)")
    g.add_argument("--precision", help="32-true (default), bf16-mixed, 16-mixed")
    g.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   help="compile the training step with torch.compile (convlstm, predrnn, convscan): MODE "
                        "default (the flag alone), reduce-overhead (CUDA graphs), max-autotune, "
                        "max-autotune-no-cudagraphs, or none (off, e.g. on --resume)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="score a trained model on a test set",
                       description="Evaluate the model in RUN on a dataset split and print a table "
                                   "(generators: NLL in nats per image and bits per dimension). "
                                   "Metrics are pooled over the whole split. A list is printed as "
                                   "its values and their mean; a name ending in _per_step or "
                                   "_per_class says what it runs over. Below, the tables of the "
                                   "model's task: a reconstruction model's IoU per number of views, "
                                   "per class and the view-order change; a voxel generator's bits "
                                   "per voxel per class; a frame predictor's scores per predicted "
                                   "frame. A translator scores its output (psnr, ssim) beside its "
                                   "untouched input's (input_psnr, input_ssim; the bicubic upscale's "
                                   "for super-resolution); a super-resolution model adds "
                                   "the protocol's psnr_y and ssim_y (the Y channel, scale pixels "
                                   "shaved from each border) against bicubic's input_psnr_y and "
                                   "input_ssim_y, means over the test images, then a table of "
                                   "them per test image (up to 100 images). A generator trained "
                                   "with --set low_res_scale=S reports the exact NLL of each image "
                                   "given its downscale, which the data supplies.")
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnimg train`")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="items per batch (default 64); items of different sizes (whole test photos) "
                        "are scored one size at a time")
    p.add_argument("--max-batches", type=positive_int, help="score only this many batches")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option")
    p.add_argument("--importance-samples", type=positive_int, metavar="K",
                   help="importance samples per image for models that estimate their NLL (DRAW)")
    p.add_argument("--samples", type=positive_int, metavar="N",
                   help="frame predictors: score N sampled futures per clip (best-of-N and mean-of-N "
                        "SSIM/PSNR/MSE, diversity); a deterministic model has one (N = 1)")
    p.add_argument("--eval-opt", action="append", metavar="KEY=VALUE",
                   help="another evaluation option the model takes (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device_arg(p)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("demo", help="train every model briefly and write pictures (offline)",
                       description="Train each registered model's demo preset briefly on data that "
                                   "ships with rnnimg, and write sample pictures and training "
                                   "curves into --out. Offline; a few minutes on 2 CPU cores.")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--models", nargs="+", help="only these models (default: all with a demo)")
    p.add_argument("--steps", type=float, default=1.0, metavar="SCALE",
                   help="scale every model's demo step count (e.g. 0.1 for a smoke run)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(run=cmd_demo)


def _resume_mode(value: str) -> str:
    if value != "auto":
        raise argparse.ArgumentTypeError(f"takes no value, or 'auto'; got {value!r} (put MODEL "
                                         "before --resume)")
    return value


def cmd_list(args) -> int:
    from rnnimg.data import list_datasets
    from rnnimg.models.registry import get_model_class, list_models

    print("models:")
    print_table([(n, f"{'/'.join(get_model_class(n).tasks())}; presets: "
                     f"{', '.join(get_model_class(n).presets)}") for n in list_models()],
                ("name", "task; presets"))
    print("\ndatasets:")
    print_table([(f"{e.name}:PATH" if e.prefix else e.name, f"[{e.task}] {e.description}")
                 for e in list_datasets()], ("name", "description"))
    from rnnimg.pretrained import print_pretrained_table

    print("\npretrained (use as RUN: rnnimg sample pretrained:NAME ...):")
    print_pretrained_table()
    return 0


# Flags that map one to one onto TrainSettings fields (None: not given).
_SETTING_FLAGS = ("data", "preset", "out", "epochs", "max_steps", "batch_size", "lr", "weight_decay",
                  "grad_clip", "seed", "val_fraction", "val_batches", "ckpt_every_n_steps",
                  "keep_checkpoints", "sample_every_n_steps", "log_every_n_steps", "num_workers",
                  "accelerator", "strategy", "num_nodes", "precision", "compile")


def settings_from_args(args):
    """TrainSettings from --config (if any) and the flags given on top, and the set of fields the
    user gave (what --resume must honour or refuse)."""
    from rnnimg.errors import RnnImgError
    from rnnimg.train import TrainSettings, load_config_file

    values: dict = load_config_file(args.config) if args.config else {}
    for name in _SETTING_FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.model is not None:
        values["model"] = args.model
    if args.devices is not None:
        values["devices"] = int(args.devices) if str(args.devices).isdigit() else args.devices
    if args.overrides:
        values["overrides"] = {**values.get("overrides", {}),
                               **parse_assignments(args.overrides, "--set")}
    data_options = parse_assignments(args.data_opt, "--data-opt")
    if args.data_dir:
        data_options["data_dir"] = args.data_dir
    if args.download:
        data_options["download"] = True
    if args.strict:
        data_options["strict"] = True
    if data_options:
        values["data_options"] = {**values.get("data_options", {}), **data_options}
    if args.no_progress:
        values["progress"] = False
    given = set(values)
    if "grad_clip" in values and not values["grad_clip"]:
        values["grad_clip"] = None  # --grad-clip 0: off
    values["resume"], values["overwrite"] = args.resume, args.overwrite
    if values.get("model") is None and not args.resume:
        raise RnnImgError("name the MODEL to train (see `rnnimg list`), or pass --config FILE "
                          "that names it, or --resume --out RUN.")
    values.setdefault("model", None)
    return TrainSettings(**values), given


def cmd_train(args) -> int:
    import sys
    import time

    from rnnimg.cli.common import quiet_libraries
    from rnnimg.train import RunComplete, TrainingInterrupted, train
    from rnnimg.train.run import resolve_settings

    quiet_libraries()  # again: importing Lightning turned its banners back on
    settings, given = settings_from_args(args)
    if args.print_config:
        resolved, _ = resolve_settings(settings, given)
        print(json.dumps(resolved.to_dict(), indent=2))
        return 0
    start = time.time()
    batch = f"--batch-size {settings.batch_size}" if settings.batch_size else "the preset's batch size"
    try:
        with out_of_memory_hint(f"training at {batch}", "pass a smaller --batch-size"):
            run_dir = train(settings, given=given)
    except TrainingInterrupted as stop:
        print(f"rnnimg: {stop}", file=sys.stderr)
        return stop.exit_code
    except RunComplete as done:
        print(f"rnnimg: {done}")
        return done.exit_code
    print(f"run folder: {run_dir}")
    print(f"  weights:  {run_dir / 'model.safetensors'}")
    print(f"  samples:  {run_dir / 'samples'}")
    if (run_dir / "checkpoints" / "best.ckpt").is_file():
        print(f"  best:     {run_dir / 'checkpoints' / 'best.ckpt'} (lowest validation loss)")
    curves = run_dir / "curves.png"
    if curves.is_file() and curves.stat().st_mtime >= start - 1:
        print(f"  curves:   {curves}")
    print(next_steps(run_dir))
    return 0


def next_steps(run_dir) -> str:
    """The line after training: evaluate the run, and the next step of its model's task."""
    from rnnimg.models.checkpoint import read_run_config
    from rnnimg.models.registry import get_model_class
    from rnnimg.tasks import get_task

    meta = read_run_config(run_dir)
    step, _ = get_task(get_model_class(meta["model"]).task).after_training(meta["config"])
    then = f"   |   {step.format(run=run_dir)}" if step else ""
    return f"next: rnnimg evaluate {run_dir}{then}"


def format_value(value, key: str = "") -> str:
    if isinstance(value, list):
        if not value:
            return "(empty)"
        # NaN marks an entry with nothing to score (a class absent from target and prediction):
        # shown as "-" and left out of the mean, as mIoU leaves it out
        kept = [v for v in value if v == v]
        over = "per class; " if key.endswith("_per_class") else ""
        mean = f"{sum(kept) / len(kept):.4g}" if kept else "n/a"
        return " ".join("-" if v != v else f"{v:.4g}" for v in value) + f" ({over}mean {mean})"
    return f"{value:.4f}"


def _json_safe(value):
    """NaN/Inf (the IoU of a class absent from a split) as null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def cmd_evaluate(args) -> int:
    from rnnimg.cli.common import resolve_device
    from rnnimg.train import evaluate

    options = parse_assignments(args.eval_opt, "--eval-opt")
    # what the model's evaluation calls its options (rnnimg.errors.InputError), on this command line
    args.argument_flags = {"horizon": "--eval-opt horizon", "frames": "--data-opt frames"}
    if args.importance_samples is not None:
        options["importance_samples"] = args.importance_samples
    if args.samples is not None:
        options["samples"] = args.samples
    with out_of_memory_hint(f"evaluating batches of {args.batch_size} images (--batch-size)",
                            "pass a smaller --batch-size"):
        result = evaluate(args.run_dir, data=args.data, split=args.split, batch_size=args.batch_size,
                          max_batches=args.max_batches, device=resolve_device(args.device),
                          data_options=parse_assignments(args.data_opt, "--data-opt"),
                          progress=not args.json, options=options)
    if args.json:
        print(json.dumps(_json_safe(result), indent=2, allow_nan=False))
    else:
        opts = result["data_options"]
        how = (f"binarization: {opts['binarize']} (seed {opts.get('binarize_seed', 0)})"
               if opts.get("binarize") else (f"{opts['levels']} levels" if opts.get("levels") else ""))
        extra = "".join(f"; {k}={v}" for k, v in result.get("options", {}).items())
        print(f"{result['model']} on {result['data']} [{result['split']}], {result['num_items']} items"
              + (f"; {how}" if how else "") + extra)
        _print_metrics(result, class_names_of(args.run_dir))
    if args.max_batches is None and not str(args.run_dir).startswith(("pretrained:", "hf:")):
        import sys

        from rnnimg.cards import write_model_card
        from rnnimg.cli.common import os_error_line

        try:  # after the scores are shown: a read-only or full run folder must not lose them
            write_model_card(args.run_dir, evaluation=result)  # the card shows the latest scores
        except OSError as err:
            print(f"rnnimg: note: the scores above are not in {args.run_dir}'s model card: "
                  f"{os_error_line(err)}", file=sys.stderr)
    return 0


def class_names_of(run_dir) -> tuple[str, ...]:
    """The class names in the run's config (empty where it names none)."""
    from rnnimg.models.checkpoint import read_run_config

    names = read_run_config(run_dir)["config"].get("class_names") or ()
    return tuple(str(n) for n in names) if isinstance(names, list | tuple) else ()


def _print_metrics(result: dict, class_names=()) -> None:
    """The metrics as a table, then the tables of the model's task (``Task.tables``: per class,
    per number of views, per predicted frame ...), whose metrics the first table leaves out
    (--json has every value)."""
    from rnnimg.models.registry import get_model_class
    from rnnimg.tasks import get_task

    metrics = result["metrics"]
    task = get_task(get_model_class(result["model"]).task)
    named = {"item_names": result["item_names"]} if result.get("item_names") else {}
    tables = task.tables(metrics, class_names, **named) if task.tables else []
    shown = {k for table in tables for k in table.metrics}
    print_table([(k, format_value(v, k)) for k, v in metrics.items() if k not in shown])
    for table in tables:
        print()
        print("\n".join(table.lines()))


def cmd_demo(args) -> int:
    from rnnimg.cli.common import quiet_libraries
    from rnnimg.demo import run_demo
    from rnnimg.train import train  # noqa: F401  (imports Lightning, which resets its log level)

    quiet_libraries()
    try:
        run_demo(args.out, overwrite=args.overwrite, models=args.models, steps_scale=args.steps,
                 progress=not args.no_progress)
    except OSError as err:  # a read-only or full --out
        from rnnimg.errors import RnnImgError
        from rnnimg.train.rundir import os_error_message

        raise RnnImgError(os_error_message(err, args.out, "write the demo into") + "; choose "
                          "another --out.") from None
    return 0
