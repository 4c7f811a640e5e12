"""Every task's check_dataset starts with the same two refusals (models.base.first_item): empty
data, and items without the task's batch keys, each one line naming the data and the next step."""

import pytest
import torch

from rnnimg import create_model
from rnnimg.errors import RnnImgError


@pytest.mark.parametrize("model,needs", [("unet", "images with masks"), ("r2n2", "views with voxels"),
                                         ("voxscan", "voxel grids")])
def test_empty_data_and_items_without_the_task_keys_are_refused_naming_the_data(model, needs):
    m = create_model(model, "debug")
    with pytest.raises(RnnImgError, match=rf"^DATA is empty; .*needs {needs}\.$"):
        m.check_dataset([], "DATA")
    with pytest.raises(RnnImgError, match=rf"^DATA has no .*\(image\); {model} .* such as "):
        m.check_dataset([{"image": torch.zeros(1, 8, 8)}], "DATA")
