"""CMA-ES's per-generation arithmetic in compiled calls, bit for bit NumPy's (issue 18).

``tell`` is :class:`toolkit.train.es_cmaes.LazyStrategy`'s ``tell_array`` (the stable sort of
the losses, ``update_sorted`` and, when due, ``decompose``) in ONE call; ``ask`` is
``ask_array``'s ``centroid + sigma * np.dot(arz, BD.T)``; ``sep_tell`` and ``sep_ask`` are the
same for ``SepStrategy`` (diagonal C). They exist because at n = 11..29 parameters the NumPy
version spent more time in 15-20 small NumPy calls per generation than in the fitness kernel.
Kernels are pure: arrays and numbers in, numbers out; the strategy's arrays are written in
place, and every scalar the NumPy code derives from attributes alone (square
roots of constants, ``sigma ** 2``, the ``hsig`` denominator with its ``pow``) is computed by
the caller, in Python, with the original expression, and passed in. ``sigma``'s own update
(``np.exp``, whose NumPy loop need not round as libm's ``exp``, Numba's, does) stays in Python
(NumPy's ``exp`` differed from libm's in the last bit for ~5 % of arguments in [-1, 1] here).

Same bits as the NumPy code, because each operation is the same IEEE operation in the same
order (no fastmath, so no contraction into fused multiply-adds), and every BLAS and LAPACK call
is made with the layouts NumPy's call has:

* ``np.dot(weights, best)``, ``np.dot(B.T, c_diff)`` and
  ``np.dot(B, u)``: gemv; ``np.dot(ps, ps)``: ddot (NumPy's 1-D ``norm`` is
  ``sqrt(x.dot(x))``);
* the rank-mu product ``np.dot(weights * artmp.T, artmp, out=R)``: NumPy makes
  ``weights * artmp.T`` F-contiguous (n, mu), so here it is the transpose view of a C-contiguous
  (mu, n) array, and ``R`` is C-contiguous: the same gemm with the same transposes;
* ``np.dot(arz, BD.T)``: gemm; B and BD are written in place, so they keep the layout NumPy's
  ``B[:, indx]`` gave them (F-contiguous with NumPy 2.x), and the products see NumPy's layouts;
* ``np.linalg.eigh(C)``: LAPACK's ``dsyevd`` (jobz 'V', uplo 'L') on a Fortran copy, as NumPy.

Numba's BLAS and LAPACK are SciPy's OpenBLAS, NumPy's are NumPy's own: that they give the same
bits is what ``tests/test_cma_compiled.py`` checks, for several n and over whole runs.

The decomposition is left to the caller's NumPy code whenever its outcome could differ from
NumPy's: C not finite (NumPy's ``eigh`` then returns NaNs or raises ``LinAlgError``, Numba's
raises at once) or LAPACK failing to converge (``status`` 2: the caller runs ``decompose`` in
NumPy on the same C, so its result and any exception are exactly NumPy's); eigenvalues not
strictly ascending, i.e. tied (``status`` 3: NumPy's default ``argsort``, not stable, may
permute equal values, so the caller orders ``eigh``'s result, left in the buffers w and V,
with NumPy's code). Ties are common in the first generations: C = a I + a low-rank update
keeps n - rank eigenvalues equal.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _lt(a, b):
    """NumPy's sort order for floats: NaN after everything, NaNs equal to each other."""
    return a < b or (np.isnan(b) and not np.isnan(a))


@njit(cache=True)
def stable_order(losses):
    """``np.argsort(losses, kind="stable")``: a stable merge sort of the indices (ties and NaNs
    in the given order, NaNs last); a stable sort's result is unique, so it is NumPy's."""
    m = losses.size
    idx = np.arange(m)
    tmp = np.empty(m, np.int64)
    width = 1
    while width < m:
        lo = 0
        while lo < m:
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _lt(losses[idx[j]], losses[idx[i]]):  # strictly less: the left one first
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
            lo = hi
        idx, tmp = tmp, idx
        width *= 2
    return idx


@njit(cache=True)
def _eigh(C, w, V):
    """``w, V = np.linalg.eigh(C)`` into w (n,) and V (n, n) (C-contiguous, as NumPy's
    result); False when LAPACK failed."""
    try:
        ww, vv = np.linalg.eigh(C)
    except Exception:  # Numba raises ValueError when LAPACK does not converge
        return False
    w[:] = ww
    V[:, :] = vv
    return True


