"""Every registered architecture, first- or third-party, passes the same checks."""
import pytest

from convzoo import get_architecture, list_architectures
from convzoo.testing import CHECKS, check_onnx_export


# the ONNX check exports and runs onnxruntime (seconds per architecture): slow
@pytest.mark.parametrize("check", [pytest.param(check, marks=pytest.mark.slow) if check is check_onnx_export else check
                                   for check in CHECKS], ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", list_architectures())
def test_architecture_conforms(name, check):
    check(get_architecture(name))


def test_the_four_seed_architectures_are_registered():
    assert {"alexnet", "vgg", "nin", "googlenet"} <= set(list_architectures())
