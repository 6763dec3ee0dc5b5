"""benchmarks/epoch_products.py: the products it counts for an epoch, and the split of perf's
samples into the phases (no perf here: the lines are written as `perf script` prints them)."""
import epoch_products
from fastmlp.bench.workloads import FIT_WORKLOADS


def test_the_blocks_are_the_products_of_a_batch():
    wide = FIT_WORKLOADS["wide"]
    shapes = epoch_products.block_shapes(wide)
    # forward 784 -> 1024 -> 1024 -> 10 in two blocks of 256 rows, the input gradients of the
    # second and third layers, and each layer's weight gradient over all 512 rows
    assert shapes.count((256, 1024, 1024, "W")) == 2
    assert shapes.count((256, 1024, 1024, "W^T")) == 2
    assert (256, 784, 1024, "W^T") not in shapes  # (the first layer has no input gradient)
    assert [s for s in shapes if s[3] == "a^T"] == [
        (512, 784, 1024, "a^T"), (512, 1024, 1024, "a^T"), (512, 1024, 10, "a^T")]
    macs = 784 * 1024 * 2 + 1024 * 1024 * 3 + 1024 * 10 * 3
    assert epoch_products.product_flops(shapes) == 2 * 512 * macs


def test_samples_go_to_the_phase_their_time_falls_in():
    script = "\n".join([
        "      1.000000100:  7f00 rp_product512_n_f",  # phase 0, a product
        "      1.000000200:  7f01 fm_finish_step_f.avx512f",  # phase 0, not one
        "      1.5:  7f02 sgemm_kernel",  # between the phases: neither
        "      2.000000001:  7f03 rp_product512_at_picked_f",  # phase 1
        "      2.000000002:  7f04 [unknown]",
        "      3.1:  7f05 rp_product512_t_f",  # after both
    ])
    phases = [(1_000_000_000, 1_000_001_000), (2_000_000_000, 2_500_000_000)]
    assert epoch_products.split_samples(script, phases) == [[1, 2], [1, 2]]
