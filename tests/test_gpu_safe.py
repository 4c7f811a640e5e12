"""What broke on a GPU (issue 14, section 5), reproduced on the CPU where the CPU allows it, and
checked for real on a GPU when one is present (``scripts/gpu_check.sh`` runs this file there).

- cuDNN flattens an ``nn.LSTM``'s weights into one buffer; safetensors refuses tensors that share
  storage. Here every parameter of a model is made a view of one buffer, as
  ``flatten_parameters`` does, and the model must save and reload exactly.
- A ``torch.Generator`` lives on one device, and CUDA refuses ``torch.rand(..., generator=g,
  device=d)`` when they differ. The CPU accepts a CPU generator for any device, so a fixture
  enforces CUDA's rule on the CPU, and the verbs run with a CPU generator and a model on "meta".
"""

from __future__ import annotations

import inspect

import pytest
import torch

from rnnimg import create_model, list_models, load_pretrained
from rnnimg.models.generate.base import uniforms

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _share_one_buffer(model: torch.nn.Module) -> torch.Tensor:
    """Make every parameter of ``model`` a view of one flat buffer (as cuDNN's
    ``flatten_parameters`` does for an LSTM's weights); returns the buffer."""
    params = list(model.parameters())
    buffer = torch.cat([p.detach().flatten() for p in params])
    offset = 0
    for p in params:
        p.data = buffer[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return buffer


@pytest.mark.parametrize("name", list_models())
def test_weights_that_share_one_buffer_save_and_reload_exactly(name, tmp_path):
    from safetensors.torch import save_model

    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    buffer = _share_one_buffer(model)
    ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert ptrs == {buffer.untyped_storage().data_ptr()}
    state = {k: v for k, v in model.state_dict().items()}
    if len(state) > 1:  # the failure this guards against (safetensors' save_model), reproduced
        with pytest.raises(RuntimeError, match="no suitable name to keep"):
            save_model(model, str(tmp_path / "plain.safetensors"))
    model.save_pretrained(tmp_path / "run")
    back = load_pretrained(tmp_path / "run")
    loaded = back.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
        assert loaded[key].untyped_storage().data_ptr() != buffer.untyped_storage().data_ptr()


@pytest.fixture
def strict_generators(monkeypatch):
    """CUDA's rule on the CPU: drawing with a generator onto another device type is an error."""
    for fn_name in ("rand", "randn", "randint", "randperm"):
        original = getattr(torch, fn_name)

        def strict(*args, _original=original, _name=fn_name, **kwargs):
            generator = kwargs.get("generator")
            device = torch.device(kwargs.get("device") or "cpu")
            if generator is not None and generator.device.type != device.type:
                raise RuntimeError(f"torch.{_name}: Expected a '{device.type}' device type for "
                                   f"generator but found '{generator.device.type}'")
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, fn_name, strict)
    for fn_name in ("multinomial", "bernoulli", "poisson"):  # these draw on their input's device
        original = getattr(torch, fn_name)

        def strict_on_input(input, *args, _original=original, _name=fn_name, **kwargs):
            generator = kwargs.get("generator")
            if generator is not None and generator.device.type != input.device.type:
                raise RuntimeError(f"torch.{_name}: Expected a '{input.device.type}' device type "
                                   f"for generator but found '{generator.device.type}'")
            return _original(input, *args, **kwargs)

        monkeypatch.setattr(torch, fn_name, strict_on_input)


def test_strict_fixture_refuses_what_cuda_refuses(strict_generators):
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError, match="device type for generator"):
        torch.rand(3, generator=gen, device="meta")  # what pixelrnn did
    out = uniforms((2, 3), gen, "meta")  # draw on the generator's device, then move
    assert out.shape == (2, 3) and out.device.type == "meta"
    with pytest.raises(RuntimeError, match="device type for generator"):
        torch.multinomial(torch.ones(2, 3, device="meta"), 1, generator=gen)
    a = uniforms((4,), torch.Generator().manual_seed(5), "cpu")
    assert torch.equal(a, torch.rand(4, generator=torch.Generator().manual_seed(5)))


