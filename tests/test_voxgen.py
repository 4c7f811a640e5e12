"""Voxel generators (voxscan, voxcnn): causality over the whole volume (flips and gradients; voxscan
sees its whole past, voxcnn has PixelCNN's blind spot), the state-carrying samplers against the
full forward and the naive sampler, completion, the likelihood and bits per voxel pooled over a
split, class names, a tiny overfit, training on shapes3d through the trainer, and user errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnimg.errors import RnnImgError
from rnnimg.metrics import bits_per_voxel_pooled, voxel_nll_sums
from rnnimg.models import create_model
from rnnimg.models.generate.volume import to_raster

MODELS = ("voxscan", "voxcnn")
SMALL = {"voxscan": dict(hidden=6, num_layers=2, head_hidden=12),
         "voxcnn": dict(channels=6, num_layers=1, head_hidden=12)}


def tiny(name: str, size: int = 4, num_classes: int = 0, seed: int = 0, dtype=torch.float32, **more):
    """A small model with large random weights, so that no dependency hides behind a small number."""
    torch.manual_seed(seed)
    model = create_model(name, "debug", voxel_size=size, num_classes=num_classes, **{**SMALL[name], **more})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.head_hidden.bias.add_(2.0)  # fewer head ReLUs at zero
    return model.to(dtype).eval()


def random_voxels(n: int, size: int, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return (torch.rand(n, size, size, size, generator=torch.Generator().manual_seed(seed)) < 0.5).to(dtype)


def ranks(size: int) -> torch.Tensor:
    """(D, D, D) long in the data layout [z, y, x]: each voxel's place in the order (y, z, x)."""
    return to_raster(torch.arange(size ** 3).view(1, size, size, size))[0]


@pytest.mark.parametrize("name", MODELS)
def test_flipping_a_voxel_never_changes_an_earlier_logit(name):
    size = 4
    model = tiny(name, size)
    voxels = random_voxels(2, size)
    rank = ranks(size)
    with torch.no_grad():
        base = model(voxels)
        later = 0
        for pos in range(size ** 3):
            z, y, x = (int(v) for v in (rank == pos).nonzero()[0])
            flipped = voxels.clone()
            flipped[:, z, y, x] = 1 - flipped[:, z, y, x]
            differs = (model(flipped) != base).any(0)  # (D, D, D)
            assert not differs[rank <= pos].any(), f"an earlier logit changed with voxel {(z, y, x)}"
            later += int(differs[rank > pos].sum())
    assert later > (size ** 3) ** 2 / 8  # the test has teeth: later logits do depend on the voxels