@njit(cache=True)
def tell(
    X,
    losses,
    weights,
    centroid,
    ps,
    pc,
    C,
    R,
    B,
    diagD,
    BD,
    w,
    V,
    one_m_cs,
    a_ps,
    ps_den,
    chiN,
    hsig_max,
    one_m_cc,
    sq_cc,
    sigma,
    sigma2,
    ccov1,
    ccovmu,
    cc,
    due,
):
    """One generation's update of a LazyStrategy, in place: centroid, ps, pc, C (R: an n x n
    work buffer), and when ``due`` B, diagD, BD (w (n,) and V (n, n) C-contiguous: buffers for
    ``eigh``'s result).

    X (lambda, n) the generation's thetas, ``losses`` (lambda,); weights (mu,). Scalars, as
    ``update_sorted`` forms them: one_m_cs = 1 - cs, a_ps = sqrt(cs (2 - cs) mueff) / sigma,
    ps_den = sqrt(1 - (1 - cs) ** (2 (update_count + 1))), hsig_max = 1.4 + 2 / (n + 1),
    one_m_cc = 1 - cc, sq_cc = sqrt(cc (2 - cc) mueff), sigma2 = sigma ** 2.

    Returns (norm_ps, hsig, status, cond, diag_max, arrays_ok): norm_ps = ||ps|| for sigma's
    update; status 0 no decomposition due, 1 decomposed (cond = max/min eigenvalue), 2 due but
    left to NumPy (C not finite or LAPACK failed), 3 ``eigh``'s w and V are in the buffers but
    not strictly ascending (tied eigenvalues): NumPy's ``argsort`` orders them;
    diag_max = np.max(np.diag(C)) (NaN if any is); arrays_ok = centroid finite and diagD
    finite and > 0 (``healthy``'s array part, valid when status is 0 or 1).
    """
    n = X.shape[1]
    mu = weights.size
    order = stable_order(losses)
    best = np.empty((mu, n))
    for k in range(mu):
        best[k, :] = X[order[k], :]

    new_c = np.dot(weights, best)
    c_diff = new_c - centroid

    # ps = (1 - cs) ps + sqrt(cs (2 - cs) mueff) / sigma * B ((1 / diagD) * (B^T c_diff))
    t = np.dot(B.T, c_diff)
    u = (1.0 / diagD) * t
    v = np.dot(B, u)
    for i in range(n):
        ps[i] = one_m_cs * ps[i] + a_ps * v[i]
    norm_ps = math.sqrt(np.dot(ps, ps))
    hsig = 1.0 if norm_ps / ps_den / chiN < hsig_max else 0.0

    a_pc = hsig * sq_cc / sigma
    for i in range(n):
        pc[i] = one_m_cc * pc[i] + a_pc * c_diff[i]

    # C = a C + ccov1 outer(pc, pc) + ccovmu (w * artmp^T) artmp / sigma^2, as LazyStrategy
    # does it in place: C *= a; R = outer; R *= ccov1; C += R; R = gemm; R *= ccovmu;
    # R /= sigma2; C += R
    WA = np.empty((mu, n))  # (weights * artmp.T).T: NumPy's product is F-contiguous
    for k in range(mu):
        for j in range(n):
            WA[k, j] = weights[k] * (best[k, j] - centroid[j])
    artmp = best - centroid
    a = 1.0 - ccov1 - ccovmu + (1.0 - hsig) * ccov1 * cc * (2.0 - cc)
    for i in range(n):
        for j in range(n):
            r = pc[i] * pc[j]
            r *= ccov1
            C[i, j] = C[i, j] * a + r
    np.dot(WA.T, artmp, R)
    for i in range(n):
        for j in range(n):
            r = R[i, j] * ccovmu
            r /= sigma2
            C[i, j] += r
    centroid[:] = new_c

    status = 0
    cond = 0.0
    if due:
        status = 2
        finite = True
        for i in range(n):
            for j in range(n):
                if not np.isfinite(C[i, j]):
                    finite = False
        if finite and _eigh(C, w, V):
            status = 3
            ascending = True
            for i in range(n - 1):
                if not w[i] < w[i + 1]:
                    ascending = False
            if ascending:
                status = 1
                cond = w[n - 1] / w[0]
                for i in range(n):
                    diagD[i] = np.sqrt(w[i])
                for i in range(n):
                    for j in range(n):
                        B[i, j] = V[i, j]
                        BD[i, j] = V[i, j] * diagD[j]

    diag_max = C[0, 0]
    for i in range(1, n):
        d = C[i, i]
        if np.isnan(d) or d > diag_max:
            diag_max = d
        if np.isnan(diag_max):
            break
    arrays_ok = True
    for i in range(n):
        if not (np.isfinite(centroid[i]) and np.isfinite(diagD[i]) and diagD[i] > 0):
            arrays_ok = False
    return norm_ps, hsig, status, cond, diag_max, arrays_ok


