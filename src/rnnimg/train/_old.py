"""TODO(house): the label check the models take over with check_dataset; remove after the merge."""

from __future__ import annotations

from rnnimg.errors import RnnImgError
from torch.utils.data import Subset


def check_class_labels(dataset: Dataset, model: RnnImgModel, name: str) -> None:
    """A class-conditional model (``num_classes`` > 0) needs labels, all below ``num_classes``."""
    num_classes = getattr(model.config, "num_classes", 0)
    if not num_classes or len(dataset) == 0:
        return
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    labels = getattr(base, "labels", None)
    if labels is None and "label" not in dataset[0]:
        raise RnnImgError(f"{name} has no class labels, but the model is class-conditional "
                          f"(num_classes={num_classes}); put the images in one subfolder per class, "
                          "or drop --set num_classes.")
    if labels is not None and len(labels) and int(labels.max()) >= num_classes:
        raise RnnImgError(f"{name} has labels up to {int(labels.max())}, but the model has "
                          f"num_classes={num_classes}; pass --set num_classes={int(labels.max()) + 1}.")
