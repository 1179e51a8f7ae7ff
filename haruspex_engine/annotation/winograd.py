"""Winograd F(2×2×2, 3×3×3) for VALID, stride-1, 3³ 3-D convolutions (TensorFlow cross-correlation convention).

One dimension, F(2, 3): two outputs of a 3-tap correlation, y[i] = Σ_k d[i+k] g[k] (i = 0, 1), from a 4-sample window
d[0..3] with 4 multiplications instead of 6:

    y = Aᵀ [(G g) ⊙ (Bᵀ d)]

    Bᵀ = [[1,  0, -1,  0],      G = [[1,    0,   0  ],      Aᵀ = [[1, 1,  1,  0],
          [0,  1,  1,  0],           [1/2,  1/2, 1/2],            [0, 1, -1, -1]]
          [0, -1,  1,  0],           [1/2, -1/2, 1/2],
          [0,  1,  0, -1]]           [0,    0,   1  ]]

In three dimensions the transforms are applied along each spatial axis (they are separable), so a 2³ block of outputs
costs 4³ = 64 multiplications per (input channel, output channel) pair instead of 8 · 27 = 216 (3.375× fewer). With
channels, the element-wise product becomes, for each of the 64 transform positions ξ = (a, b, c), a matrix product
over input channels:

    M[ξ, n, o] = Σ_i V[ξ, n, i] · U[ξ, i, o]

where n runs over all 2³ output blocks of all batch items (tiles of the input at stride 2 with a 4³ window),
V = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) d is the transformed input and U = (G ⊗ G ⊗ G) g the transformed kernel (computed once, in float64,
by ``transform_kernel``). The outputs are Y = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) M, written back to their 2³ blocks.

F(2, 3) uses only the interpolation points 0, ±1 and ∞: all transform coefficients are 0, ±1 or ±1/2, so the extra
rounding error in float32 is a few ulps of the operands (the same order as a change of summation order).
"""
from __future__ import annotations

import numpy as np

from haruspex_engine.devices import import_tensorflow

tf = import_tensorflow()

#: G of F(2, 3), shape (4, 3): kernel transform along one axis. Bᵀ and Aᵀ (module docstring) are written out as
#: additions in _transform_axis and _output_transform.
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_kernel(kernel_np: np.ndarray) -> np.ndarray:
    """Winograd-domain kernel U = (G ⊗ G ⊗ G) g for every (input, output) channel pair.

    kernel_np: (3, 3, 3, Cin, Cout), TF Conv3D layout [kd, kh, kw, in, out]. The product is formed in float64.
    Returns float64 (64, Cin, Cout); axis 0 is the transform position ξ = 16·a + 4·b + c, where a, b, c ∈ {0..3} index
    the transformed d (depth), h (height) and w (width) axes. Cast it to the compute dtype before use.
    """
    g = np.asarray(kernel_np, dtype=np.float64)
    if g.ndim != 5 or g.shape[:3] != (3, 3, 3):
        raise ValueError(f"expected a (3, 3, 3, Cin, Cout) kernel, got shape {g.shape}")
    u = np.einsum("ai,bj,ck,ijkxy->abcxy", G, G, G, g, optimize=True)
    return u.reshape(64, g.shape[3], g.shape[4])