def _verbs(model) -> list[tuple[str, callable]]:
    """Every verb of ``model`` that takes a generator, as callables of the generator."""
    c = model.config
    calls = []
    if hasattr(model, "sample") and "generate" in model.tasks():
        calls.append(("sample", lambda g: model.sample(2, generator=g)))
    if "complete" in model.tasks() and hasattr(c, "voxel_size"):  # a voxel generator
        voxels = torch.zeros(2, *(c.voxel_size,) * 3, device=model.device)
        known = torch.ones_like(voxels, dtype=torch.bool)
        known[:, :, c.voxel_size // 2:] = False
        calls.append(("complete", lambda g: model.complete(voxels, known, generator=g)))
    elif "complete" in model.tasks():
        image = torch.zeros(2, c.channels, c.image_size, c.image_size, device=model.device)
        known = torch.ones(2, 1, c.image_size, c.image_size, dtype=torch.bool, device=model.device)
        known[:, :, c.image_size // 2:] = False
        calls.append(("complete", lambda g: model.complete(image, known, generator=g)))
    if ("predict" in model.tasks() and model.device.type != "meta"  # (draws nothing)
            and "generator" in inspect.signature(model.predict).parameters):
        context = torch.rand(2, c.context, c.channels, c.frame_size, c.frame_size,
                             device=model.device)
        calls.append(("predict", lambda g: model.predict(context, 2, generator=g)))
    return calls


@pytest.mark.parametrize("name", [n for n in list_models() if set(create_model(n, "debug").tasks())
                                  & {"generate", "complete"}])
def test_verbs_take_a_cpu_generator_for_a_model_elsewhere(name, strict_generators):
    """A CPU generator with a model on another device ("meta" stands in for the GPU)."""
    fields = create_model(name, "debug").config_dict()
    small = {"image_size": 8} if "image_size" in fields else {}
    small = {"voxel_size": 4} if "voxel_size" in fields else small
    model = create_model(name, "debug", **small).eval().to("meta")  # meta runs op by op: small
    for verb, call in _verbs(model):
        try:
            out = call(torch.Generator().manual_seed(0))
        except (NotImplementedError, RuntimeError) as err:
            if "device type for generator" in str(err) or "meta" not in str(err):
                raise
            # an operation meta cannot run (e.g. .item()): the GPU test below covers it
            pytest.skip(f"{name}.{verb} cannot run on meta: {str(err).splitlines()[0]}")
        assert out.device.type == "meta", verb


@CUDA
@pytest.mark.parametrize("name", list_models())
def test_on_a_gpu_every_verb_takes_a_generator_on_either_device(name):
    torch.manual_seed(0)
    model = create_model(name, "debug").eval().cuda()
    for verb, call in _verbs(model):
        outs = []
        for device in ("cuda", "cpu", "cuda"):
            out = call(torch.Generator(device).manual_seed(3))
            assert out.device.type == "cuda" and torch.isfinite(out).all(), (verb, device)
            outs.append(out)
        torch.testing.assert_close(outs[0], outs[2])  # the same seed, the same result


@CUDA
@pytest.mark.parametrize("name", list_models())
def test_on_a_gpu_a_trained_model_saves(name, tmp_path):
    """The real case: parameters after cuDNN has flattened them (a training step on the GPU)."""
    torch.manual_seed(0)
    model = create_model(name, "debug").cuda().train()
    batch = {k: v.cuda() for k, v in model.example_batch(2, torch.Generator().manual_seed(0)).items()}
    model.loss(batch).loss.backward()
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.flatten_parameters()
    model.save_pretrained(tmp_path)
    back = load_pretrained(tmp_path, map_location="cuda")
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_a_model_loads_onto_the_device_it_is_asked_for(tmp_path):
    """load_pretrained(dir, map_location=d) returns the model on d. safetensors' load_model(...,
    device=d) copies into the parameters where they are, which left every model on the CPU and
    made `rnnimg evaluate --device cuda` fail for 13 of 20 models on a lent H200; "meta" stands in
    for the GPU here."""
    create_model("rowrnn", "debug").save_pretrained(tmp_path)
    model = load_pretrained(tmp_path, map_location="meta")
    assert {p.device.type for p in model.state_dict().values()} == {"meta"}
