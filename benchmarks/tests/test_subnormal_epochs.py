"""benchmarks/subnormal_epochs.py: its count of subnormal parameters, and a quick run on images
written here in MNIST's IDX format (the tests never read ../shared). Nothing is timed."""
import gzip
import re
import struct

import numpy as np

import subnormal_epochs


def test_counts_subnormal_and_tiny_parameters():
    theta = np.array([0.0, -0.0, 1e-40, -1e-45, 2.0 ** -41, -(2.0 ** -126), 2.0 ** -39, 1.0],
                     np.float32)
    # subnormal: 1e-40 and -1e-45; below 2^-40 and not 0: those and 2^-41 and -2^-126
    assert subnormal_epochs.counts(theta) == (2, 4)


def _write_idx(path, array, code):
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(">u1").tobytes())


def test_a_quick_run_prints_every_epoch_and_both_ways(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = np.zeros((64, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = rng.integers(0, 256, (64, 12, 12))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 0x08)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(64) % 10, 0x08)
    subnormal_epochs.main(["--mnist-dir", str(tmp_path), "--epochs", "2", "--in-turns", "1",
                           "--input-scale", "0.5"])
    out = capsys.readouterr().out
    assert out.startswith("64 images, pixels in [0, 0.5]; the processor's verdict"), out
    for epoch in (1, 2):
        assert re.search(rf"^epoch {epoch}: [\d.]+ s; subnormal parameters [\d,]+, below 2\^-40 "
                         r"[\d,]+ of 235,146$", out, re.M), out
    assert re.search(r"^assists: [\d.]+ s$", out, re.M), out
