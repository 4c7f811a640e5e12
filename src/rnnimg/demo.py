"""``rnnimg demo`` / ``make demo``: train every registered model that has a ``demo`` recipe briefly,
offline, on data rnnimg ships or generates, and write pictures a person can look at:

    runs/demo/MODEL/          the run folder of each model (rnnimg sample / evaluate work on it)
    runs/demo/MODEL.png|.gif  its samples, completions or predictions after training
    runs/demo/curves.png      training and validation loss of every model
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from rnnimg.errors import RnnImgError
from rnnimg.models.registry import get_model_class, list_models
from rnnimg.recipes import get_recipe, list_recipes


def not_a_demo_reason(out: Path) -> str | None:
    """None if ``out`` holds only what a demo writes (run folders and pictures named after
    models, curves.png), else why not: --overwrite must not delete anything else."""
    from rnnimg.train.rundir import not_a_run_reason

    models = set(list_models())
    for path in sorted(out.iterdir()):
        name = path.name
        if name.startswith(".") and ".tmp" in name:  # left by a killed atomic write
            continue
        if path.is_dir() and not path.is_symlink():
            if name not in models:
                return f"it holds the folder {name}, which is no model's"
            reason = not_a_run_reason(path)
            if reason is not None:
                return f"{name}/ is not a run: {reason}"
        elif not (path.is_file() and path.suffix.lower() in (".png", ".gif", ".mp4")
                  and (name == "curves.png" or name.split(".")[0].split("-")[0] in models)):
            return f"it holds {name}, which the demo does not write"
    return None


def run_demo(out: str | Path = "runs/demo", overwrite: bool = False, models: list[str] | None = None,
             steps_scale: float = 1.0, progress: bool = True) -> dict[str, list[Path]]:
    """Train each model's demo recipe and write its pictures; returns model -> files written."""
    from rnnimg.data import load_dataset
    from rnnimg.models.checkpoint import read_run_config
    from rnnimg.tasks import list_tasks, preview, save_picture
    from rnnimg.train import TrainSettings, train
    from rnnimg.viz import plot_curves, read_metrics_csv

    if not 0 < steps_scale < float("inf"):  # also refuses NaN, which int() cannot convert
        raise RnnImgError(f"--steps must be a positive number, got {steps_scale}.")
    demos = [r.name for r in list_recipes(kind="demo")]  # a demo recipe is named after its model
    names = models or demos
    for name in names:  # before --overwrite deletes anything
        if name not in demos:
            get_model_class(name)  # an unknown model is named as such, with the closest name
            raise RnnImgError(f"model {name!r} has no demo recipe; choose from {', '.join(demos)}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RnnImgError(f"--out {out} is a file; the demo writes a folder, so choose another --out.")
    if out.exists() and any(out.iterdir()):
        reason = not_a_demo_reason(out)
        if reason is not None:
            raise RnnImgError(f"--out {out} is not empty and not an rnnimg demo folder ({reason}); "
                              "--overwrite replaces only demo folders, so choose another --out.")
        if not overwrite:
            raise RnnImgError(f"{out} already exists; pass --overwrite to replace it (make demo does).")
        shutil.rmtree(out)
    written: dict[str, list[Path]] = {}
    runs: dict[str, Path] = {}
    train_curves, val_curves = {}, {}
    for name in names:
        recipe = get_recipe(name, kind="demo").settings()
        recipe["max_steps"] = max(1, int(recipe["max_steps"] * steps_scale))
        start = time.perf_counter()
        print(f"[demo] training {name} ({recipe.get('preset')}) on {recipe['data']} for "
              f"{recipe['max_steps']} steps ...", flush=True)
        recipe.setdefault("log_every_n_steps", max(1, min(10, recipe["max_steps"] // 20)))
        # validate four times a run: a demo is often shorter than an epoch (reseg's 300 steps are
        # half of one), and the curves show the validation loss of every model
        recipe.setdefault("val_every_n_steps", -(-recipe["max_steps"] // 4))
        run_dir = train(TrainSettings(out=str(out / name), progress=progress,
                                      sample_every_n_steps=0, ckpt_every_n_steps=10_000, **recipe))
        runs[name] = Path(run_dir)
        from rnnimg.models.checkpoint import load_pretrained

        model = load_pretrained(run_dir).eval()
        test = load_dataset(recipe["data"], "test", **{**model.dataset_options(),
                                                       **recipe.get("data_options", {})})
        # spread over the split: mnist-5k's test digits are ordered by class, so the first 8 are all 0s
        picks = torch.linspace(0, len(test) - 1, min(8, len(test))).long().tolist()
        batch = torch.utils.data.default_collate([test[i] for i in picks])
        pictures = preview(model, batch, torch.Generator().manual_seed(0))
        files = []
        for picture_name, picture in pictures.items():
            suffix = Path(picture_name).suffix
            path = out / (f"{name}{suffix}" if len(pictures) == 1 else f"{name}-{picture_name}")
            files.append(save_picture(picture, path, scale=3))
        written[name] = files
        series = read_metrics_csv(run_dir / "metrics.csv")
        if "train/loss" in series:
            train_curves[name] = series["train/loss"]
        if "val/loss" in series:
            val_curves[name] = series["val/loss"]
        print(f"[demo] {name}: {time.perf_counter() - start:.0f} s -> "
              f"{', '.join(str(f) for f in files)}", flush=True)
    if train_curves:
        curves = plot_curves({"train loss": train_curves, "val loss": val_curves},
                             out / "curves.png", title="rnnimg demo: loss per model")
        written["curves"] = [curves]
    print("\n[demo] done. Look at:")
    for files in written.values():
        for f in files:
            print(f"  {f}")
    hint = f"rnnimg evaluate {out / names[0]} --max-batches 2"
    for task in list_tasks():  # the first run whose next step needs nothing but the run folder
        tried = [n for n in names if get_model_class(n).task == task.name]
        steps = [(runs[n], *task.after_training(read_run_config(runs[n])["config"])) for n in tried]
        step = next(((run, s) for run, s, needs in steps if s and not needs), None)
        if step is not None:
            hint = step[1].format(run=step[0])
            break
    print(f"  {out}/MODEL/  (run folders: try `{hint}`)")
    return written
