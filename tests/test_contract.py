"""The contract every registered model keeps, checked on its ``debug`` preset."""

import dataclasses
import math
import sys

import pytest
import torch
import torch.nn.functional as F

from rnnimg import create_model, list_models, load_pretrained
from rnnimg.models.registry import get_model_class
from rnnimg.tasks import get_task, list_tasks

MODELS = list_models()


def make(name, **overrides):
    torch.manual_seed(0)
    return create_model(name, "debug", **overrides)


def conditional_overrides(name):
    fields = {f.name for f in dataclasses.fields(get_model_class(name).config_class)}
    return {"num_classes": 3} if "num_classes" in fields else {}


def test_registry_is_not_empty():
    assert "rowrnn" in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_loss_is_finite_and_every_parameter_gets_a_gradient(name):
    for overrides in ({}, conditional_overrides(name)):
        model = make(name, **overrides).train()
        batch = model.example_batch(3, torch.Generator().manual_seed(0))
        out = model.loss(batch)
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not no_grad, f"parameters without gradient: {no_grad}"
        for value in out.metrics.values():
            assert torch.isfinite(torch.as_tensor(value)).all()


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_output_and_save_load_round_trip(name, tmp_path):
    model = make(name, **conditional_overrides(name)).eval()
    batch = model.example_batch(2, torch.Generator().manual_seed(1))
    out = verb_output(model, batch, seed=5)
    assert torch.equal(out, verb_output(model, batch, seed=5))
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(verb_output(loaded, batch, seed=5), out)
    with torch.no_grad():  # seeded: latent-variable models (draw) draw noise in their loss
        torch.manual_seed(0)
        loss = loaded.loss(batch).loss
        torch.manual_seed(0)
        assert torch.equal(loss, model.loss(batch).loss)


def verb_output(model, batch, seed):
    """Run the model's task verb and check its shape and range: the contract of its task's record
    (rnnimg.tasks), so a new task brings its own check."""
    return get_task(model.task).contract(model, batch, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, task", [(n, t) for n in MODELS for t in get_model_class(n).tasks()[1:]])
def test_every_further_task_keeps_its_contract(name, task):
    """A model's further tasks (pixelrnn's complete) keep their contracts too, reproducibly."""
    model = make(name, **conditional_overrides(name)).eval()
    batch = model.example_batch(2, torch.Generator().manual_seed(1))
    contract = get_task(task).contract
    out = contract(model, batch, torch.Generator().manual_seed(5))
    assert torch.equal(out, contract(model, batch, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("name", MODELS)
def test_example_batch_holds_the_keys_of_every_task_of_the_model(name):
    """The keys of each task's batches, or, for a model that learns from the data of another task
    (a voxel generator reads the voxels of reconstruct data: ``data_tasks``), the keys it reads."""
    cls = get_model_class(name)
    batch = make(name).example_batch(2, torch.Generator().manual_seed(0))
    for task in cls.tasks():
        keys = getattr(cls, "batch_keys", None) if cls.data_tasks else None
        assert set(keys or get_task(task).batch_keys) <= set(batch), (task, sorted(batch))


def test_every_model_does_registered_tasks():
    tasks = {t.name for t in list_tasks()}
    assert {(n, t) for n in MODELS for t in get_model_class(n).tasks() if t not in tasks} == set()


@pytest.mark.parametrize("name", MODELS)
def test_presets_build_and_configs_validate(name):
    cls = get_model_class(name)
    assert "debug" in cls.presets
    for preset, fields in cls.presets.items():
        config = create_model(name, preset).config  # every preset is a valid config ...
        assert dataclasses.is_dataclass(config) and type(config) is cls.config_class
        # ... holding the preset's values and the defaults elsewhere (the model was built from it)
        assert config == cls.config_class(**fields), preset
    assert len(sys.modules[cls.__module__].__doc__ or "") > 200, "module docstring must cite the paper"


# image generators (the voxel generators, voxscan and voxcnn, have their own tests: test_voxgen.py)
GENERATORS = [n for n in list_models("generate")
              if "image_size" in {f.name for f in dataclasses.fields(get_model_class(n).config_class)}]
OUTPUTS = [dict(output="bernoulli", channels=1), dict(output="bernoulli", channels=3),
           dict(output="categorical", levels=16, channels=1),
           dict(output="categorical", levels=16, channels=3)]


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("overrides", OUTPUTS, ids=lambda o: f"{o['output']}-{o['channels']}ch")
def test_generator_nll_is_the_log_likelihood_of_its_own_logits(name, overrides):
    """loss() trains (gradients everywhere) and its NLL equals -sum log p(pixel) gathered from the
    per-pixel logits of forward(), for Bernoulli and softmax outputs, grey and colour."""
    if getattr(get_model_class(name), "likelihood", "exact") == "bound":
        pytest.skip("a latent-variable model: its NLL is a bound (its own tests check it)")
    model = make(name, image_size=8, **overrides).train()
    batch = model.example_batch(3, torch.Generator().manual_seed(2))
    out = model.loss(batch)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        image = batch["image"]
        logits = model(image)
        if overrides["output"] == "bernoulli":
            assert logits.shape == image.shape
            logp = torch.where(image > 0.5, F.logsigmoid(logits), F.logsigmoid(-logits))
        else:
            assert logits.shape == (3, overrides["channels"], 16, 8, 8)
            target = (image * 15).round().long().unsqueeze(2)  # (B, C, 1, H, W)
            logp = logits.log_softmax(dim=2).gather(2, target).squeeze(2)
        expected = -logp.flatten(1).sum(1)
        assert torch.allclose(model.nll_per_image(image), expected, rtol=1e-5)
        metrics = model.loss(batch).metrics
        assert torch.allclose(metrics["nll_nats"], expected.mean(), rtol=1e-5)
        assert torch.allclose(metrics["bits_per_dim"], expected.mean() / (image[0].numel() * math.log(2)),
                              rtol=1e-5)
