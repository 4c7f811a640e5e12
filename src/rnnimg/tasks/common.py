"""What several tasks use: writing a picture, loading a run for a verb, checking an image."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from rnnimg.errors import InputError, RnnImgError
from rnnimg.viz import save_image, write_video


def save_picture(picture: Tensor, path: str | os.PathLike, scale: int = 2, fps: float = 4) -> Path:
    """Write a picture (3, H, W) as an image file, or frames (T, 3, H, W) as a GIF, atomically.

    For frames the suffix of ``path`` is replaced by ``.gif``. Returns the path written.
    """
    path = Path(path)
    if picture.dim() == 4:
        return write_video(picture, path.with_suffix(".gif"), fps=fps, scale=scale)
    return save_image(picture, path, scale=scale)


def load_model_for(run: str | os.PathLike, verb: str, device: str = "cpu"):
    """Load the model in ``run`` (a run or model folder) for the CLI verb ``verb``.

    Raises:
        RnnImgError: if the folder holds no model, or one that cannot do ``verb``; the message
            names the models that can.
    """
    from rnnimg.models.checkpoint import load_pretrained
    from rnnimg.models.registry import list_models
    from rnnimg.tasks.registry import task_of_verb

    task = task_of_verb(verb).name
    model = load_pretrained(run, map_location=device)
    if task not in model.tasks():
        able = ", ".join(list_models(task)) or "none yet"
        raise RnnImgError(f"{run} holds a {model.name!r} model ({'/'.join(model.tasks())}), which "
                          f"cannot {verb}; models that can: {able}.")
    return model


CHANNEL_KINDS = {1: "grey", 3: "colour"}


def check_image_channels(image: Tensor, channels: int, arg: str = "image") -> None:
    """One image (C, H, W) with the ``channels`` a model takes.

    Raises:
        InputError: for another shape, or grey for a colour model (and so on), naming ``arg``.
    """
    if image.dim() != 3:
        raise InputError(arg, f"{{arg}} must be one image (C, H, W), got shape {tuple(image.shape)}.")
    if image.shape[0] != channels:
        got = CHANNEL_KINDS.get(image.shape[0], f"{image.shape[0]}-channel")
        want = CHANNEL_KINDS.get(channels, f"{channels}-channel")
        raise InputError(arg, f"{{arg}} is a {got} image, but the model takes {want} input; convert "
                              f"it to {want} first.")


def check_tiles(tile: int | None, overlap: int | None) -> None:
    """``tile`` None or >= 1, ``overlap`` None or >= 0.

    Raises:
        InputError: for anything else.
    """
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise InputError("tile", f"{{arg}} must be a whole number >= 1, got {tile!r}.")
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0):
        raise InputError("overlap", f"{{arg}} must be a whole number >= 0, got {overlap!r}.")
