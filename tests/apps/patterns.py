"""Deterministic byte patterns shared by the test apps and the tests.

The apps generate large bodies from these functions; the tests recompute
them to check length and sha256 without shipping fixtures.
"""

import hashlib

STREAM_BLOCK_SIZE = 64 * 1024


def stream_block(index):
    """The index-th 64 KiB block of a streamed body (pseudo-random bytes)."""
    seed = hashlib.sha256(b"ferrocorn-stream-%d" % index).digest()
    return seed * (STREAM_BLOCK_SIZE // len(seed))


def stream_blocks(total_bytes):
    """Blocks making up a body of total_bytes (a multiple of the block size)."""
    if total_bytes % STREAM_BLOCK_SIZE:
        raise ValueError("total_bytes must be a multiple of %d" % STREAM_BLOCK_SIZE)
    for index in range(total_bytes // STREAM_BLOCK_SIZE):
        yield stream_block(index)
