"""Models that ship with rnnimg: ``load_pretrained("pretrained:NAME")``, offline.

Each ``NAME/`` folder beside this file holds ``config.json``, ``model.safetensors``, its model card
``README.md`` (with the evaluation it states) and ``evaluation.json``; they are made by
``scripts/train_pretrained.py`` from the ``pretrained`` recipes of the registered models.
"""

from __future__ import annotations

from rnnimg.models import checkpoint
from rnnimg.models.checkpoint import PRETRAINED_PREFIX, list_shipped


def pretrained_table() -> list[tuple[str, str, str, str]]:
    """One row per shipped model: (``pretrained:NAME``, model, data, headline metric).

    The headline is the first metric of the card's ``model-index`` (the test-set score the card
    states), e.g. ``nll_nats 91.1 (test)``.
    """
    import json

    from rnnimg.cards import CARD_FILE, read_card
    from rnnimg.errors import RnnImgError

    rows = []
    for name in list_shipped():
        folder = checkpoint.PRETRAINED_ROOT / name
        meta = json.loads((folder / "config.json").read_text())
        data = meta.get("data", {}).get("name", "?")
        score = "not evaluated"
        try:
            card, _ = read_card(folder / CARD_FILE)
            result = card["model-index"][0]["results"][-1]
            top = result["metrics"][0]
            score = f"{top['type']} {top['value']:.4g} ({result['dataset']['split']})"
        except (OSError, RnnImgError, KeyError, IndexError, TypeError):
            pass
        rows.append((f"{PRETRAINED_PREFIX}{name}", meta["model"], data, score))
    return rows


def print_pretrained_table() -> None:
    """Print :func:`pretrained_table` as ``rnnimg list`` shows it."""
    rows = pretrained_table()
    if not rows:
        print("(none shipped)")
        return
    header = ("name", "model", "data", "headline metric")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(f"{v:<{w}}" for v, w in zip(row, widths)).rstrip())
