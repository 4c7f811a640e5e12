"""Issue 22 section 4: adding a task is one new module in rnnimg/tasks/ plus its models.

A toy task (``invert``: an image in, its negative out) and a toy model of it are registered here,
in the test, exactly as a task module and a model file would register them; the registries are
put back afterwards. The CLI (``rnnimg list``, the step after training, loading a run for the
verb), the web page (its tabs, an upload through the task's pictures), the model cards (the Hub
tag) and the contract tests then take the new task up with no edit anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from rnnimg.errors import InputError, RnnImgError
from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.models.registry import list_models, register_model
from rnnimg.tasks import Task, get_task, list_tasks, preview, register_task
from rnnimg.tasks.common import check_image_channels
from rnnimg.tasks.registry import assert_unit_range
from rnnimg.viz import make_grid

# --- what a new task module (rnnimg/tasks/invert.py) holds ---------------------------------------


def invert_image(model, image: torch.Tensor) -> torch.Tensor:
    """The typed inference function: one image (C, H, W) in, its negative out; inputs checked first."""
    check_image_channels(image, model.config.channels)
    return model.invert(image.unsqueeze(0))[0]


def inverted_view(model, batch, generator):
    images = batch["image"][:8].to(model.device)
    return {"inverted.png": make_grid(torch.cat([images, model.invert(images)]).expand(-1, 3, -1, -1),
                                      nrow=len(images))}


def invert_contract(model, batch, generator):
    out = model.invert(batch["image"])
    assert out.shape == batch["image"].shape, tuple(out.shape)
    assert_unit_range(out)
    return out


INVERT = Task(name="invert", verb="invert", title="Invert", batch_keys=("image",),
              contract=invert_contract, infer=invert_image, views=(inverted_view,), upload="image",
              hub_tag="image-to-image", next_step="rnnimg invert {run} IMAGE -o inverted.png")


# --- what its model file (rnnimg/models/invert/inverter.py) holds --------------------------------


@dataclass
class InverterConfig:
    channels: int = 1  # grey
    image_size: int = 8  # pixels a side


class Inverter(RnnImgModel):
    """A 1x1 convolution trained to give 1 - image."""

    task = "invert"
    config_class = InverterConfig
    presets = {"debug": {}}

    def __init__(self, config: InverterConfig) -> None:
        super().__init__(config)
        self.conv = nn.Conv2d(config.channels, config.channels, 1)

    def loss(self, batch):
        mse = F.mse_loss(torch.sigmoid(self.conv(batch["image"])), 1 - batch["image"])
        return LossOutput(mse, {"mse": mse.detach()})

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        return {"image": torch.rand(batch_size, c.channels, c.image_size, c.image_size, generator=generator)}

    @torch.inference_mode()
    def invert(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.sigmoid(self.conv(image.to(self.device).float()))


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The toy task and model registered, the registries restored afterwards; a saved run of it."""
    from rnnimg.models import registry as models
    from rnnimg.tasks import registry as tasks

    before = ([t.name for t in list_tasks()], list_models())  # the built-ins load first
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))
    register_task(INVERT)
    register_model("inverter")(Inverter)
    torch.manual_seed(0)
    Inverter(InverterConfig()).save_pretrained(tmp_path / "run")
    yield tmp_path / "run"
    monkeypatch.undo()
    assert ([t.name for t in list_tasks()], list_models()) == before


def test_the_cli_takes_up_a_new_task(toy, capsys):
    from rnnimg.cli import main
    from rnnimg.cli.train_cmds import next_steps
    from rnnimg.tasks import load_model_for

    assert main(["list"]) == 0
    assert any(line.split()[:2] == ["inverter", "invert;"] for line in capsys.readouterr().out.splitlines())
    assert next_steps(toy) == f"next: rnnimg evaluate {toy}   |   rnnimg invert {toy} IMAGE -o inverted.png"
    assert isinstance(load_model_for(toy, "invert"), Inverter)
    with pytest.raises(RnnImgError, match="cannot sample; models that can: .*rowrnn"):
        load_model_for(toy, "sample")
    # a run of a built-in task keeps its line
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(toy.parent / "gen")
    assert next_steps(toy.parent / "gen").endswith(f"rnnimg sample {toy.parent / 'gen'} -n 64 -o grid.png")


def test_the_page_takes_up_a_new_task(toy, tmp_path, monkeypatch):
    from rnnimg.serve import core

    served = core.load_served([str(toy)])
    assert [t.name for t in core.page_tasks(served)] == ["invert"]
    assert core.input_shape(served[0].model, "invert") == (1, 8, 8)  # the upload is its image
    upload = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    (path,) = core.task_pictures(served[0], tmp_path / "work", "invert", upload=upload)
    assert path.endswith("inverted.png")
    want = served[0].model.invert(upload)[0, 0].numpy()
    assert np.abs(inverted_cell(path) - want).max() <= 1 / 255 + 1e-6

    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = build_app(served, tmp_path / "page")
    assert [(b.label, b.id) for b in app.blocks.values() if isinstance(b, gr.Tab)] == [("Invert", "invert")]
    png = tmp_path / "upload.png"
    Image.fromarray((upload[0, 0].numpy() * 255).round().astype(np.uint8)).save(png)
    (shown,) = app(served[0].label, "upload", 0, str(png), 0, api_name="invert")
    assert np.abs(inverted_cell(shown["image"]) - want).max() <= 1 / 255 + 1e-6


def inverted_cell(path) -> np.ndarray:
    """The second cell (the inversion) of a one-column grid written with scale 3, padding 2."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"))[::3, ::3].astype(float) / 255
    return pixels[2 + 10:2 + 10 + 8, 2:2 + 8]


def test_the_cards_take_up_a_new_task(toy):
    from rnnimg.cards import read_card, write_model_card

    card, _ = read_card(write_model_card(toy, pictures=False))
    assert card["pipeline_tag"] == "image-to-image" and "invert" in card["tags"]


def test_the_contract_tests_take_up_a_new_task(toy, tmp_path, monkeypatch):
    import test_contract

    assert "inverter" in list_models("invert")
    test_contract.test_loss_is_finite_and_every_parameter_gets_a_gradient("inverter")
    test_contract.test_same_seed_same_output_and_save_load_round_trip("inverter", tmp_path)
    model = Inverter(InverterConfig())
    batch = model.example_batch(2, torch.Generator().manual_seed(0))
    assert set(preview(model, batch)) == {"inverted.png"}
    # the contract is a real check: an inverter whose output leaves [0, 1] fails it
    monkeypatch.setattr(Inverter, "invert", lambda self, image, generator=None: 2 - image)
    with pytest.raises(AssertionError, match="outside"):
        test_contract.verb_output(model, batch, seed=0)


def test_a_task_name_or_verb_is_registered_once(toy):
    with pytest.raises(ValueError, match="registered twice"):
        register_task(INVERT)
    with pytest.raises(ValueError, match="belongs to 'generate'"):
        register_task(Task(name="draw-more", verb="sample", title="More", batch_keys=("image",),
                           contract=invert_contract, infer=invert_image))
    with pytest.raises(RnnImgError, match="unknown task 'nope'"):
        get_task("nope")


def test_the_inference_function_checks_its_input_first(toy):
    from rnnimg import load_pretrained

    model = load_pretrained(toy)
    with pytest.raises(InputError, match="image is a colour image, but the model takes grey") as err:
        get_task("invert").infer(model, torch.rand(3, 8, 8))
    assert err.value.naming("in.png").startswith("in.png is a colour image")
