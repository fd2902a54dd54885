"""Data sets and the input pipeline: ``ImageSplits`` (what a dataset plugin's ``load`` returns), Fashion-MNIST from
its IDX files, and the batches a run trains and evaluates on (resizing, augmentation, this rank's shard).

May import: the leaves and ``convzoo.registry``.
"""

from convzoo._moved import moved_names

__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
