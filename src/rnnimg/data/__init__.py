"""Datasets, registered by name: ``load_dataset(name, split, **options)``, ``list_datasets()``."""

# Importing a dataset module registers its datasets: images (mnist-5k, mnist, fashion-mnist,
# cifar10, folder), clips (clips), moving_mnist (moving-mnist, mnist-test-seq), scenes
# (mnist-scenes), segmentation (masks, voc, pets), mnist_captions.
from rnnimg.data import clips, images, mnist_captions, moving_mnist, scenes, segmentation  # noqa: F401
from rnnimg.data.registry import list_datasets, load_dataset, register_dataset

__all__ = ["list_datasets", "load_dataset", "register_dataset"]
