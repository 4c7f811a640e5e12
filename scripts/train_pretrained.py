"""Train, score and ship the pretrained models: every ``pretrained`` recipe of :mod:`rnnimg.recipes`.

    python scripts/train_pretrained.py                    # all recipes
    python scripts/train_pretrained.py pixelrnn-mnist     # only these names
    python scripts/train_pretrained.py --list             # the recipes, nothing run

For each recipe ``NAME`` (a :class:`rnnimg.recipes.Recipe` of kind ``pretrained``: TrainSettings
fields plus optional ``evaluate`` keyword arguments of :func:`rnnimg.train.evaluate` and a ``note``
for the card's training section) it

1. trains into ``runs/pretrained/NAME`` on the CPU (skipped when that folder already holds a finished
   run of exactly this recipe: same model, preset, overrides, data, options, steps, batch, lr, seed);
2. evaluates it on the test split of its data (and, for frame predictors, scores the copy-last-frame
   and all-black baselines on the same clips; for super-resolution models the evaluation's
   ``input_*`` scores, bicubic's, become a "bicubic" column beside the model's; for voxel generators
   the shipped voxel judge scores class-conditional samples, stated in the card's notes);
3. writes its model card (``rnnimg.cards.write_model_card``); a super-resolution card shows crops of
   the held-out photos (bicubic | model | truth, ``scripts/sr_crops.py``) instead of the preview
   strip of whole photos (4.8 MB); only the pictures a card shows ship;
4. copies config.json, model.safetensors, README.md, evaluation.json and the card's pictures into
   ``src/rnnimg/pretrained/NAME/``, where ``load_pretrained("pretrained:NAME")`` finds them;
5. refuses to ship when all shipped models together would exceed 20 MB.

Everything runs with one torch thread so that timings on the shared machine stay comparable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnimg.models.checkpoint import PRETRAINED_ROOT  # noqa: E402
from rnnimg.models.registry import get_model_class  # noqa: E402
from rnnimg.recipes import Recipe, list_recipes  # noqa: E402
from rnnimg.recipes.registry import SETTINGS_FIELDS  # noqa: E402

LIMIT_BYTES = 20 * 1024 * 1024
# the TrainSettings fields that decide what a run is (the others: logging, folders, hardware)
RECIPE_FIELDS = SETTINGS_FIELDS
SHIPPED_FILES = ("config.json", "model.safetensors", "README.md", "evaluation.json")


def recipes() -> dict[str, Recipe]:
    """NAME -> recipe for every registered ``pretrained`` recipe (names are unique per kind)."""
    return {recipe.name: recipe for recipe in list_recipes(kind="pretrained")}


def settings_for(recipe: Recipe, out: Path):
    from rnnimg.train import TrainSettings

    return TrainSettings(out=str(out), accelerator="cpu", devices=1, progress=False,
                         sample_every_n_steps=0, ckpt_every_n_steps=200, **recipe.settings()).resolved()


def finished_run(run_dir: Path, settings) -> bool:
    """True if ``run_dir`` holds a run of exactly these settings that reached its max_steps."""
    from rnnimg.train.callbacks import load_checkpoint_file

    config, ckpt = run_dir / "config.json", run_dir / "checkpoints" / "last.ckpt"
    if not (config.is_file() and ckpt.is_file() and (run_dir / "model.safetensors").is_file()):
        return False
    saved = json.loads(config.read_text()).get("training", {})
    wanted = dataclasses.asdict(settings)
    if any(saved.get(k) != wanted[k] for k in RECIPE_FIELDS):
        return False
    step = int(load_checkpoint_file(ckpt, map_location="cpu")["global_step"])
    return settings.max_steps is not None and step >= settings.max_steps


def train_command(settings) -> str:
    """The ``rnnimg train`` line equivalent to ``settings``."""
    parts = ["rnnimg train", settings.model]
    if settings.preset:
        parts.append(f"--preset {settings.preset}")
    parts.append(f"--data {settings.data}")
    for key, value in settings.overrides.items():
        parts.append(f"--set {key}={value if isinstance(value, str) else json.dumps(value)}")
    for key, value in settings.data_options.items():
        parts.append(f"--data-opt {key}={value if isinstance(value, str) else json.dumps(value)}")
    if settings.max_steps:
        parts.append(f"--max-steps {settings.max_steps}")
    out = Path(settings.out)
    out = out.relative_to(ROOT) if out.is_absolute() and out.is_relative_to(ROOT) else out
    parts += [f"--batch-size {settings.batch_size}", f"--lr {settings.lr:g}", f"--seed {settings.seed}",
              f"--out {out}", "--accelerator cpu"]
    return " ".join(parts)


@torch.no_grad()
def prediction_baselines(run_dir: Path, evaluate_kw: dict) -> dict[str, dict[str, float]]:
    """MSE/MAE/PSNR/SSIM of two model-free predictors on the clips ``evaluate`` scores: the last
    context frame repeated, and all-black frames."""
    from rnnimg.data import load_dataset
    from rnnimg.metrics import mae_per_frame, mse_per_frame, psnr, ssim
    from rnnimg.models.checkpoint import load_pretrained, read_run_config

    meta = read_run_config(run_dir)
    model = load_pretrained(run_dir)
    c = model.config
    options = {**model.dataset_options(), **meta["data"]["options"]}
    dataset = load_dataset(meta["data"]["name"], "test", **options)
    loader = torch.utils.data.DataLoader(dataset, batch_size=evaluate_kw.get("batch_size", 50))
    sums: dict[str, dict[str, float]] = {"last context frame repeated": {}, "all-black frames": {}}
    count = 0
    for batch in loader:
        frames = batch["frames"][:, :c.context + c.horizon].float()
        target = frames[:, c.context:]
        guesses = {"last context frame repeated": frames[:, c.context - 1:c.context].expand_as(target),
                   "all-black frames": torch.zeros_like(target)}
        for name, guess in guesses.items():
            for key, fn in (("mse", mse_per_frame), ("mae", mae_per_frame), ("psnr", psnr), ("ssim", ssim)):
                if key == "ssim" and min(target.shape[-2:]) < 11:
                    continue
                sums[name][key] = sums[name].get(key, 0.0) + float(fn(guess, target).mean()) * len(frames)
        count += len(frames)
    return {name: {k: v / count for k, v in values.items()} for name, values in sums.items()}


def stored_baselines(run_dir: Path, runs_root: Path) -> dict | None:
    """Baselines another run under ``runs_root`` already scored on the same clips (same data,
    data options, context and horizon): they do not depend on the model, and SSIM over 10,000
    frames is the slow part of an evaluation on this CPU."""
    from rnnimg.cards import EVALUATION_FILE, load_evaluations
    from rnnimg.models.checkpoint import read_run_config

    meta = read_run_config(run_dir)
    want = (meta["data"]["name"], meta["data"]["options"], meta["config"].get("context"),
            meta["config"].get("horizon"))
    for path in sorted(runs_root.glob(f"*/*/{EVALUATION_FILE}")):
        if path.parent.resolve() == run_dir.resolve():
            continue
        other = read_run_config(path.parent)
        have = (other["data"]["name"], other["data"]["options"], other["config"].get("context"),
                other["config"].get("horizon"))
        result = load_evaluations(path.parent).get(f"{want[0]} [test]", {})
        if have == want and result.get("baselines"):
            return result["baselines"]
    return None


def superres_scale(run_dir: Path) -> int:
    """The run's super-resolution scale, 1 for a model whose output has its input's size."""
    from rnnimg.models.checkpoint import read_run_config

    return int(read_run_config(run_dir)["config"].get("scale", 1) or 1)


def bicubic_baseline(result: dict) -> dict[str, dict[str, float]]:
    """A super-resolution evaluation's bicubic scores (its ``input_*`` metrics: the model's
    ``baseline()``, bicubic, on the same images) as a baseline beside the model's metrics."""
    prefix = "input_"
    return {"bicubic": {k[len(prefix):]: v for k, v in result["metrics"].items()
                        if k.startswith(prefix) and not isinstance(v, list)}}