@pytest.mark.parametrize("name", MODELS)
def test_whole_volume_gradients_show_what_each_logit_sees(name):
    """voxscan: every logit depends on every voxel before it and on nothing else (no blind spot);
    voxcnn: on nothing at or after it, and it misses some of its past (PixelCNN's blind spot)."""
    size = 4
    model = tiny(name, size, num_classes=3, dtype=torch.float64)
    voxels = random_voxels(16, size, dtype=torch.float64).requires_grad_(True)
    label = torch.arange(16) % 3
    logits = model(voxels, label)
    rank = ranks(size)
    blind = 0
    for z in range(size):
        for y in range(size):
            for x in range(size):
                (grad,) = torch.autograd.grad(logits[:, z, y, x].sum(), voxels, retain_graph=True)
                seen = (grad != 0).any(0)
                past = rank < rank[z, y, x]
                assert not (seen & ~past).any(), f"logit {(z, y, x)} sees a voxel at or after it"
                blind += int((past & ~seen).sum())
    assert blind == 0 if name == "voxscan" else blind > 0


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("name", MODELS)
def test_state_carrying_sampler_logits_equal_the_full_forward(name, conditional):
    # voxcnn at 6^3 with reach 2: its slab starts above the floor, so the slab is really tested
    model = tiny(name, 6 if name == "voxcnn" else 4, num_classes=3 if conditional else 0)
    if conditional:
        with torch.no_grad():
            model.label_embedding.weight.normal_(0, 1)
    size = model.config.voxel_size
    voxels = random_voxels(3, size)
    label = torch.tensor([0, 2, 1]) if conditional else None
    expected = model(voxels, label)
    assert torch.allclose(model.cached_logits(voxels, label), expected, atol=1e-5)
    if conditional:  # and the label matters
        assert not torch.allclose(model(voxels, torch.tensor([1, 0, 2])), expected, atol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_fast_and_naive_samplers_draw_identical_volumes(name):
    model = tiny(name, 4, num_classes=2)
    label = torch.tensor([0, 1, 1])
    fast = model.sample(3, label=label, temperature=0.9, generator=torch.Generator().manual_seed(5))
    naive = model.sample_naive(3, label=label, temperature=0.9, generator=torch.Generator().manual_seed(5))
    assert fast.shape == (3, 4, 4, 4) and set(fast.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(fast, naive)
    other = model.sample(3, label=label, temperature=0.9, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(fast, other)


@pytest.mark.parametrize("name", MODELS)
def test_completion_keeps_the_known_voxels_and_draws_the_rest(name):
    model = tiny(name, 4)
    voxels = random_voxels(4, 4, seed=3)
    known = torch.zeros_like(voxels, dtype=torch.bool)
    known[:, :, :2] = True  # the lower half (y < 2)
    known[0, 3, 3, 3] = True  # and one voxel late in the order
    done = model.complete(voxels, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(done[known], voxels[known])
    naive = model.complete(voxels, known, generator=torch.Generator().manual_seed(0), naive=True)
    assert torch.equal(done, naive)
    # the unknown voxels are drawn, not copied: over several seeds they differ from the input
    draws = [model.complete(voxels, known, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    assert any(not torch.equal(d[~known], voxels[~known]) for d in draws)


def test_completion_conditions_on_the_known_lower_half():
    """The first unknown voxel's probability is the model's conditional given the known prefix."""
    model = tiny("voxscan", 4)
    voxels = random_voxels(1, 4, seed=4)
    known = torch.zeros_like(voxels, dtype=torch.bool)
    known[:, :, :2] = True
    with torch.no_grad():
        p = torch.sigmoid(model(voxels)[0, 0, 2, 0])  # voxel (z=0, y=2, x=0): first of the upper half
    hits = torch.stack([model.complete(voxels.expand(64, -1, -1, -1), known.expand(64, -1, -1, -1),
                                       generator=torch.Generator().manual_seed(s))[:, 0, 2, 0]
                        for s in range(8)]).mean()
    assert abs(float(hits) - float(p)) < 4 * math.sqrt(float(p * (1 - p)) / 512) + 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_nll_is_the_log_likelihood_of_its_own_logits_and_loss_trains(name):
    model = create_model(name, "debug", voxel_size=6, num_classes=3).train()
    batch = model.example_batch(3, torch.Generator().manual_seed(2))
    out = model.loss(batch)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        logits = model(batch["voxels"], batch["label"])
        logp = torch.where(batch["voxels"] > 0.5, F.logsigmoid(logits), F.logsigmoid(-logits))
        expected = -logp.flatten(1).sum(1)
        assert torch.allclose(model.nll_per_volume(batch["voxels"], batch["label"]), expected, rtol=1e-5)
        bits = model.loss(batch).metrics["bits_per_voxel"]
        assert torch.allclose(bits, expected.mean() / (216 * math.log(2)), rtol=1e-5)


def test_bits_per_voxel_are_pooled_over_the_split_per_class():
    model = create_model("voxscan", "debug", voxel_size=4, num_classes=3).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [model.example_batch(n, gen) for n in (3, 1, 4)]  # uneven batches
    total = {}
    for batch in batches:
        for key, value in model.evaluation_statistics(batch).items():
            total[key] = total.get(key, 0) + value
    metrics = model.reduce_statistics(total)
    with torch.no_grad():
        nats = np.concatenate([model.nll_per_volume(b["voxels"], b["label"]).double().numpy()
                               for b in batches])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    assert metrics["bits_per_voxel"] == pytest.approx(nats.mean() / (64 * np.log(2)), rel=1e-9)
    for k in range(3):
        want = nats[labels == k].mean() / (64 * np.log(2)) if (labels == k).any() else float("nan")
        assert metrics["bits_per_voxel_per_class"][k] == pytest.approx(want, rel=1e-9, nan_ok=True)
    nats_sum, count = voxel_nll_sums(torch.tensor([2.0, 4.0]), torch.tensor([1, 1]), 3)
    assert math.isnan(float(bits_per_voxel_pooled(nats_sum, count, 8)[0]))
    assert float(bits_per_voxel_pooled(nats_sum, count, 8)[1]) == pytest.approx(3 / (8 * math.log(2)))


def test_class_names_pick_labels_and_unknown_ones_are_one_line():
    model = create_model("voxscan", "debug", voxel_size=4, num_classes=2, class_names=("chair", "mug"))
    a = model.sample(2, label="mug", generator=torch.Generator().manual_seed(0))
    b = model.sample(2, label=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(RnnImgError, match="unknown class 'sofa'.*chair, mug"):
        model.sample(1, label="sofa")


def test_user_errors_are_one_line():
    model = create_model("voxcnn", "debug", voxel_size=4, num_classes=0)
    with pytest.raises(RnnImgError, match=r"takes \(B, 4, 4, 4\)"):
        model.complete(torch.zeros(1, 5, 5, 5), torch.zeros(1, 5, 5, 5, dtype=torch.bool))
    with pytest.raises(RnnImgError, match="known mask"):
        model.complete(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4))
    with pytest.raises(RnnImgError, match="without labels"):
        model.sample(1, label=0)
    with pytest.raises(RnnImgError, match="temperature"):
        model.sample(1, temperature=0)


def test_voxscan_loss_falls_on_a_few_fixed_shapes():
    from rnnimg.data import load_dataset

    data = load_dataset("shapes3d", "train", train_size=4, voxel_size=8, num_views=1, view_size=8)
    voxels = torch.stack([data[i]["voxels"] for i in range(4)])
    torch.manual_seed(0)
    model = create_model("voxscan", "debug", num_classes=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = model.loss({"voxels": voxels}).loss
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.6 * first


def test_trains_and_evaluates_on_shapes3d_through_the_trainer(tmp_path):
    from rnnimg.tasks import preview
    from rnnimg.train import TrainSettings, evaluate, train

    opts = {"train_size": 16, "val_size": 4, "test_size": 8, "voxel_size": 8}
    settings = TrainSettings(model="voxscan", data="shapes3d", preset="debug", data_options=opts,
                             batch_size=4, max_steps=3, out=str(tmp_path / "run"), accelerator="cpu",
                             sample_every_n_steps=2, progress=False)
    run = train(settings)
    result = evaluate(run, split="test", progress=False)
    metrics = result["metrics"]
    assert result["num_items"] == 8 and 0 < metrics["bits_per_voxel"] < 2
    assert len(metrics["bits_per_voxel_per_class"]) == 8
    from rnnimg.models import load_pretrained

    model = load_pretrained(run)
    assert model.config.class_names[0] == "chair" and model.config.voxel_size == 8
    from rnnimg.data import load_dataset

    data = load_dataset("shapes3d", "val", **opts)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("voxels", "label")}
    pictures = preview(model, batch, torch.Generator().manual_seed(0))
    assert set(pictures) == {"samples.png", "completions.png"}
    assert pictures["samples.png"].shape[0] == 3


def test_cli_sample_renders_shapes_and_writes_one_mesh_per_sample(tmp_path, capsys):
    from rnnimg.cli import main
    from rnnimg.geometry.mesh import read_obj

    torch.manual_seed(0)
    model = create_model("voxscan", "debug", voxel_size=6, num_classes=2, class_names=("chair", "mug"))
    with torch.no_grad():
        model.head_out.bias.fill_(-0.5)  # some voxels filled, some empty
    model.save_pretrained(tmp_path / "run")
    grid, meshes = tmp_path / "grid.png", tmp_path / "meshes"
    args = ["sample", str(tmp_path / "run"), "-n", "3", "-o", str(grid), "--label", "mug"]
    assert main([*args, "--mesh-dir", str(meshes)]) == 0
    assert grid.exists()
    assert sorted(p.name for p in meshes.iterdir()) == [f"sample_00{k}.obj" for k in range(3)]
    mesh = read_obj(meshes / "sample_000.obj")
    assert len(mesh.faces) and mesh.faces.max() < len(mesh.vertices) and mesh.faces.shape[1] == 3
    capsys.readouterr()
    assert main([*args, "--mesh-dir", str(meshes)]) == 2  # nothing overwritten without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "run"), "-o", str(tmp_path / "b.png"), "--label", "sofa"]) == 2
    err = capsys.readouterr().err  # issue 20: an unknown class is one line, and nothing is written
    assert "unknown class 'sofa'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()
