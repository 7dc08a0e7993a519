"""Random weight guessing: the floor every training method must beat.

Paper: Schmidhuber, Hochreiter & Bengio 2001, "Evaluating benchmark problems by random
guessing", in Kolen & Kremer (eds.), A Field Guide to Dynamical Recurrent Networks (also
Hochreiter & Schmidhuber 1997, "Long short-term memory", sec. 5): draw all weights i.i.d. from
U(-r, r) -- the paper used r = 100 -- until the task is solved or the budget is spent. On the
latch and parity problems this beats many published gradient methods.

Draws are made ``batch`` at a time from the run's Generator (the distribution of
``net.init(rng, scale=r)``) and each batch is one ``net.population_loss`` call; ``seed_seq``
is not used (no other stream is needed, and no global random state is touched).
"""

from __future__ import annotations

from toolkit.params import Param
from toolkit.train.es_common import Evolution
from toolkit.train.registry import Method, register

PARAMS = {
    "r": Param(100.0, "float", lo=0.0, lo_open=True, doc="weights ~ U(-r, r) (the paper: 100)"),
    "batch": Param(64, "int", lo=1, doc="guesses per population_loss call (one generation)"),
}


def train(net, data, *, rng, seed_seq, budget, target_loss=None, solved=None, trace, r, batch):
    evo = Evolution(net, data, budget=budget, target_loss=target_loss, solved=solved, trace=trace)
    n = int(net.n_params)
    while True:
        X = rng.uniform(-r, r, size=(batch, n))
        if evo.tell(X, evo.evaluate(X)):
            return evo.finish()


register(
    Method(
        name="random",
        family="evolution",
        params=PARAMS,
        label="random guessing",
        color="#000000",
        marker="*",
        order=9,
        train=train,
        doc="Random weight guessing, U(-r, r) (Schmidhuber, Hochreiter & Bengio 2001).",
        tags=("baseline",),
    )
)
