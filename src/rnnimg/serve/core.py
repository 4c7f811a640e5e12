"""What the web page does, without the web page: load the served models and turn the inputs of a
tab into pictures through :mod:`rnnimg.tasks`.

Nothing here imports Gradio, so every function is tested directly; :mod:`rnnimg.serve.app` only
lays the controls out and calls these. Inputs come from a browser, so every function validates
them and raises :class:`~rnnimg.errors.RnnImgError` with a readable message, which the page shows.
Files are written only under the ``workdir`` a :class:`Session` owns (a temporary folder).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import InputError, RnnImgError
from rnnimg.limits import (
    PAGE_MAX_COMPLETIONS,
    PAGE_MAX_FUTURES,
    PAGE_MAX_HORIZON,
    PAGE_MAX_SAMPLES,
    check_count,
    check_seed,
    check_temperature,
)

REGIONS = ("bottom half", "right half", "bottom-right quarter", "centre box")
MAX_UPLOAD_PIXELS = 4096 * 4096  # refuse decompression bombs before resizing

# what the page calls the arguments of the task layer's functions (rnnimg.limits, rnnimg.tasks),
# in its messages; an InputError names an argument, and the page names its control instead
PAGE_NAMES = {"seed": "the seed", "temperature": "the temperature", "label": "the label",
              "text": "the sentence", "known": "the hidden part", "horizon": "the horizon",
              "samples": "futures", "context": "the clip", "image": "the image",
              "low_res": "the small image"}


def named_for_page(**names: str):
    """Decorate a tab's function: an InputError it raises becomes an RnnImgError whose message
    names the page's control (``names``, then :data:`PAGE_NAMES`), not a Python argument."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except InputError as err:
                name = names.get(err.argument) or PAGE_NAMES.get(err.argument, err.argument)
                raise RnnImgError(err.naming(name)) from None

        return wrapped

    return wrap


def upload_key(task: str) -> str | None:
    """The batch key an uploaded image stands for in ``task`` (None: the task takes no single
    image), from the task's record."""
    from rnnimg.tasks import get_task

    return get_task(task).upload


