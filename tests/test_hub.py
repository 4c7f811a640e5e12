"""hf:ORG/NAME (optional, `rnnimg[hub]`): a model folder on the Hugging Face Hub loads through
huggingface_hub's cache; tested offline (HF_HUB_OFFLINE=1) against a cache folder made here."""

import json
import os
import subprocess
import sys

import pytest
import torch

from rnnimg import create_model, load_pretrained
from rnnimg.errors import RnnImgError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_without_huggingface_hub_the_error_is_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(RnnImgError, match=r"needs huggingface_hub: pip install 'rnnimg\[hub\]'"):
        load_pretrained("hf:someone/model")


def offline(code: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)


def test_hub_model_loads_offline_from_the_cache(tmp_path):
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed: pip install 'rnnimg[hub]'")
    torch.manual_seed(3)
    model = create_model("rowrnn", "debug")
    repo = tmp_path / "cache" / "models--someone--tiny-rowrnn"
    model.save_pretrained(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    code = ("import json, torch; from rnnimg import load_pretrained\n"
            "m = load_pretrained('hf:someone/tiny-rowrnn')\n"
            "total = float(sum(p.double().sum() for p in m.parameters()))\n"
            "print(json.dumps({'name': m.name, 'sum': total}))")
    done = offline(code, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["name"] == "rowrnn"
    total = float(sum(p.detach().double().sum() for p in model.parameters()))
    assert loaded["sum"] == pytest.approx(total, rel=1e-12)
    # a model that is not in the cache, offline: one line saying what to do
    code = ("from rnnimg.cli import main; import sys\n"
            "sys.exit(main(['sample', 'hf:someone/absent', '-o', 'x.png']))")
    done = offline(code, tmp_path / "cache")
    assert done.returncode == 2
    assert done.stderr.startswith("rnnimg: error: cannot fetch hf:someone/absent")
    assert len(done.stderr.strip().splitlines()) == 1


def test_hub_id_must_be_org_slash_name():
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    with pytest.raises(RnnImgError, match="hf: takes ORG/NAME"):
        load_pretrained("hf:no-slash")
