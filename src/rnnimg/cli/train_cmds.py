"""``rnnimg list``, ``rnnimg train``, ``rnnimg evaluate`` and ``rnnimg demo``."""

from __future__ import annotations

import argparse
import json

from rnnimg.cli.common import add_device_arg, parse_assignments, positive_int, print_table


def register(sub) -> None:
    p = sub.add_parser("list", help="list models, presets and datasets",
                       description="List the registered models (with task and presets) and datasets.")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser(
        "train", help="train a model", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on a dataset and write a run folder (config.json, model.safetensors, "
                    "checkpoints/last.ckpt, metrics.csv, tb/, samples/, curves.png).",
        epilog="examples:\n  rnnimg train rowrnn --data mnist-5k --preset mnist --max-steps 2000\n"
               "  rnnimg train rowrnn --data folder:./faces --set image_size=32 --set channels=3\n"
               "  rnnimg train rowrnn --out runs/rowrnn-mnist --resume")
    p.add_argument("model", help="model name (see `rnnimg list`)")
    p.add_argument("--data", default="mnist-5k",
                   help="dataset name, or folder:PATH for your own images (default: mnist-5k)")
    p.add_argument("--preset", help="model preset, e.g. debug or mnist (see `rnnimg list`)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
                   help="override a model config field, e.g. --set cell=gru (repeatable)")
    p.add_argument("--out", help="run folder (default: runs/MODEL-PRESET)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--epochs", type=positive_int, help="train this many epochs")
    stop.add_argument("--max-steps", type=positive_int, help="train this many optimizer steps")
    p.add_argument("--batch-size", type=positive_int, help="default: the preset's, else 64")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the preset's, else 1e-3)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip gradient norm (0: off; default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for reproducible runs (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="share of train held out for validation when the data have no val split")
    p.add_argument("--ckpt-every", type=positive_int, default=200, metavar="N",
                   help="write checkpoints/last.ckpt every N steps (also at epoch end and at the end)")
    p.add_argument("--sample-every", type=positive_int, default=200, metavar="N",
                   help="write sample pictures into samples/ every N steps")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.ckpt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--data-dir", help="where torchvision datasets live (default: ./data)")
    p.add_argument("--download", action="store_true", help="allow torchvision to download the data")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="another dataset option, e.g. --data-opt binarize_seed=1 (repeatable)")
    p.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    g = p.add_argument_group("hardware (passed to Lightning)")
    g.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default)")
    g.add_argument("--devices", default="auto", help="number of devices or 'auto'")
    g.add_argument("--strategy", default="auto", help="e.g. ddp, ddp_spawn, fsdp (default auto)")
    g.add_argument("--precision", default="32-true", help="32-true (default), bf16-mixed, 16-mixed")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="score a trained model on a test set",
                       description="Evaluate the model in RUN on a dataset split and print a table "
                                   "(generators: NLL in nats per image and bits per dimension).")
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnimg train`")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--max-batches", type=positive_int, help="score only this many batches")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option")
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
    return 0


def cmd_train(args) -> int:
    from rnnimg.train import TrainSettings, train

    data_options = parse_assignments(args.data_opt, "--data-opt")
    if args.data_dir:
        data_options["data_dir"] = args.data_dir
    if args.download:
        data_options["download"] = True
    if args.strict:
        data_options["strict"] = True
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    settings = TrainSettings(
        model=args.model, data=args.data, preset=args.preset,
        overrides=parse_assignments(args.overrides, "--set"), data_options=data_options,
        out=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        lr=args.lr, grad_clip=args.grad_clip or None, seed=args.seed, val_fraction=args.val_fraction,
        ckpt_every_n_steps=args.ckpt_every, sample_every_n_steps=args.sample_every,
        num_workers=args.num_workers, accelerator=args.accelerator, devices=devices,
        strategy=args.strategy, precision=args.precision, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress,
    )
    run_dir = train(settings)
    print(f"run folder: {run_dir}")
    print(f"  weights:  {run_dir / 'model.safetensors'}")
    print(f"  samples:  {run_dir / 'samples'}")
    print(f"  curves:   {run_dir / 'curves.png'}")
    from rnnimg.models.registry import get_model_class

    verb = {"generate": f"rnnimg sample {run_dir} -n 64 -o grid.png",
            "predict": f"rnnimg predict {run_dir} CLIP -o prediction.gif"}
    task = get_model_class(settings.model).task
    print(f"next: rnnimg evaluate {run_dir}" + (f"   |   {verb[task]}" if task in verb else ""))
    return 0


def format_value(value, key: str = "") -> str:
    if isinstance(value, list):
        # NaN marks an entry with nothing to score (a class absent from target and prediction):
        # shown as "-" and left out of the mean, as mIoU leaves it out
        kept = [v for v in value if v == v]
        over = "class" if key.endswith("_per_class") else "step"
        mean = f"{sum(kept) / len(kept):.4g}" if kept else "n/a"
        return "  ".join("-" if v != v else f"{v:.4g}" for v in value) + f"   (per {over}; mean {mean})"
    return f"{value:.4f}"


def cmd_evaluate(args) -> int:
    from rnnimg.cli.common import resolve_device
    from rnnimg.train import evaluate

    result = evaluate(args.run_dir, data=args.data, split=args.split, batch_size=args.batch_size,
                      max_batches=args.max_batches, device=resolve_device(args.device),
                      data_options=parse_assignments(args.data_opt, "--data-opt"),
                      progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    opts = result["data_options"]
    how = (f"binarization: {opts['binarize']} (seed {opts.get('binarize_seed', 0)})"
           if opts.get("binarize") else (f"{opts['levels']} levels" if opts.get("levels") else ""))
    print(f"{result['model']} on {result['data']} [{result['split']}], {result['num_items']} items"
          + (f"; {how}" if how else ""))
    print_table([(k, format_value(v, k)) for k, v in result["metrics"].items()])
    return 0


def cmd_demo(args) -> int:
    from rnnimg.demo import run_demo

    run_demo(args.out, overwrite=args.overwrite, models=args.models, steps_scale=args.steps,
             progress=not args.no_progress)
    return 0
