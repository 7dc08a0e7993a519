"""CMA-ES on DEAP's ``deap.cma.Strategy``: lazy eigendecomposition, separable variant, IPOP.

Papers:

* Hansen & Ostermeier 2001, "Completely derandomized self-adaptation in evolution strategies",
  Evolutionary Computation 9(2) -- the algorithm ``deap.cma.Strategy`` implements.
* Hansen 2016, "The CMA evolution strategy: a tutorial", arXiv:1604.00772, appendix C
  (``purecmaes.m``): the eigendecomposition C = B D^2 B^T is recomputed only when more than
  ``lambda / (c1 + cmu) / n / 10`` evaluations passed since the last one, i.e. every
  ``0.1 / (n (c1 + cmu))`` generations (about ``0.2 n / lambda``) -- O(n^2) per generation
  instead of O(n^3). Between decompositions sampling and the step-size path use the stale B, D.
* Ros & Hansen 2008, "A simple modification in CMA-ES achieving linear time and space
  complexity", PPSN X -- sep-CMA-ES: diagonal C, learning rates multiplied by (n + 2) / 3.
* Auger & Hansen 2005, "A restart CMA evolution strategy with increasing population size",
  CEC 2005 -- IPOP-CMA-ES: on a termination criterion restart with the population doubled.

The generation loop is DEAP's ``eaGenerateUpdate`` (ask = ``generate``, tell = ``update``), run by
the one ask/tell loop of :mod:`toolkit.train.strategy` (which also restarts), with the whole
population evaluated in one ``net.population_loss`` call. Sampling draws exactly what
``deap.cma.Strategy.generate`` draws, but from the run's private ``numpy.random.RandomState``
(``random_state``) instead of the global ``numpy.random``: no global random state is used.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from deap import cma

from toolkit import kernels
from toolkit.params import Param
from toolkit.train.es_common import individuals
from toolkit.train.strategy import Context, Strategy, init_scale_param, register_strategy


def default_lambda(n: int) -> int:
    """Hansen's default population size 4 + floor(3 ln n) (DEAP's ``int(4 + 3 * log(N))``)."""
    return int(4 + 3 * math.log(n))


def auto_eigen_gap(n: int, ccov1: float, ccovmu: float) -> int:
    """Generations between eigendecompositions, from ``purecmaes.m`` (Hansen 2016, app. C):
    decompose when more than lambda/(c1+cmu)/n/10 evaluations passed, i.e. every
    max(1, floor(0.1 / (n (c1 + cmu)))) generations."""
    return max(1, int(math.floor(0.1 / (n * (ccov1 + ccovmu)))))


def _standard_normal(strategy, shape) -> np.ndarray:
    """``strategy.random_state.standard_normal(shape)``: the draws ``deap.cma.Strategy.generate``
    makes from the global ``numpy.random``, from the strategy's own stream instead."""
    rs = strategy.random_state
    if not isinstance(rs, np.random.RandomState):
        raise TypeError(
            f"{type(strategy).__name__}.random_state: expected numpy.random.RandomState "
            f"(the run's stream; global numpy.random is never used), got {rs!r}"
        )
    return rs.standard_normal(shape)