@njit(cache=True)
def ask(arz, centroid, sigma, BD):
    """``centroid + sigma * np.dot(arz, BD.T)``, BD in the layout NumPy's code left it."""
    M = np.dot(arz, BD.T)
    lam, n = M.shape
    X = np.empty((lam, n))
    for i in range(lam):
        for j in range(n):
            X[i, j] = centroid[j] + sigma * M[i, j]
    return X


# -- sep-CMA-ES (Ros & Hansen 2008): diagonal C --------------------------------------------------
@njit(cache=True)
def _max_min(a):
    """(np.max(a), np.min(a)): NaN when any element is NaN."""
    hi = lo = a[0]
    for i in range(1, a.size):
        x = a[i]
        if np.isnan(x):
            return x, x
        if x > hi:
            hi = x
        if x < lo:
            lo = x
    return hi, lo


@njit(cache=True)
def sep_tell(
    X,
    losses,
    weights,
    centroid,
    ps,
    pc,
    diagC,
    diagD,
    one_m_cs,
    a_ps,
    ps_den,
    chiN,
    hsig_max,
    one_m_cc,
    sq_cc,
    sigma,
    sigma2,
    ccov1,
    ccovmu,
    cc,
):
    """One generation's update of a SepStrategy, in place: centroid, ps, pc, diagC, diagD
    (sigma's update stays with the caller). The scalars as in :func:`tell`.

    Returns (norm_ps, hsig, cond, max_diagD, arrays_ok): cond = max(diagC) / min(diagC),
    max_diagD = np.max(diagD) (``axis_std_max``; NaN if any is), arrays_ok = centroid finite
    and diagC finite and > 0 (``healthy``'s array part).
    """
    n = X.shape[1]
    mu = weights.size
    order = stable_order(losses)
    best = np.empty((mu, n))
    for k in range(mu):
        best[k, :] = X[order[k], :]
    new_c = np.dot(weights, best)
    c_diff = new_c - centroid
    for i in range(n):
        ps[i] = one_m_cs * ps[i] + a_ps * (c_diff[i] / diagD[i])
    norm_ps = math.sqrt(np.dot(ps, ps))
    hsig = 1.0 if norm_ps / ps_den / chiN < hsig_max else 0.0
    a_pc = hsig * sq_cc / sigma
    for i in range(n):
        pc[i] = one_m_cc * pc[i] + a_pc * c_diff[i]
    A2 = np.empty((mu, n))  # artmp ** 2
    for k in range(mu):
        for j in range(n):
            d = best[k, j] - centroid[j]
            A2[k, j] = d * d
    rank_mu = np.dot(weights, A2)
    # diagC = a * diagC + ccov1 * pc**2 + ccovmu * dot(weights, artmp**2) / sigma**2
    a = 1.0 - ccov1 - ccovmu + (1.0 - hsig) * ccov1 * cc * (2.0 - cc)
    for i in range(n):
        diagC[i] = (a * diagC[i] + ccov1 * (pc[i] * pc[i])) + ccovmu * rank_mu[i] / sigma2
    for i in range(n):
        diagD[i] = np.sqrt(diagC[i])
    centroid[:] = new_c
    hi, lo = _max_min(diagC)
    max_d = _max_min(diagD)[0]
    arrays_ok = True
    for i in range(n):
        if not (np.isfinite(centroid[i]) and np.isfinite(diagC[i]) and diagC[i] > 0):
            arrays_ok = False
    return norm_ps, hsig, hi / lo, max_d, arrays_ok


@njit(cache=True)
def sep_ask(arz, centroid, sigma, diagD):
    """``centroid + sigma * (arz * diagD)``."""
    lam, n = arz.shape
    X = np.empty((lam, n))
    for i in range(lam):
        for j in range(n):
            X[i, j] = centroid[j] + sigma * (arz[i, j] * diagD[j])
    return X
