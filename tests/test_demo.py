"""`rnnimg demo` end to end, with every model's step count scaled down to a few steps."""

import numpy as np
import pytest
from PIL import Image

from rnnimg.demo import run_demo
from rnnimg.recipes import get_recipe, list_recipes
from rnnimg.viz import read_metrics_csv


def test_demo_writes_pictures_for_every_model_and_the_curves(tmp_path):
    out = tmp_path / "demo"
    written = run_demo(out, steps_scale=0.02, progress=False)
    with_demo = [r.name for r in list_recipes(kind="demo")]
    assert set(with_demo) <= set(written) and {"rowrnn", "pixelrnn", "convlstm", "predrnn"} <= set(written)
    for name in with_demo:
        assert (out / name / "model.safetensors").is_file()
        for path in written[name]:
            with Image.open(path) as img:
                assert img.width > 50 and img.height > 20
                img.seek(getattr(img, "n_frames", 1) - 1)  # a GIF's last frame: the finished drawing
                grey = np.asarray(img.convert("L"))
            assert has_content(grey), path
    # The video models write an animation; pixelrnn writes samples and completions.
    assert any(p.suffix == ".gif" for p in written["convlstm"])
    with Image.open(next(p for p in written["convlstm"] if p.suffix == ".gif")) as gif:
        overrides = get_recipe("convlstm", kind="demo").overrides
        assert gif.n_frames == overrides["horizon"] + overrides["context"]
    assert {p.name for p in written["pixelrnn"]} == {"pixelrnn-samples.png", "pixelrnn-completions.png"}
    assert (out / "curves.png").is_file()
    # every model validates, though these runs (a few steps) end long before an epoch does
    for name in with_demo:
        series = read_metrics_csv(out / name / "metrics.csv")
        assert len(series.get("val/loss", [])) >= 2, f"{name} never validated"


def has_content(grey: np.ndarray) -> bool:
    """Not blank. A blank or constant model gives its background plus the grid's grey padding: two
    or three levels. Content is bright strokes on a dark background (binary samples, digits), or
    a picture of many grey levels (mean images, early blurry predictions)."""
    strokes = (grey > 200).mean() > 0.005 and (grey < 50).mean() > 0.05
    _, counts = np.unique(grey, return_counts=True)
    return strokes or (counts / grey.size > 0.001).sum() >= 8


def test_has_content_refuses_blank_and_constant_grids():
    import torch

    from rnnimg.viz import make_grid, to_uint8

    def grey_of(images):
        return to_uint8(make_grid(images))[..., 0]

    assert not has_content(grey_of(torch.zeros(16, 1, 28, 28)))
    assert not has_content(grey_of(torch.full((16, 1, 28, 28), 0.3)))
    binary = (torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    assert has_content(grey_of(binary))
    assert has_content(grey_of(torch.linspace(0, 0.6, 28).expand(16, 1, 28, 28)))


@pytest.mark.parametrize("steps", ["nan", "inf", "0", "-1"])
def test_demo_steps_must_be_a_positive_number(steps, tmp_path, capsys):
    """--steps nan was a ValueError traceback from int(); 0 and -1 silently trained 1 step."""
    from rnnimg.cli import main

    code = main(["demo", "--steps", steps, "--out", str(tmp_path / "demo"), "--models", "rowrnn",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--steps" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "demo").exists()


def test_demo_overwrite_with_an_unknown_model_keeps_the_old_folder(tmp_path):
    from rnnimg.errors import RnnImgError

    out = tmp_path / "demo"
    out.mkdir()
    (out / "rowrnn.png").write_bytes(b"old picture")
    with pytest.raises(RnnImgError, match="unknown model"):
        run_demo(out, overwrite=True, models=["nope"], progress=False)
    assert (out / "rowrnn.png").read_bytes() == b"old picture"


def test_demo_out_naming_a_file_is_a_clear_error(tmp_path):
    from rnnimg.errors import RnnImgError

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(RnnImgError, match="is a file"):  # was NotADirectoryError
        run_demo(a_file, models=["rowrnn"], steps_scale=0.01, progress=False)
    assert a_file.read_text() == "mine"


def test_the_readme_names_every_demo_recipe_and_its_pictures():
    """README's `make demo` paragraph counts and lists the models the demo trains: it must follow
    the demo recipes (it once left out voxscan), and name a picture of each."""
    import re
    from pathlib import Path

    text = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    found = re.search(r"The demo now trains (\d+) models \(the demo recipes: ([^)]*)\)", text)
    assert found, "README no longer states the demo's models"
    named = [n.strip() for n in found.group(2).split(",")]
    demos = sorted(r.name for r in list_recipes(kind="demo"))
    assert sorted(named) == demos and int(found.group(1)) == len(demos)
    pictures = text[text.index("`make demo` writes"):found.start()]
    assert all(name in pictures for name in demos), [n for n in demos if n not in pictures]