class _ArrayAskTell:
    """ask/tell on arrays, without DEAP individuals (the loop's fast path, same numbers)."""

    sampler = "legacy"

    def sample(self, shape) -> np.ndarray:
        """z ~ N(0, I): from ``random_state`` as DEAP draws (``sampler = "legacy"``), or from
        the Generator ``random_state`` (``"generator"``: about 4x faster, other numbers)."""
        if self.sampler == "generator":
            return self.random_state.standard_normal(shape)
        return _standard_normal(self, shape)

    def _tell_scalars(self) -> tuple:
        """The scalars the compiled tells take that the NumPy update forms from attributes
        alone, formed here by the same Python expressions (so they round as there): 1 - cs,
        ps's factor, hsig's denominator, chiN, hsig's threshold, 1 - cc, pc's factor, sigma,
        sigma ** 2, ccov1, ccovmu, cc."""
        cs, cc = self.cs, self.cc
        return (
            1 - cs,
            math.sqrt(cs * (2 - cs) * self.mueff) / self.sigma,
            math.sqrt(1.0 - (1.0 - cs) ** (2.0 * (self.update_count + 1.0))),
            self.chiN,
            1.4 + 2.0 / (self.dim + 1.0),
            1 - cc,
            math.sqrt(cc * (2 - cc) * self.mueff),
            self.sigma,
            self.sigma**2,
            self.ccov1,
            self.ccovmu,
            cc,
        )

    def tell_array(self, X, losses) -> None:
        """DEAP's ``update`` given the thetas X (lambda, n) and their losses: sorting by loss,
        ties in ask order (as DEAP's stable sort of the fitnesses), then ``update_sorted``."""
        order = np.argsort(losses, kind="stable")[: self.mu]
        self.update_sorted(X[order])