def superres_pictures(run_dir: Path) -> tuple[list[str], str]:
    """Draw RUN/card/upscale.png (crops of the held-out photos) for the card."""
    from rnnimg.cards import PICTURES_DIR
    from rnnimg.models.checkpoint import load_pretrained

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from sr_crops import COLUMNS, draw_crops
    finally:
        sys.path.pop(0)
    (run_dir / PICTURES_DIR).mkdir(exist_ok=True)
    path = draw_crops(load_pretrained(run_dir).eval(), run_dir / PICTURES_DIR / "upscale.png")
    return [str(path.relative_to(run_dir))], (
        f"{' | '.join(COLUMNS)}: a 96x96 window of each held-out photo, the model upscaling the whole "
        "downscaled photo (`python scripts/sr_crops.py RUN -o upscale.png`).")


def is_voxel_generator(run_dir: Path) -> bool:
    from rnnimg.models.checkpoint import read_run_config

    return "voxel_size" in read_run_config(run_dir)["config"] and \
        get_model_class(read_run_config(run_dir)["model"]).task == "generate"


@torch.no_grad()
def voxel_judge(run_dir: Path, per_class: int = 6) -> tuple[dict, str]:
    """The shipped voxel judge (:mod:`rnnimg.judge3d`) on ``per_class`` class-conditional samples
    of each class (seed 0, temperature 1) and on the real test shapes at the model's size: the
    scores for evaluation.json and the card's line."""
    from rnnimg.judge3d import CLASSES, load_shape_judge, match_counts, shapes
    from rnnimg.models.checkpoint import load_pretrained

    model = load_pretrained(run_dir).eval()
    judge = load_shape_judge()
    x_test, y_test = shapes("test", model.config.voxel_size)
    real = match_counts(judge.classify(x_test), y_test)
    label = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    volumes = model.sample(len(label), label=label, generator=torch.Generator().manual_seed(0))
    judged = match_counts(judge.classify(volumes), label)
    per = (judged["match_per_class"] / judged["judged_per_class"]).tolist()
    scores = {"samples": len(label), "sample_accuracy": float(judged["match_per_class"].sum()) / len(label),
              "sample_accuracy_per_class": dict(zip(CLASSES, per)),
              "real_test_shapes": len(y_test),
              "real_accuracy": float(real["match_per_class"].sum() / real["judged_per_class"].sum())}
    line = (f"the shipped voxel judge (rnnimg.judge3d) calls {scores['sample_accuracy']:.3f} of "
            f"{len(label)} class-conditional samples ({per_class} a class, seed 0, temperature 1) the "
            f"class asked for ({', '.join(f'{c} {a:.2f}' for c, a in zip(CLASSES, per))}); on the "
            f"{len(y_test)} real test shapes at this size it is right for {scores['real_accuracy']:.3f}")
    return scores, line


