"""keep_freed_memory: big blocks come from malloc's heap and stay there for the next training step."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
from helpers import MALLINFO

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# mallinfo2 of a fresh process that allocates and frees a 64 MiB tensor, with or without keep_freed_memory()
PROBE = MALLINFO + '''
from convzoo.training.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
before = libc.mallinfo2()
block = torch.ones(64 << 20, dtype=torch.uint8)
during = libc.mallinfo2()
del block
after = libc.mallinfo2()
print(json.dumps({"kept": kept, "mmapped_during": during.hblkhd - before.hblkhd,
                  "mmapped_after": after.hblkhd - before.hblkhd, "heap_during": during.arena - before.arena,
                  "heap_after": after.arena - before.arena}))
'''
MIB = 1 << 20


def probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_by_default_a_big_tensor_is_mapped_and_handed_back():
    default = probe("default")
    assert default["mmapped_during"] >= 64 * MIB
    assert default["heap_during"] < 64 * MIB
    assert default["mmapped_after"] < 64 * MIB


def test_kept_memory_serves_big_tensors_from_the_heap_and_keeps_it():
    kept = probe("keep")
    assert kept["kept"] is True
    assert kept["mmapped_during"] < 64 * MIB
    assert kept["heap_during"] >= 64 * MIB
    assert kept["heap_after"] >= 64 * MIB  # not trimmed: the next step reuses it without page faults
