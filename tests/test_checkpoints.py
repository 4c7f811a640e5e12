import json

import pytest
import torch

from rnnimg import create_model, load_pretrained
from rnnimg.errors import RnnImgError
from rnnimg.train.callbacks import load_checkpoint_file

MARKER = "/tmp/rnnimg-pickle-was-executed"


class Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


def test_planted_pickle_in_a_resume_checkpoint_is_refused(tmp_path):
    import os

    if os.path.exists(MARKER):
        os.unlink(MARKER)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "evil": Payload()}, ckpt)
    with pytest.raises(RnnImgError, match="refused"):
        load_checkpoint_file(ckpt)
    assert not os.path.exists(MARKER), "the pickle payload ran"
    # Sanity check that the payload is real: plain pickle would execute it.
    with open(ckpt, "rb") as f:
        data = f.read()
    assert b"system" in data


def test_planted_pickle_stops_resume_before_training(tmp_path):
    from rnnimg.train import TrainSettings, train

    run = tmp_path / "run"
    train(TrainSettings("rowrnn", preset="debug", max_steps=2, out=str(run), progress=False,
                        accelerator="cpu",
                        val_fraction=0))
    torch.save({"evil": Payload()}, run / "checkpoints" / "last.ckpt")
    with pytest.raises(RnnImgError, match="refused"):
        train(TrainSettings("rowrnn", preset="debug", max_steps=4, out=str(run), resume=True,
                            progress=False))


def test_pretrained_folder_is_json_plus_safetensors(tmp_path):
    model = create_model("rowrnn", "debug", cell="gru")
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["model"] == "rowrnn" and meta["config"]["cell"] == "gru"
    raw = (tmp_path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 length, then a JSON header
    assert json.loads(raw[8 : 8 + header_len])["head.weight"]["dtype"] == "F32"
    assert b"\x80\x04" not in raw[:2] and b"torch._utils" not in raw  # no pickle stream
    assert load_pretrained(tmp_path).config.cell == "gru"


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(RnnImgError, match="not a folder"):
        load_pretrained(tmp_path / "missing")
    with pytest.raises(RnnImgError, match="config.json is missing"):
        load_pretrained(tmp_path)
    create_model("rowrnn", "debug").save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RnnImgError, match="not valid JSON"):
        load_pretrained(tmp_path)
    create_model("rowrnn", "debug", hidden_size=8).save_pretrained(tmp_path / "other")
    meta = json.loads((tmp_path / "other" / "config.json").read_text())
    meta["config"]["hidden_size"] = 16
    (tmp_path / "other" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RnnImgError, match="does not fit the config"):
        load_pretrained(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RnnImgError, match="cannot read"):
        load_pretrained(tmp_path / "other")
    meta["config"]["cell"] = "bogus"
    (tmp_path / "other" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RnnImgError, match="cell must be one of"):
        load_pretrained(tmp_path / "other")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from rnnimg.viz import make_grid, save_image

    old = os.umask(0o022)
    try:
        create_model("rowrnn", "debug").save_pretrained(tmp_path)
        save_image(make_grid(torch.rand(2, 1, 4, 4)), tmp_path / "grid.png")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors", "grid.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_weights_of_another_layout_version_are_refused(tmp_path):
    """pixelrnn's Row LSTM gate order changed without changing any tensor's name or shape: weights
    from before would load silently and sample garbage, so the saved weights_version is checked."""
    model = create_model("pixelrnn", "debug")
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["weights_version"] == type(model).weights_version == 2
    assert load_pretrained(tmp_path).config == model.config
    del meta["weights_version"]  # what rnnimg wrote before versions existed: version 1
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RnnImgError, match="version 1.*reads version 2.*retrain"):
        load_pretrained(tmp_path)
    create_model("rowrnn", "debug").save_pretrained(tmp_path / "row")  # unchanged layouts stay 1
    meta = json.loads((tmp_path / "row" / "config.json").read_text())
    del meta["weights_version"]
    (tmp_path / "row" / "config.json").write_text(json.dumps(meta))
    assert load_pretrained(tmp_path / "row").name == "rowrnn"


def count_config_reads(monkeypatch) -> list[str]:
    """Every read of a config.json from now on (its path), however the caller reads it."""
    from pathlib import Path

    reads: list[str] = []
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == "config.json":
            reads.append(str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    return reads


def test_load_run_returns_the_model_with_its_saved_metadata(tmp_path, monkeypatch):
    from rnnimg.models import LoadedRun, load_run

    model = create_model("rowrnn", "debug", cell="gru")
    data = {"name": "mnist-5k", "options": {"binarize": "fixed"}}
    model.save_pretrained(tmp_path, extra={"data": data, "training": {"max_steps": 7}})
    reads = count_config_reads(monkeypatch)
    run = load_run(tmp_path)
    assert len(reads) == 1  # config.json read once for the model and the metadata
    assert isinstance(run, LoadedRun) and run.folder == tmp_path
    assert run.metadata == json.loads((tmp_path / "config.json").read_text())
    assert run.metadata["training"] == {"max_steps": 7} and run.data == data
    assert run.config == model.config and run.model.config.cell == "gru" and not run.model.training
    for a, b in zip(run.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_pretrained(tmp_path).config == run.config  # load_pretrained is load_run's model
    empty = tmp_path / "bare"
    model.save_pretrained(empty)
    assert load_run(empty).data == {}


def test_evaluate_and_the_model_card_read_config_json_once(tmp_path, monkeypatch):
    """The callers that need the metadata as well as the model take both from one load_run."""
    from rnnimg.cards import write_model_card
    from rnnimg.train import TrainSettings, train
    from rnnimg.train.evaluate import evaluate

    run = tmp_path / "run"
    train(TrainSettings("rowrnn", preset="debug", max_steps=2, out=str(run), progress=False,
                        accelerator="cpu", val_fraction=0))
    reads = count_config_reads(monkeypatch)
    result = evaluate(run, batch_size=8, max_batches=1, progress=False)
    assert len(reads) == 1 and result["data"] == "mnist-5k"
    reads.clear()
    write_model_card(run, pictures=True)
    assert len(reads) == 1