class LazyStrategy(_ArrayAskTell, cma.Strategy):
    """``deap.cma.Strategy`` with the lazy eigendecomposition of the reference CMA-ES.

    ``update`` performs exactly DEAP's arithmetic for the mean, the evolution paths, C and sigma
    (same expressions, written in place, so the results are bit-identical), but recomputes
    ``B``, ``diagD`` and ``BD`` only every ``eigen_gap`` generations; in between, sampling
    (``generate``) and the step-size path ``ps`` use the stale B and D, as in Hansen's
    reference code. ``eigen_gap=1`` reproduces ``deap.cma.Strategy`` exactly;
    ``eigen_gap="auto"`` uses :func:`auto_eigen_gap`.

    ``random_state`` (``numpy.random.RandomState``) is the stream ``ask`` samples from in place
    of DEAP's global ``numpy.random`` (required before the first ``ask``).

    Attributes added to DEAP's: ``eigen_gap`` (int), ``eigen_count`` (``update_count`` at the
    last decomposition), ``n_eigen`` (decompositions done by ``update``), ``random_state``.

    ``compiled`` (class attribute, default True): ``ask_array`` and ``tell_array`` run as one
    compiled call each (:mod:`toolkit.kernels.cma`: the sort, ``update_sorted`` and the due
    ``decompose``), with exactly the NumPy code's floating-point results
    (tests/test_cma_compiled.py); False runs the NumPy code below, which DEAP's individuals API
    (``generate``/``update``) always uses.
    """

    compiled = True

    def __init__(self, centroid, sigma, eigen_gap=1, random_state=None, **params):
        super().__init__(centroid, sigma, **params)
        self.random_state = random_state
        self.centroid = np.asarray(self.centroid, dtype=np.float64)
        self.C = np.array(self.C, dtype=np.float64)  # ours, written in place
        if eigen_gap == "auto":
            eigen_gap = auto_eigen_gap(self.dim, self.ccov1, self.ccovmu)
        if isinstance(eigen_gap, bool) or int(eigen_gap) != eigen_gap or eigen_gap < 1:
            raise ValueError(f"eigen_gap must be an integer >= 1 or 'auto', got {eigen_gap!r}")
        self.eigen_gap = int(eigen_gap)
        self.eigen_count = 0
        self.n_eigen = 0
        self._buf = None
        self._health = None  # (arrays ok, max diag(C)) from the last compiled tell
        self._layout_ok = None  # _contiguous(), until the NumPy code replaces an array

    # -- ask ------------------------------------------------------------------------------------
    def ask(self) -> tuple[np.ndarray, list]:
        """Sample lambda thetas: X (lambda, n) = centroid + sigma * z BD^T, z ~ N(0, I) drawn
        from ``random_state`` exactly as ``deap.cma.Strategy.generate`` draws from the global
        ``numpy.random``; plus the rows of X as Individuals (views, no copy)."""
        X = self.ask_array()
        return X, individuals(X)

    def ask_array(self) -> np.ndarray:
        arz = self.sample((self.lambda_, self.dim))
        if self.compiled and self._layout():
            return kernels.cma_ask(arz, self.centroid, self.sigma, self.BD)
        return self.centroid + self.sigma * np.dot(arz, self.BD.T)

    def generate(self, ind_init):
        """DEAP's ask: a list of ``ind_init(row)`` (same draws and values as DEAP's)."""
        X, _ = self.ask()
        return [ind_init(a) for a in X]

    def _layout(self) -> bool:
        """``_contiguous()``, checked again only after the NumPy code replaced arrays (a caller
        that replaces one itself sets ``_layout_ok = None``)."""
        if self._layout_ok is None:
            self._layout_ok = self._contiguous()
        return self._layout_ok

    def _contiguous(self) -> bool:
        """Whether the arrays the kernels write or multiply are contiguous, writable float64:
        C-contiguous, except B and BD, which keep the layout NumPy's ``B[:, indx]`` gave them
        (F-contiguous with NumPy 2.x) since the BLAS calls' rounding depends on it. They are
        unless a caller replaced one; then the NumPy code runs."""
        for a in (self.centroid, self.ps, self.pc, self.C, self.diagD, self.B, self.BD):
            if not (
                isinstance(a, np.ndarray)
                and a.dtype == np.float64
                and a.flags.writeable
                and (a.flags.c_contiguous or (a.ndim == 2 and a.flags.f_contiguous))
            ):
                return False
        return (
            self.C.flags.c_contiguous
            and self.weights.dtype == np.float64
            and self.centroid.shape == (self.dim,)
        )

    # -- tell -----------------------------------------------------------------------------------
    def tell_array(self, X, losses) -> None:
        """DEAP's ``update`` given the thetas X (lambda, n) and their losses: sorting by loss,
        ties in ask order, then ``update_sorted``; with ``compiled``, all of it (and the due
        ``decompose``) in one call of ``kernels.cma_tell``. Python keeps what must round as
        NumPy's code does: the scalars formed from attributes (``math.sqrt``, ``**``) and
        sigma's ``np.exp``. When the decomposition is due but was not done (C not finite,
        LAPACK failing), ``decompose`` runs here in NumPy on the same C, with NumPy's result or
        exception; with tied eigenvalues NumPy's ``argsort`` orders the kernel's ``eigh``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        losses = np.ascontiguousarray(losses, dtype=np.float64)
        if not (
            self.compiled
            and self._layout()
            and losses.ndim == 1
            and X.shape == (losses.size, self.dim)
            and self.mu <= losses.size
        ):  # the NumPy code (which also says what is wrong with X or losses)
            self._health = None
            super().tell_array(X, losses)
            return
        if self._buf is None:
            self._buf = np.empty_like(self.C)
            self._w = np.empty(self.dim)
            self._V = np.empty_like(self.C)
        norm_ps, hsig, status, cond, diag_max, arrays_ok = kernels.cma_tell(
            X,
            losses,
            self.weights,
            self.centroid,
            self.ps,
            self.pc,
            self.C,
            self._buf,
            self.B,
            self.diagD,
            self.BD,
            self._w,
            self._V,
            *self._tell_scalars(),
            self.update_count + 1 - self.eigen_count >= self.eigen_gap,
        )
        self.update_count += 1
        self.sigma *= np.exp((np.float64(norm_ps) / self.chiN - 1.0) * self.cs / self.damps)
        self._health = (arrays_ok, diag_max)
        if status == 1:
            self.cond = np.float64(cond)
            self.eigen_count = self.update_count
            self.n_eigen += 1
        elif status == 2:
            self._health = None
            self.decompose()
        elif status == 3:
            self._health = None
            self._set_eigen(self._w, self._V)  # (replaced by new arrays there)

    def update(self, population):
        """DEAP's ``Strategy.update`` with the eigendecomposition done every ``eigen_gap``."""
        population.sort(key=lambda ind: ind.fitness, reverse=True)
        self.update_sorted(np.array(population[0 : self.mu], dtype=np.float64))

    def update_sorted(self, best):
        """The update from the ``mu`` best thetas (mu, n), best first: what ``update`` does
        after DEAP's sort (``tell_array`` gets them without DEAP individuals)."""
        self._health = self._layout_ok = None
        population = best
        old_centroid = self.centroid
        self.centroid = np.dot(self.weights, population[0 : self.mu])
        c_diff = self.centroid - old_centroid

        # Cumulation: evolution paths (ps uses C^-1/2 = B D^-1 B^T, possibly stale)
        self.ps = (1 - self.cs) * self.ps + math.sqrt(
            self.cs * (2 - self.cs) * self.mueff
        ) / self.sigma * np.dot(self.B, (1.0 / self.diagD) * np.dot(self.B.T, c_diff))

        hsig = float(
            np.linalg.norm(self.ps)
            / math.sqrt(1.0 - (1.0 - self.cs) ** (2.0 * (self.update_count + 1.0)))
            / self.chiN
            < (1.4 + 2.0 / (self.dim + 1.0))
        )
        self.update_count += 1

        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(
            self.cc * (2 - self.cc) * self.mueff
        ) / self.sigma * c_diff

        # Covariance matrix: DEAP computes a*C + c1*outer(pc,pc) + cmu*(w*Y^T)Y/sigma^2 left to
        # right; the in-place sequence below performs the same float operations in the same
        # order (bit-identical) in one reused n x n buffer instead of five fresh temporaries.
        artmp = population[0 : self.mu] - old_centroid
        C = self.C
        if self._buf is None:
            self._buf = np.empty_like(C)
        R = self._buf  # one reused n x n buffer: no page faults of fresh 10 MB arrays
        C *= 1 - self.ccov1 - self.ccovmu + (1 - hsig) * self.ccov1 * self.cc * (2 - self.cc)
        np.outer(self.pc, self.pc, out=R)
        R *= self.ccov1
        C += R
        np.dot((self.weights * artmp.T), artmp, out=R)
        R *= self.ccovmu
        R /= self.sigma**2
        C += R

        self.sigma *= np.exp((np.linalg.norm(self.ps) / self.chiN - 1.0) * self.cs / self.damps)

        if self.update_count - self.eigen_count >= self.eigen_gap:
            self.decompose()

    def decompose(self) -> None:
        """B, D from C exactly as ``deap.cma.Strategy.update`` does (eigh, ascending order)."""
        self._set_eigen(*np.linalg.eigh(self.C))

    def _set_eigen(self, w, V) -> None:
        """The rest of ``decompose`` from ``eigh``'s result (w, V)."""
        self._layout_ok = None
        self.diagD, self.B = w, V
        indx = np.argsort(self.diagD)
        self.cond = self.diagD[indx[-1]] / self.diagD[indx[0]]
        self.diagD = self.diagD[indx] ** 0.5
        self.B = self.B[:, indx]  # F-contiguous (NumPy 2.x), as DEAP's: same BLAS rounding
        self.BD = self.B * self.diagD
        self.eigen_count = self.update_count
        self.n_eigen += 1

    # -- health and termination (for restarts) ---------------------------------------------------
    def healthy(self) -> bool:
        if self._health is not None:  # the arrays' part, from the last compiled tell
            return bool(math.isfinite(self.sigma) and self.sigma > 0 and self._health[0])
        return bool(
            math.isfinite(self.sigma)
            and self.sigma > 0
            and np.isfinite(self.centroid).all()
            and np.isfinite(self.diagD).all()
            and (self.diagD > 0).all()
        )

    def axis_std_max(self) -> float:
        """max_i sigma * sqrt(C_ii), for the TolX criterion."""
        if self._health is not None:  # max diag(C), from the last compiled tell
            return float(self.sigma * math.sqrt(max(float(self._health[1]), 0.0)))
        return float(self.sigma * math.sqrt(max(float(np.max(np.diag(self.C))), 0.0)))


