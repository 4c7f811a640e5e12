"""The condition-match score: sample under each item's condition and let the digit judge read it.

:func:`match_statistics` is additive, like the models' ``evaluation_statistics``:

- a batch with ``label``: sample one image per item with that label; it matches if the judge's
  class is the label;
- a batch of ``mnist-captions`` (``text``, ``digits``, ``places``): sample one image per caption;
  it matches if, for every digit the caption names, the judge reads that digit in the 28x28 cell of
  its place (so a right digit in the wrong place does not match). ``place_match`` counts the
  samples whose ink is where the caption says, whatever the digits: each named cell holds at least
  1 / (2 k) of the image's ink for k named digits (a blob in the right place passes; for a
  pair it checks that both places hold ink, not which digit is in which).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.judge.net import DigitJudge


@torch.no_grad()
def match_statistics(model, batch: dict[str, Tensor], judge: DigitJudge,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Sample one image per item of ``batch`` under its condition and judge it.

    Args:
        model: anything with ``device`` and ``sample(n, *, label=None, text=None, generator=None)``.
        batch: ``label`` (B,), or mnist-captions' ``text``, ``digits`` and ``places``.
        judge: the digit judge (:func:`rnnimg.judge.load_digit_judge`).
        generator: for the samples.

    Returns:
        {"match": number of matching samples, "judged": number of items} (and for captions
        "place_match"), float64 sums.
    """
    device = model.device
    judge = judge.to(device)
    if "text" in batch and "digits" in batch:
        text = batch["text"].to(device)
        images = model.sample(len(text), text=text, generator=generator)
        ok = torch.ones(len(text), dtype=torch.bool, device=device)
        placed = torch.ones_like(ok)
        named = (batch["digits"] >= 0).sum(1).to(device)  # digits the caption names, (B,)
        ink = images.flatten(1).sum(1).clamp(min=1e-6)
        for slot in range(batch["digits"].shape[1]):
            digit = batch["digits"][:, slot].to(device)
            place = batch["places"][:, slot].clamp(min=0).to(device)
            crops = torch.stack([cell(img, int(p)) for img, p in zip(images, place)])
            ok &= (digit < 0) | (judge.classify(crops) == digit)
            share = crops.flatten(1).sum(1) / ink  # of the image's ink inside this place's cell
            placed &= (digit < 0) | (share >= 0.5 / named)
        return {"match": ok.double().sum().cpu(), "place_match": placed.double().sum().cpu(),
                "judged": torch.tensor(float(len(ok)), dtype=torch.float64)}
    elif "label" in batch:
        label = batch["label"].to(device)
        images = model.sample(len(label), label=label, generator=generator)
        ok = judge.classify(images) == label
    else:
        raise ValueError("the batch has neither labels nor captions to judge")
    return {"match": ok.double().sum().cpu(), "judged": torch.tensor(float(len(ok)), dtype=torch.float64)}


def cell(image: Tensor, place: int) -> Tensor:
    """The 28x28 cell of ``place`` (row place // 3, column place % 3) of a 60x60 caption image."""
    from rnnimg.data.mnist_captions import DIGIT, place_box

    y, x = place_box(place)
    return image[:, y:y + DIGIT, x:x + DIGIT]
