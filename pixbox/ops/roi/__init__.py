"""RoI pooling and RoI align: torchvision's semantics in pure, vectorised PyTorch.

Both ops cut a fixed-size ``output_size`` grid of features out of every region of interest
(RoI) of a feature map, as used by Fast/Faster/Mask R-CNN (D2L, "Region-based CNNs").
RoIs are ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates, mapped onto
the feature map by ``spatial_scale``; a list of per-image ``[K_i, 4]`` boxes is accepted too.
Outputs equal torchvision's CPU kernels (up to floating-point summation order): box geometry is
computed in the input's dtype with the same operations in the same order. Half-precision inputs
(float16, bfloat16) are computed in float32 and the results cast back, and autocast never changes
the dtype (float32 in, float32 out), as torchvision's autocast rule for these ops.

:func:`roi_pool` (Fast R-CNN): the scaled corners are rounded half away from zero, the RoI is
at least 1x1 pixel, bin ``(ph, pw)`` covers rows ``[floor(ph * bh), ceil((ph + 1) * bh))``
(likewise columns) offset by the RoI start and clipped to the map; the output is the bin's
maximum (0 for an empty bin) and the gradient goes to the first maximal element in row-major
order. For float32 (and half) inputs the maximum runs on int64 keys that order like
``(value, -position)``, so one integer maximum yields the first maximal position too, and bins
are looked up in a 2-D sparse table of range maxima (levels up to the largest bin side): each
bin is the union of four power-of-two ranges anchored at its corners, so four lookups per
output whatever the bin size, on a channels-last copy of the map (so the ``C`` maxima of an
output position are gathered from contiguous memory). The table lives in a scratch buffer
reused across calls (at most
``_POOL_TABLE_ELEMS`` int64 elements, 256 MB, per thread; fresh allocations of that size cost
more in page faults than the table's computation). float64 inputs, and tables that would be
larger, take a maximum over the columns of each column bin, then over the rows of each row bin,
on chunks of RoIs. The argmax indices are found without autograd; the output is one
differentiable gather whose backward is a ``scatter_add``.

:func:`roi_align` (Mask R-CNN): each bin averages bilinear samples on a regular
``grid_h x grid_w`` grid (``sampling_ratio``, or ``ceil(roi_size / output_size)`` per RoI
when ``sampling_ratio <= 0``). A sample outside ``[-1, H] x [-1, W]`` contributes 0;
coordinates in ``[-1, 0]`` are clamped to 0, and samples at or beyond the last row/column use
that row/column. Sample weights are products of a row weight and a column weight, and the
"outside" test is separable too, so each RoI's output is

    out[k, c] = A_y[k] @ X[b_k, c] @ A_x[k].T / count_k

with ``A_y[k]`` ``[oh, H]`` and ``A_x[k]`` ``[ow, W]`` holding the summed row and column
weights of the bins' samples. The products run on the window of rows and columns each RoI
touches (RoIs are grouped by window size and processed in chunks of bounded memory); the
backward pass (w.r.t. the input) is the same matrix products transposed, via autograd.

Example (D2L's RoI pooling example):
    >>> X = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> rois = torch.tensor([[0.0, 0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 10.0, 30.0, 30.0]])
    >>> roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1).tolist()
    [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]
"""

from pixbox.ops.roi._common import BoxesLike
from pixbox.ops.roi.align import RoIAlign, roi_align
from pixbox.ops.roi.pool import RoIPool, roi_pool

__all__ = ["BoxesLike", "RoIAlign", "RoIPool", "roi_align", "roi_pool"]