@dataclass
class ServedModel:
    """A model on the page: what the user typed (``label``) and the loaded model."""

    label: str
    model: torch.nn.Module
    data: dict = field(default_factory=dict)  # config.json's "data": name and options

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tabs the model appears in: its tasks, less ``complete`` for a voxel generator (the
        Complete tab completes images; ``rnnimg complete RUN shape.npy`` completes voxel grids)."""
        from rnnimg.tasks.volumes import is_volume_model

        tasks = self.model.tasks()
        return tuple(t for t in tasks if t != "complete") if is_volume_model(self.model) else tasks


def default_specs() -> list[str]:
    """Every shipped model, as ``pretrained:NAME``."""
    from rnnimg.models.checkpoint import PRETRAINED_PREFIX, list_shipped

    return [PRETRAINED_PREFIX + name for name in list_shipped()]


def load_served(specs: list[str] | None = None, device: str = "cpu") -> list[ServedModel]:
    """Load every ``RUN`` folder or ``pretrained:NAME`` in ``specs`` (default: all shipped ones).

    Raises:
        RnnImgError: if a spec cannot be loaded, or nothing is left to serve.
    """
    from rnnimg.models.checkpoint import load_run

    specs = list(specs or default_specs())
    if not specs:
        raise RnnImgError("no model to serve: pass run folders or pretrained:NAME (see `rnnimg list`).")
    served = []
    for spec in specs:
        run = load_run(spec, map_location=device)
        served.append(ServedModel(spec, run.model, run.metadata.get("data", {})))
    return served


def tasks_of(served: list[ServedModel]) -> list[str]:
    """The tasks the served models do, in the order the models first do them."""
    seen: list[str] = []
    for s in served:
        seen += [t for t in s.tasks if t not in seen]
    return seen


def page_tasks(served: list[ServedModel]) -> list:
    """The tabs of the page: every registered task (:func:`rnnimg.tasks.list_tasks`, in its order)
    that a served model does."""
    from rnnimg.tasks import list_tasks

    done = set(tasks_of(served))
    return [t for t in list_tasks() if t.name in done]


def for_task(served: list[ServedModel], task: str) -> list[ServedModel]:
    return [s for s in served if task in s.tasks]


def pick(served: list[ServedModel], label: str | None, task: str) -> ServedModel:
    able = for_task(served, task)
    for s in able:
        if s.label == label:
            return s
    if label is None and able:
        return able[0]
    raise RnnImgError(f"choose one of the models for {task}: {', '.join(s.label for s in able)}.")


def input_shape(model, task: str) -> tuple[int, ...]:
    """(C, H, W) of one input image of ``task`` (or (T, C, H, W) of a clip), from the model's own
    ``example_batch``, so no config field is probed."""
    batch = model.example_batch(1, torch.Generator().manual_seed(0))
    key = upload_key(task) or ("frames" if "frames" in batch else next(iter(batch)))
    return tuple(batch[key].shape[1:])


def to_numpy(picture: Tensor, scale: int = 1) -> np.ndarray:
    """(3, H, W) in [0, 1] -> uint8 (H * scale, W * scale, 3) for the page (pixels enlarged as
    blocks, so that 28x28 digits are visible and stay sharp)."""
    picture = picture.detach().float().clamp(0, 1)
    if scale > 1:
        picture = picture.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return picture.mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# reading what the user gives


def image_from_array(array: np.ndarray, shape: tuple[int, ...], what: str = "the drawing",
                     invert_light: bool = True) -> Tensor:
    """A drawn or uploaded picture (H, W[, 3|4]) -> (1, C, H', W') in [0, 1] of the model's shape.

    Transparent pixels count as black (a drawing on an empty canvas). With ``invert_light`` a light
    picture with dark strokes is inverted, since the digit models were trained on light digits on
    black; a photo or scene to segment or translate is taken as it is (as the CLI does).
    """
    a = np.asarray(array)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or a.size == 0:
        raise RnnImgError(f"{what} is not an image (got an array of shape {a.shape}).")
    if a.shape[0] * a.shape[1] > MAX_UPLOAD_PIXELS:
        raise RnnImgError(f"{what} is {a.shape[1]}x{a.shape[0]} pixels; use one under 4096x4096.")
    x = torch.from_numpy(a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0))
    x = x.unsqueeze(-1) if x.dim() == 2 else x  # (H, W, C)
    if x.shape[-1] == 4:
        x = x[..., :3] * x[..., 3:]  # composite onto black
    x = x.permute(2, 0, 1).clamp(0, 1)  # (C, H, W)
    border = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], dim=1)
    if invert_light and border.mean() > 0.5:  # dark ink on a light page
        x = 1 - x
    return _fit(x, shape)


def image_from_file(path: str | os.PathLike, shape: tuple[int, ...], invert_light: bool = True) -> Tensor:
    """An uploaded image file -> (1, C, H, W) in [0, 1] of the model's shape (resized); see
    :func:`image_from_array` for ``invert_light``."""
    from rnnimg.data.images import read_image

    name = Path(path).name
    refuse_huge(path)
    image = read_image(Path(path)).float().div(255)  # (C, H, W)
    array = image.permute(1, 2, 0).numpy()
    return image_from_array(array, shape, what=name, invert_light=invert_light)


def refuse_huge(path: str | os.PathLike) -> None:
    """Refuse a decompression bomb from its header, before its pixels are decoded."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            if img.width * img.height > MAX_UPLOAD_PIXELS:
                raise RnnImgError(f"{Path(path).name} is {img.width}x{img.height} pixels; use one under "
                                  "4096x4096.")
    except (OSError, SyntaxError, ValueError):
        pass  # read_image says what is wrong


