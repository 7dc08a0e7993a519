"""The compiled kernels: forward, loss, BPTT(k) gradients and population loss of the cells.

Layout, and the rule it shows::

    simd.py    8-lane float64 vectors (f64x8) and data pointers, as Numba intrinsics
    tiles.py   the only module that imports simd: register-blocked tiles, the vector tanh and
               activations, the output layer's vector code, and the small product API the
               cells call (product, zout, loss_nonlinear, dmul, dact; ptr and keep)
    elman.py   the Elman cell: plain loops and product calls, no vector
    gated.py   the LSTM and GRU cells: plain ordered scalar loops (they use no tiles yet)
    cma.py     CMA-ES's per-generation arithmetic (tell: sort, update, eigendecomposition;
               ask), NumPy's bits: the same operations, BLAS and LAPACK calls and layouts

Only ``tiles.py`` works with vectors and opens pointers; the cells never import ``simd``.
``product`` and ``loss_nonlinear`` take data pointers (Numba's reference counting of array
arguments costs more than a small tile): a cell obtains one with ``tiles.ptr(a)``, hands it
back to those functions unopened (never indexed, offset, stored or returned) and keeps ``a``
alive by name (``tiles.keep(a)``) until the call has returned. Debug mode:
``BPTT_KERNEL_CHECKS=1`` in the environment (read once, at import) makes ``vload`` and
``vstore`` check their offsets and raise ``IndexError`` naming the offset and the array's
length; the results are the same bits, and the compiled code goes to its own Numba cache
directory (``$NUMBA_CACHE_DIR/bptt-kernel-checks``, or
``toolkit/kernels/__pycache__/bptt-kernel-checks``), because Numba's cache would otherwise hand
one mode the other's machine code for functions whose signature is the same in both. See
:mod:`toolkit.kernels.simd` and docs/KERNELS.md (the invariants a contributor must keep).

The package's top level is what the rest of the toolkit uses: the Elman kernels (Numba
dispatchers, callable from other jitted code as ``toolkit.kernels.loss_and_grad``), the code
tables ``ACT`` and ``OUT``, ``_WIDE`` (whether the AVX-512 tiles are in use), and CMA-ES's
``cma_tell``, ``cma_ask``, ``cma_sep_tell``, ``cma_sep_ask``.
"""

from . import simd  # noqa: I001  (first: it sets the debug mode's cache directory)
from .elman import (
    ACT,
    OUT,
    forward,
    forward_into,
    forward_work,
    grad_work_size,
    loss,
    loss_and_grad,
    loss_and_grad_rows,
    population_loss,
)
from .tiles import _WIDE
from .cma import ask as cma_ask  # noqa: F401 (CMA-ES's per-generation arithmetic)
from .cma import sep_ask as cma_sep_ask  # noqa: F401
from .cma import sep_tell as cma_sep_tell  # noqa: F401
from .cma import tell as cma_tell  # noqa: F401

__all__ = [
    "ACT",
    "OUT",
    "_WIDE",
    "forward",
    "forward_into",
    "forward_work",
    "grad_work_size",
    "loss",
    "loss_and_grad",
    "loss_and_grad_rows",
    "population_loss",
    "simd",
]
