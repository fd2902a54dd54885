"""The example plugin's own tests: convzoo's conformance suite, plus d2l's printed shapes."""
from convzoo.testing import conformance_suite, summary_shapes

test_conformance = conformance_suite("resnet")


def test_shapes_match_d2l():
    # d2l prints these for one 1x224x224 image
    assert summary_shapes("resnet", resize=224) == [
        ("0", (1, 64, 112, 112)), ("1", (1, 64, 112, 112)), ("2", (1, 64, 112, 112)), ("3", (1, 64, 56, 56)),
        ("resnet_block1", (1, 64, 56, 56)), ("resnet_block2", (1, 128, 28, 28)), ("resnet_block3", (1, 256, 14, 14)),
        ("resnet_block4", (1, 512, 7, 7)), ("global_avg_pool", (1, 512, 1, 1)), ("fc", (1, 10)),
    ]
