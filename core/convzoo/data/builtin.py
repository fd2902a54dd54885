"""Built-in plugin: the data sets convzoo ships, Fashion-MNIST and a folder of the user's own images."""
from __future__ import annotations

from convzoo.data import fashion_mnist, image_folder
from convzoo.registry.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    fashion_mnist.register_dataset(register)
    image_folder.register_dataset(register)
