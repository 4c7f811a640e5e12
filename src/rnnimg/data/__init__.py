"""Datasets, registered by name: ``load_dataset(name, split, **options)``, ``list_datasets()``."""

# Importing a dataset module registers its datasets: images (mnist-5k, mnist, fashion-mnist,
# cifar10, folder), clips (clips), moving_mnist (moving-mnist, mnist-test-seq), scenes
# (mnist-scenes), segmentation (masks, voc, pets), mnist_captions, shapes (shapes), photos
# (photos), pairs (pairs:A,B), shapes3d (shapes3d), voxel_files (voxels:PATH). The corrupt= option
# of load_dataset lives in data/corrupt.py.
from rnnimg.data import (  # noqa: F401
    clips,
    images,
    mnist_captions,
    moving_mnist,
    pairs,
    photos,
    scenes,
    segmentation,
    shapes,
    shapes3d,
    voxel_files,
)
from rnnimg.data.registry import dataset_task, list_datasets, load_dataset, register_dataset

__all__ = ["dataset_task", "list_datasets", "load_dataset", "register_dataset"]
