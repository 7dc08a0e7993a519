"""Population methods, one small module per algorithm: DEAP's classics and today's ES.

Importing this module registers, in :data:`toolkit.train.METHODS`:

* ``cmaes`` (:mod:`~toolkit.train.es_cmaes`) -- CMA-ES on ``deap.cma.Strategy`` (Hansen &
  Ostermeier 2001) with the lazy eigendecomposition of the reference code (Hansen 2016), a
  separable variant for very large n (Ros & Hansen 2008) and IPOP restarts (Auger & Hansen 2005);
* ``es_comma``, ``es_plus`` (:mod:`~toolkit.train.es_mulambda`) -- (mu, lambda)- and
  (mu + lambda)-ES with self-adaptive per-gene step sizes (Beyer & Schwefel 2002);
* ``ga`` (:mod:`~toolkit.train.es_ga`) -- real-coded GA, DEAP's ``eaSimple`` with hall-of-fame
  elitism (Bäck, Fogel & Michalewicz 2000; Eshelman & Schaffer 1993);
* ``random`` (:mod:`~toolkit.train.es_random`) -- random weight guessing (Schmidhuber,
  Hochreiter & Bengio 2001);
* ``cmaes_pycma`` (:mod:`~toolkit.train.es_pycma`) -- the reference CMA-ES, pycma, with IPOP and
  BIPOP restarts (Hansen 2016; Auger & Hansen 2005; Hansen 2009);
* ``openai_es`` (:mod:`~toolkit.train.es_openai`) -- OpenAI-ES (Salimans et al. 2017);
* ``snes``, ``xnes`` (:mod:`~toolkit.train.es_nes`) -- natural evolution strategies (Wierstra
  et al. 2014);
* ``pgpe`` (:mod:`~toolkit.train.es_pgpe`) -- PGPE with symmetric sampling (Sehnke et al. 2010).

Every one is a :class:`~toolkit.train.strategy.Strategy` (ask/tell) run by the one generation
loop of :mod:`toolkit.train.strategy` (batched fitness, cost, trace, stopping, restarts); the
DEAP pieces they share (classes, private streams, copy-safe operators) are in
:mod:`toolkit.train.es_common`. Every method evaluates a generation in ONE
``net.population_loss`` call (non-finite losses count as +inf), charges ``evals += P`` and
``fwd_steps += P * B * T``, and records the best loss and theta seen so far. No run touches
global random state: each draws only from its own streams, derived from its ``SeedSequence``
(the ``numpy.random.Generator`` ``rng``, and :func:`~toolkit.train.es_common.run_streams`'
``random.Random`` and ``numpy.random.RandomState`` for DEAP's randomised selection, variation
and CMA sampling), so runs may share a process and run in its threads (dask workers).
"""

from toolkit.train import (  # noqa: F401  (register)
    es_cmaes,
    es_ga,
    es_mulambda,
    es_nes,
    es_openai,
    es_pgpe,
    es_pycma,
    es_random,
)
from toolkit.train.es_cmaes import LazyStrategy, SepStrategy  # noqa: F401