def ship(name: str, run_dir: Path) -> Path:
    """Copy the shipped files of ``run_dir`` and the pictures its card shows into the package;
    replaces an older copy of ``name``."""
    target = PRETRAINED_ROOT / name
    PRETRAINED_ROOT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=PRETRAINED_ROOT, prefix=f".{name}-"))
    staging.chmod(0o755)  # mkdtemp makes it private
    for file in SHIPPED_FILES:
        shutil.copy2(run_dir / file, staging / file)
    card = (run_dir / "README.md").read_text()
    shown = [p for p in sorted((run_dir / "card").glob("*")) if f"](card/{p.name})" in card]
    if shown:  # only the pictures the card shows: an older preview left in card/ does not ship
        (staging / "card").mkdir()
        for picture in shown:
            shutil.copy2(picture, staging / "card" / picture.name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def shipped_bytes() -> int:
    return sum(p.stat().st_size for p in PRETRAINED_ROOT.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="pretrained names (default: every recipe)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "pretrained"), help="run folders")
    parser.add_argument("--list", action="store_true", help="print the recipes and stop")
    parser.add_argument("--no-ship", action="store_true", help="train, score and write cards only")
    parser.add_argument("--reuse-evaluation", action="store_true",
                        help="take the test scores stored in the run's evaluation.json (from an earlier "
                             "run of this script) instead of evaluating again; cards and shipping only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from rnnimg.cards import load_evaluations, write_model_card
    from rnnimg.train import evaluate, train

    table = recipes()
    if args.list:
        for name, recipe in table.items():
            print(f"{name}: {recipe.model} {recipe.settings()} evaluate={recipe.evaluate_kwargs()}")
        return 0
    unknown = [n for n in args.names if n not in table]
    if unknown:
        raise SystemExit(f"unknown pretrained name(s) {', '.join(unknown)}; recipes: {', '.join(table)}")
    for name in args.names or list(table):
        recipe = table[name]
        run_dir = Path(args.runs) / name
        settings = settings_for(recipe, run_dir)
        command = train_command(settings)
        notes = [recipe.note] if recipe.note else []
        timing = run_dir / "wall_time.json"
        if finished_run(run_dir, settings):
            print(f"[{name}] {run_dir} already holds this finished run; not training again", flush=True)
        else:
            print(f"[{name}] {command}", flush=True)
            start = time.perf_counter()
            train(dataclasses.replace(settings, overwrite=True))
            seconds = time.perf_counter() - start
            timing.write_text(json.dumps({"train_seconds": seconds}))
            print(f"[{name}] trained in {seconds:.0f} s", flush=True)
        if timing.is_file():
            minutes = json.loads(timing.read_text())["train_seconds"] / 60
            notes.append(f"wall time: {minutes:.0f} min on a shared, contended 2-core CPU (1 torch thread)")
        evaluate_kw = recipe.evaluate_kwargs()
        start = time.perf_counter()
        stored = load_evaluations(run_dir).get(f"{settings.data} [test]")
        if args.reuse_evaluation and stored is not None:
            result = stored
        else:
            result = evaluate(run_dir, progress=False, **evaluate_kw)
            if get_model_class(recipe.model).task == "predict":
                result["baselines"] = (stored_baselines(run_dir, ROOT / "runs")
                                       or prediction_baselines(run_dir, evaluate_kw))
            elif superres_scale(run_dir) > 1:
                result["baselines"] = bicubic_baseline(result)
        if is_voxel_generator(run_dir):  # do the samples look like the class asked for? (seeded)
            result["judge"], line = voxel_judge(run_dir)
            notes.append(line)
        print(f"[{name}] evaluated in {time.perf_counter() - start:.0f} s: "
              f"{json.dumps({k: v for k, v in result['metrics'].items() if not isinstance(v, list)})}",
              flush=True)
        recorded = f"python scripts/train_pretrained.py {name}   # = {command}"
        drawn = superres_pictures(run_dir) if superres_scale(run_dir) > 1 else None
        card = write_model_card(run_dir, evaluation=result, command=recorded, notes=notes,
                                load_as=f"pretrained:{name}", drawn=drawn)
        print(f"[{name}] card: {card}", flush=True)
        if not args.no_ship:
            target = ship(name, run_dir)
            size = shipped_bytes()
            if size > LIMIT_BYTES:
                shutil.rmtree(target)
                raise SystemExit(f"shipping {name} would make the pretrained models {size / 2**20:.1f} MB, "
                                 f"over the {LIMIT_BYTES / 2**20:.0f} MB limit; make it smaller")
            print(f"[{name}] shipped to {target} (all shipped models: {size / 2**20:.2f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