class SepStrategy(_ArrayAskTell, cma.Strategy):
    """sep-CMA-ES (Ros & Hansen 2008) on DEAP's Strategy: C is diagonal, O(n) per sample.

    Same parameters as ``deap.cma.Strategy`` (``computeParams``), except that ``ccov1`` and
    ``ccovmu`` are multiplied by (n + 2) / 3 (``sep_rates=False`` keeps DEAP's rates; explicit
    ``ccov1``/``ccovmu`` params are used as given). ``diagC`` (n,) holds the variances; ``C`` is
    not stored. ``diagD = sqrt(diagC)`` and ``cond = max(diagC) / min(diagC)``. ``ask`` samples
    from ``random_state`` (``numpy.random.RandomState``), as :class:`LazyStrategy` does.
    ``compiled`` as :class:`LazyStrategy`'s (``kernels.cma_sep_ask`` and ``cma_sep_tell``).
    """

    compiled = True

    def __init__(self, centroid, sigma, sep_rates=True, random_state=None, **params):
        # no n x n allocation
        self.random_state = random_state
        self.params = params
        self.centroid = np.array(centroid, dtype=np.float64)
        self.dim = len(self.centroid)
        self.sigma = sigma
        self.pc = np.zeros(self.dim)
        self.ps = np.zeros(self.dim)
        self.chiN = math.sqrt(self.dim) * (1 - 1.0 / (4.0 * self.dim) + 1.0 / (21.0 * self.dim**2))
        self.diagC = np.ones(self.dim)
        self.diagD = np.ones(self.dim)
        self.cond = 1.0
        self.lambda_ = params.get("lambda_", default_lambda(self.dim))
        self.update_count = 0
        self._health = None  # (arrays ok, max diagD) from the last compiled tell
        self.computeParams(params)
        if sep_rates:
            f = (self.dim + 2.0) / 3.0
            if "ccov1" not in params:
                self.ccov1 = min(1.0, self.ccov1 * f)
            if "ccovmu" not in params:
                self.ccovmu = min(1.0 - self.ccov1, self.ccovmu * f)

    def ask(self) -> tuple[np.ndarray, list]:
        X = self.ask_array()
        return X, individuals(X)

    def ask_array(self) -> np.ndarray:
        arz = self.sample((self.lambda_, self.dim))
        if self.compiled and self._contiguous():
            return kernels.cma_sep_ask(arz, self.centroid, self.sigma, self.diagD)
        return self.centroid + self.sigma * (arz * self.diagD)

    def _contiguous(self) -> bool:
        """Whether the arrays the kernels write are C-contiguous, writable float64 (n,)."""
        for a in (self.centroid, self.ps, self.pc, self.diagC, self.diagD):
            if not (
                isinstance(a, np.ndarray)
                and a.dtype == np.float64
                and a.shape == (self.dim,)
                and a.flags.c_contiguous
                and a.flags.writeable
            ):
                return False
        return self.weights.dtype == np.float64

    def tell_array(self, X, losses) -> None:
        """As :meth:`LazyStrategy.tell_array`: with ``compiled``, the sort and ``update_sorted``
        in one call of ``kernels.cma_sep_tell``, the NumPy code's bits."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        losses = np.ascontiguousarray(losses, dtype=np.float64)
        if not (
            self.compiled
            and losses.ndim == 1
            and X.shape == (losses.size, self.dim)
            and self.mu <= losses.size
            and self._contiguous()
        ):
            self._health = None
            super().tell_array(X, losses)
            return
        norm_ps, hsig, cond, max_d, arrays_ok = kernels.cma_sep_tell(
            X,
            losses,
            self.weights,
            self.centroid,
            self.ps,
            self.pc,
            self.diagC,
            self.diagD,
            *self._tell_scalars(),
        )
        self.update_count += 1
        self.sigma *= np.exp((np.float64(norm_ps) / self.chiN - 1.0) * self.cs / self.damps)
        self.cond = float(cond)
        self._health = (arrays_ok, max_d)

    def generate(self, ind_init):
        X, _ = self.ask()
        return [ind_init(a) for a in X]

    def update(self, population):
        """DEAP's update restricted to diag(C) (Ros & Hansen 2008, eqs. 1-5)."""
        population.sort(key=lambda ind: ind.fitness, reverse=True)
        self.update_sorted(np.array(population[0 : self.mu], dtype=np.float64))

    def update_sorted(self, best):
        """The update from the ``mu`` best thetas (mu, n), best first."""
        self._health = None
        population = best
        old_centroid = self.centroid
        self.centroid = np.dot(self.weights, population[0 : self.mu])
        c_diff = self.centroid - old_centroid
        self.ps = (1 - self.cs) * self.ps + math.sqrt(
            self.cs * (2 - self.cs) * self.mueff
        ) / self.sigma * (c_diff / self.diagD)
        hsig = float(
            np.linalg.norm(self.ps)
            / math.sqrt(1.0 - (1.0 - self.cs) ** (2.0 * (self.update_count + 1.0)))
            / self.chiN
            < (1.4 + 2.0 / (self.dim + 1.0))
        )
        self.update_count += 1
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(
            self.cc * (2 - self.cc) * self.mueff
        ) / self.sigma * c_diff
        artmp = population[0 : self.mu] - old_centroid
        self.diagC = (
            (1 - self.ccov1 - self.ccovmu + (1 - hsig) * self.ccov1 * self.cc * (2 - self.cc))
            * self.diagC
            + self.ccov1 * self.pc**2
            + self.ccovmu * np.dot(self.weights, artmp**2) / self.sigma**2
        )
        self.sigma *= np.exp((np.linalg.norm(self.ps) / self.chiN - 1.0) * self.cs / self.damps)
        self.diagD = np.sqrt(self.diagC)
        self.cond = float(np.max(self.diagC) / np.min(self.diagC))

    def healthy(self) -> bool:
        if self._health is not None:  # the arrays' part, from the last compiled tell
            return bool(math.isfinite(self.sigma) and self.sigma > 0 and self._health[0])
        return bool(
            math.isfinite(self.sigma)
            and self.sigma > 0
            and np.isfinite(self.centroid).all()
            and np.isfinite(self.diagC).all()
            and (self.diagC > 0).all()
        )

    def axis_std_max(self) -> float:
        if self._health is not None:  # max diagD, from the last compiled tell
            return float(self.sigma * np.float64(self._health[1]))
        return float(self.sigma * np.max(self.diagD))