def _fit(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """(C, H, W) -> (1, C', H', W') with the channels and size of ``shape``."""
    channels, height, width = shape[-3:]
    if x.shape[0] != channels:
        x = x.mean(0, keepdim=True) if channels == 1 else x[:1].expand(channels, -1, -1)
    x = x.unsqueeze(0)
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    return x


def region_mask(region: str, height: int, width: int) -> Tensor:
    """(1, H, W) bool, True where the pixel is KEPT, for one of :data:`REGIONS`."""
    known = torch.ones(1, height, width, dtype=torch.bool)
    if region == "bottom half":
        known[:, height // 2:] = False
    elif region == "right half":
        known[:, :, width // 2:] = False
    elif region == "bottom-right quarter":
        known[:, height // 2:, width // 2:] = False
    elif region == "centre box":
        known[:, height // 4:height - height // 4, width // 4:width - width // 4] = False
    else:
        raise RnnImgError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}.")
    return known


def test_items(served: ServedModel, split: str = "test"):
    """The model's own test data (the data it was trained on, with its options)."""
    from rnnimg.data import load_dataset

    name = served.data.get("name") or "mnist-5k"
    options = {**served.model.dataset_options(), **served.data.get("options", {})}
    options.pop("download", None)  # the page never downloads anything
    if options.get("binarize") == "dynamic":
        options["binarize"] = "fixed"
    return load_dataset(name, split, **options)


def test_item(served: ServedModel, index: int) -> dict[str, Tensor]:
    dataset = test_items(served)
    if not 0 <= int(index) < len(dataset):
        raise RnnImgError(f"test item {index} does not exist; choose 0..{len(dataset) - 1}.")
    return dataset[int(index)]


# ---------------------------------------------------------------------------------------------
# the tabs


def _generator(seed) -> torch.Generator:
    try:
        seed = int(seed)  # the page's number box may send a float or a string
    except (TypeError, ValueError):
        raise RnnImgError(f"the seed must be a whole number, got {seed!r}.") from None
    return torch.Generator().manual_seed(check_seed(seed))


def _temperature(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise RnnImgError(f"the temperature must be a number, got {value!r}.") from None
    return check_temperature(value)


def _count(value, arg: str, maximum: int) -> int:
    try:
        value = int(value)  # a slider may send a float
    except (TypeError, ValueError):
        raise InputError(arg, f"{{arg}} must be a whole number, got {value!r}.") from None
    return check_count(value, arg, maximum)


def _label(served: ServedModel, label) -> int | None:
    num_classes = getattr(served.model.config, "num_classes", 0)
    if label in (None, "", "any"):
        return None
    if not num_classes:
        raise RnnImgError(f"{served.label} is not class-conditional; leave the label at 'any'.")
    label = int(label)
    if not 0 <= label < num_classes:
        raise RnnImgError(f"the label must be in 0..{num_classes - 1}, got {label}.")
    return label


def takes_text(served: ServedModel) -> bool:
    """Whether the model draws from a sentence (a caption model has a vocabulary)."""
    return bool(getattr(served.model.config, "vocabulary", ()))


def example_sentence(served: ServedModel) -> str:
    """The caption of the model's first test item, for a caption model (else ""): a sentence it
    knows every word of, to fill the sentence box with."""
    if not takes_text(served):
        return ""
    from rnnimg.data.mnist_captions import detokenize

    try:
        return detokenize(test_item(served, 0)["text"], tuple(served.model.config.vocabulary))
    except (RnnImgError, KeyError, IndexError, OSError):  # its data are not here, or carry no text
        return ""


def labels_of(served: ServedModel) -> list[str]:
    return ["any", *(str(i) for i in range(getattr(served.model.config, "num_classes", 0)))]


def low_res_scale(served: ServedModel) -> int:
    """s > 0 for a generator that draws images from a small image (its size / s), else 0."""
    from rnnimg.models.generate.base import low_res_scale as scale_of

    return scale_of(served.model)


def low_res_from_file(path: str | os.PathLike) -> Tensor:
    """An uploaded small image -> (C, h, w) in [0, 1] as stored: not resized, not converted, as
    ``rnnimg sample --low-res`` reads it, so the task layer refuses the same files (wrong size,
    grey for a colour model) with the same line, naming the page's control."""
    from rnnimg.data.images import read_image

    refuse_huge(path)
    return read_image(Path(path)).float().div(255)


def default_low_res(served: ServedModel) -> Tensor:
    """The small image of the model's first test item (its data's downscale): what the page draws
    from until the user uploads one.

    Raises:
        RnnImgError: where the model's data are not here (the page then asks for an upload).
    """
    try:
        return test_item(served, 0)["low_res"]
    except (RnnImgError, KeyError, IndexError, OSError):
        raise RnnImgError(f"{served.label} draws from a small image and its test images are not here; "
                          "upload one with the small image.") from None


def low_res_for(served: ServedModel, path: str | os.PathLike | None) -> Tensor | None:
    """What the Sample tab draws from: the uploaded small image where there is one (checked by the
    task layer, for any model: a model that takes none refuses it), else the first test item's for
    a model that needs one, else None."""
    if path:
        return low_res_from_file(path)
    return default_low_res(served) if low_res_scale(served) else None


@named_for_page(n="the number of samples")
def sample(served: ServedModel, n: int = 16, label=None, seed=0, temperature=1.0, text: str = "",
           scale: int = 3, low_res: Tensor | None = None) -> np.ndarray:
    """A grid of ``n`` samples (uint8 (H, W, 3), pixels enlarged ``scale`` times), via
    :func:`rnnimg.tasks.sample_grid`; given ``low_res`` (C, h, w), its bicubic upscale first, then
    ``n`` large versions of it (a model with a ``low_res_scale``; the task layer checks it)."""
    from rnnimg.tasks import sample_grid

    n = _count(n, "n", PAGE_MAX_SAMPLES)
    kwargs = {} if low_res is None else {"low_res": low_res}
    if text and text.strip():
        if not takes_text(served):
            raise RnnImgError(f"{served.label} does not take a sentence; leave the text empty.")
        kwargs["text"] = text.strip()
    elif takes_text(served):
        raise RnnImgError(f"{served.label} draws what a sentence says; type one, e.g. "
                          f"'{example_sentence(served) or 'the digit 3 is at the top left'}'.")
    grid = sample_grid(served.model, n, label=_label(served, label), temperature=_temperature(temperature),
                       generator=_generator(seed), nrow=min(8, n + (low_res is not None)), **kwargs)
    return to_numpy(grid, scale)


@named_for_page(n="the number of completions")
def complete(served: ServedModel, image: Tensor, region: str = "bottom half", n: int = 5, seed=0,
             temperature=1.0, label=None, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(the model's input, quantized; the occluded input then ``n`` completions), uint8 pictures
    with pixels enlarged ``scale`` times, via :func:`rnnimg.tasks.completion_grid`. A model that
    draws given a small image (``low_res_scale`` s) completes given the picture's own downscale by
    s, as its data pair them (a test item's ``low_res`` is exactly that)."""
    from rnnimg.data.corrupt import downscale
    from rnnimg.tasks import completion_grid, quantize_for_model

    n = _count(n, "n", PAGE_MAX_COMPLETIONS)
    image = quantize_for_model(served.model, image.to(served.model.device))  # (1, C, H, W)
    known = region_mask(region, image.shape[-2], image.shape[-1])
    low = downscale(image[0], low_res_scale(served)) if low_res_scale(served) else None
    grid = completion_grid(served.model, image, known, n, _generator(seed),
                           temperature=_temperature(temperature), label=_label(served, label),
                           low_res=low)
    shown = image[0].cpu()
    shown = shown.expand(3, -1, -1) if shown.shape[0] == 1 else shown
    return to_numpy(shown, 2 * scale), to_numpy(grid, scale)


def clip_from_file(path: str | os.PathLike, served: ServedModel) -> Tensor:
    """An uploaded clip -> (T, C, H, W) in [0, 1] with the model's channels and frame size."""
    from rnnimg.data.video_io import read_clip

    t, c, h, _ = input_shape(served.model, "predict")
    return read_clip(Path(path), channels=c, frame_size=h, min_frames=served.model.config.context)


@named_for_page()
def predict(served: ServedModel, clip: Tensor, workdir: Path, horizon: int | None = None,
            fps: float = 4, futures: int = 1, seed: int = 0) -> tuple[str, np.ndarray]:
    """Predict from the first ``context`` frames of ``clip`` (T, C, H, W); returns (the path of
    the GIF, truth beside prediction, written under ``workdir``; the strip as a picture).
    ``futures`` > 1: that many sampled futures (stochastic models such as svg), side by side."""
    from rnnimg.tasks import pad_truth, predict_futures, prediction_media
    from rnnimg.viz import write_video

    model = served.model
    context = model.config.context
    horizon = _count(horizon or model.config.horizon, "horizon", PAGE_MAX_HORIZON)
    if len(clip) < context:
        raise RnnImgError(f"the clip has {len(clip)} frames; the model needs at least {context}.")
    futures = _count(futures, "samples", PAGE_MAX_FUTURES)
    given = clip[:context]
    drawn = predict_futures(model, given, horizon, futures, seed)  # (N, horizon, C, H, W)
    prediction = drawn[0]
    truth = pad_truth(clip[context:], horizon, prediction[0])  # grey where the clip has ended
    frames, strip = prediction_media(given, truth, drawn if futures > 1 else prediction)
    path = write_video(frames, Path(workdir) / f"prediction-{uuid.uuid4().hex[:8]}.gif", fps=fps, scale=3)
    return str(path), to_numpy(strip, 2)


@named_for_page()
def task_pictures(served: ServedModel, workdir: Path, task: str, index: int = 0,
                  upload: Tensor | None = None, seed=0) -> list[str]:
    """The task layer's pictures (:func:`rnnimg.tasks.preview`) of a served model on one test item,
    or on an uploaded image (1, C, H, W) where the task takes one, written under ``workdir``;
    returns their paths.

    This is what a task without a tab of its own shows: segmentation overlays, translation strips,
    drawing animations and whatever a new task's view draws. A test item brings its true answer
    (mask, target), which the views show beside the model's; an upload has none, so its pictures
    show the input and the model's output only.
    """
    from rnnimg.tasks import preview, save_picture

    if upload is not None:
        key = upload_key(task)
        if key is None:
            raise RnnImgError(f"the {task} task takes no single image; choose a test item instead.")
        batch = {key: upload.float()}  # (1, C, H, W)
    else:
        batch = torch.utils.data.default_collate([test_item(served, index)])
    try:
        pictures = preview(served.model, batch, _generator(seed))
    except KeyError as err:
        raise RnnImgError(f"the pictures of {served.label} need {err} as well as an image; choose a "
                          "test item instead of an upload.") from None
    folder = Path(workdir) / f"pictures-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return [str(save_picture(p, folder / name, scale=3)) for name, p in pictures.items()]


def make_workdir() -> Path:
    """A fresh temporary folder for everything the page writes."""
    return Path(tempfile.mkdtemp(prefix="rnnimg-serve-"))