def _transform_axis(parts: list, axis: int) -> list:
    """Bᵀ along ``axis`` (length 2T + 2) of every tensor in ``parts``: each gives 4 tensors of length T on that axis.

    Window t holds d0..d3 = x[2t .. 2t+3]. The axis is reshaped to (T + 1, 2) sample pairs p, so that d0 = p[:-1, 0],
    d1 = p[:-1, 1], d2 = p[1:, 0], d3 = p[1:, 1] are contiguous slices (strided slices are much slower in TF), and
    Bᵀd = (d0 - d2, d1 + d2, d2 - d1, d1 - d3). The result lists the transforms of parts[0] first, so list position
    = 4 · (position in ``parts``) + a.
    """
    out = []
    for x in parts:
        shape = [-1] + x.shape.as_list()[1:]
        pairs = shape[axis] // 2
        y = tf.reshape(x, shape[:axis] + [pairs, 2] + shape[axis + 1:])
        rank = len(shape) + 1

        def sample(first, j, y=y, pairs=pairs, rank=rank):
            begin, size = [0] * rank, [-1] * rank
            begin[axis], size[axis], begin[axis + 1], size[axis + 1] = first, pairs - 1, j, 1
            return tf.squeeze(tf.slice(y, begin, size), axis + 1)

        d0, d1, d2, d3 = sample(0, 0), sample(0, 1), sample(1, 0), sample(1, 1)
        out += [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    return out


def _input_transform(x: tf.Tensor) -> list:
    """(B, D, H, W, Cin) → 64 tensors V[ξ] of shape (B·TD·TH·TW, Cin), ξ = 16·a + 4·b + c (Bᵀ along D, H, W).

    The 64 results are kept as separate tensors: stacking them costs more than the transform itself (XLA turns a
    concatenation inside a fused loop into a per-element select), and each feeds its own matrix product anyway.
    """
    parts = _transform_axis(_transform_axis(_transform_axis([x], 1), 2), 3)
    return [tf.reshape(v, [-1, x.shape[-1]]) for v in parts]


def _output_transform(m: list, blocks: tuple, bias, relu: bool) -> tf.Tensor:
    """64 tensors M[ξ] (B·TD·TH·TW, Cout) → Y (B, 2·TD, 2·TH, 2·TW, Cout), with optional bias and ReLU.

    Aᵀ is applied along a, then b, then c: (m0, m1, m2, m3) → (m0 + m1 + m2, m1 - m2 - m3). The 2³ results of each
    block are interleaved with the block axes: y[n, 2·td + i, 2·th + j, 2·tw + k] = Y_ijk[n, td, th, tw].
    """
    td, th, tw = blocks
    cube = [tf.reshape(v, [-1, td, th, tw, v.shape[-1]]) for v in m]

    def at(m0, m1, m2, m3):
        return m0 + m1 + m2, m1 - m2 - m3

    # cube index 16·a + 4·b + c → after the a pass: [i][4·b + c]; after b: [2·i + j][c]; after c: [4·i + 2·j + k].
    y_a = list(zip(*[at(*(cube[16 * a + r] for a in range(4))) for r in range(16)]))          # [i][4b + c]
    y_b = [list(zip(*[at(*(row[4 * b + c] for b in range(4))) for c in range(4)])) for row in y_a]  # [i][j][c]
    y = [z for row in y_b for col in row for z in at(*col)]                                    # [4i + 2j + k]
    if bias is not None:
        y = [z + bias for z in y]
    if relu:
        y = [tf.nn.relu(z) for z in y]
    y = tf.stack(y, axis=0)                                    # (8, B, TD, TH, TW, Cout), 8 = (i, j, k)
    cout = y.shape[-1]
    y = tf.reshape(y, [2, 2, 2, -1, td, th, tw, cout])
    y = tf.transpose(y, [3, 4, 0, 5, 1, 6, 2, 7])              # (B, TD, i, TH, j, TW, k, Cout)
    return tf.reshape(y, [-1, 2 * td, 2 * th, 2 * tw, cout])


def winograd_conv3d_valid(x: tf.Tensor, transformed_kernel: tf.Tensor, bias: tf.Tensor | None = None,
                          relu: bool = False) -> tf.Tensor:
    """VALID 3³ stride-1 convolution, equal to ``tf.nn.conv3d(x, kernel, [1]*5, "VALID")`` (+ bias, ReLU if asked).

    x: (B, D, H, W, Cin), NDHWC, with D, H, W static, even and ≥ 4 (so the output sizes D-2, H-2, W-2 are even).
    transformed_kernel: (64, Cin, Cout) from ``transform_kernel``, in the dtype of x.
    bias: optional (Cout,), added before the optional ReLU (both fused into the output transform).
    Returns (B, D-2, H-2, W-2, Cout).

    Steps: with T = (size - 2) / 2 blocks per axis and N = B·TD·TH·TW,
      V[ξ] = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) applied to every 4³ window at stride 2, as 64 matrices (N, Cin);
      M[ξ] = V[ξ] @ U[ξ], 64 matrix products (N, Cin) × (Cin, Cout);
      Y = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) M, each 2³ output block written back at (2·td, 2·th, 2·tw).
    """
    _, d, h, w, cin = x.shape
    if d is None or h is None or w is None or d % 2 or h % 2 or w % 2 or min(d, h, w) < 4:
        raise ValueError(f"spatial sizes must be static, even and >= 4, got {x.shape}")
    if transformed_kernel.shape[:2] != (64, cin):
        raise ValueError(f"transformed kernel {transformed_kernel.shape} does not fit {cin} input channels")
    blocks = (d // 2 - 1, h // 2 - 1, w // 2 - 1)
    v = _input_transform(x)
    m = [tf.linalg.matmul(v_xi, u_xi) for v_xi, u_xi in zip(v, tf.unstack(transformed_kernel, num=64))]
    # Fusing the transforms with XLA was measured no faster on a 2-core CPU and recompiles for every batch size.
    return _output_transform(m, blocks, bias, relu)