# -- the method ---------------------------------------------------------------------------------
def _nonneg(default, doc):
    return Param(default, "float", lo=0.0, doc=doc)


PARAMS = {
    "sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="initial step size"),
    "lambda_": Param(None, "int", lo=2, allow_none=True, doc="population; None: 4 + floor(3 ln n)"),
    "mu": Param(None, "int", lo=1, allow_none=True, doc="parents; None: lambda_ // 2"),
    "weights": Param(
        "superlinear",
        "choice",
        choices=("superlinear", "linear", "equal"),
        doc="recombination weights (DEAP)",
    ),
    "eigen_gap": Param(
        "auto",
        "int",
        lo=1,
        choices=("auto",),
        doc="generations between eigendecompositions; 1 = deap.cma.Strategy",
    ),
    "diagonal": Param(False, "bool", doc="sep-CMA-ES (Ros & Hansen 2008), O(n) per sample"),
    "restarts": Param(0, "int", lo=0, doc="IPOP population doublings on stagnation"),
    "incpopsize": Param(2.0, "float", lo=1.0, doc="IPOP factor"),
    "init_scale": init_scale_param("first mean"),
    "tolfun": _nonneg(1e-12, "restart when generation-best losses vary less than this ..."),
    "tolx": _nonneg(1e-12, "... or sigma * max sqrt(C_ii) < tolx * sigma"),
}


