"""Datasets, registered by name: ``load_dataset(name, split, **options)``, ``list_datasets()``."""

from rnnimg.data import images  # noqa: F401  (registers mnist-5k, mnist, fashion-mnist, cifar10, folder)
from rnnimg.data.registry import list_datasets, load_dataset, register_dataset

__all__ = ["list_datasets", "load_dataset", "register_dataset"]