def check(h: dict) -> list[tuple[str, str]]:
    """mu <= lambda_ when both are given."""
    lam, mu = h["lambda_"], h["mu"]
    if lam is not None and mu is not None and mu > lam:
        return [("mu", f"mu must be <= lambda_ ({lam}), got {mu}")]
    return []


def _termination(strategy, hist: deque, hist_len: int, losses, sigma0, tolfun, tolx):
    """Restart criteria of Hansen's CMA-ES (tutorial app. B.3, subset): TolHistFun (+ TolFun on
    the current population), TolX, ConditionCov; a name or None."""
    if len(hist) >= hist_len and max(hist) - min(hist) < tolfun:
        finite = losses[np.isfinite(losses)]
        if finite.size and float(finite.max() - finite.min()) < tolfun:
            return "tolfun"
    if strategy.axis_std_max() < tolx * sigma0:
        return "tolx"
    if strategy.cond > 1e14:
        return "conditioncov"
    return None


class CMAES(Strategy):
    """CMA-ES as ask/tell on a :class:`LazyStrategy` or :class:`SepStrategy` (DEAP's
    ``eaGenerateUpdate``: ask = ``generate``, tell = ``update``), with the restart criteria.

    Each (re)start draws its mean from ``net.init(rng, scale=init_scale)`` and starts with step
    size ``sigma``. ``stop()`` names a termination criterion (TolHistFun, TolX, ConditionCov, or
    the strategy's own numerics breaking down); the loop then restarts with the population
    multiplied by ``incpopsize`` (IPOP) while fewer than ``restarts`` doublings were done, then
    with the last population size -- so the whole budget is used.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        sigma,
        lambda_,
        mu,
        weights,
        eigen_gap,
        diagonal,
        restarts,
        incpopsize,
        init_scale,
        tolfun,
        tolx,
    ):
        n = ctx.n
        rs = ctx.random_state  # private RandomState: sampling draws from it
        lam0 = default_lambda(n) if lambda_ is None else int(lambda_)
        k = min(ctx.restart, restarts)
        lam = self.lam = max(2, int(round(lam0 * incpopsize**k)))
        params = {"lambda_": lam, "weights": weights}
        if mu is not None:
            params["mu"] = max(1, min(lam, int(round(mu * lam / lam0))))
        centroid = ctx.init(init_scale)
        if diagonal:
            self.s = SepStrategy(centroid, sigma, random_state=rs, **params)
        else:
            self.s = LazyStrategy(centroid, sigma, eigen_gap=eigen_gap, random_state=rs, **params)
        self.sigma0, self.tolfun, self.tolx = sigma, tolfun, tolx
        self.hist_len = 10 + math.ceil(30 * n / lam)
        self.hist: deque = deque(maxlen=self.hist_len)
        self.reason = None

    def ask(self) -> np.ndarray:
        self.X = self.s.ask_array()  # toolbox.generate, without DEAP individuals
        return self.X

    def stats(self) -> dict:
        return {"sigma": float(self.s.sigma), "lambda_": self.lam}

    def tell(self, losses) -> None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                self.s.tell_array(self.X, losses)  # toolbox.update
                ok = self.s.healthy()
            except np.linalg.LinAlgError:
                ok = False
        self.hist.append(float(losses.min()))
        if not ok:  # the strategy's numerics broke down (not the network): restart
            self.reason = "numerics"
        else:
            self.reason = _termination(
                self.s, self.hist, self.hist_len, losses, self.sigma0, self.tolfun, self.tolx
            )

    def stop(self) -> str | None:
        return self.reason

    def counters(self) -> dict:
        if isinstance(self.s, SepStrategy):
            return {}
        return {"eigendecompositions": self.s.n_eigen}


register_strategy(
    "cmaes",
    CMAES,
    params=PARAMS,
    check=check,
    label="CMA-ES",
    color="#D55E00",  # vermillion
    marker="s",
    order=5,
    doc="CMA-ES (Hansen & Ostermeier 2001) on deap.cma.Strategy, lazy eigendecomposition "
    "(Hansen 2016), optional sep-CMA-ES (Ros & Hansen 2008) and IPOP restarts "
    "(Auger & Hansen 2005).",
    tags=("deap", "cma"),
    restarts=True,
)
