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

from toolkit.train.es_common import Evolution, as_float, as_int, check_keys
from toolkit.train.registry import Method, register

DEFAULTS = {
    "r": 100.0,  # weights ~ U(-r, r) (Schmidhuber, Hochreiter & Bengio 2001 used 100)
    "batch": 64,  # guesses per population_loss call (one "generation")
}


def validate(hyper: dict) -> dict:
    m = "random"
    h = check_keys(m, DEFAULTS, hyper)
    as_float(m, h, "r", 0.0)
    as_int(m, h, "batch", 1)
    return h


def train(
    net, data, *, rng, seed_seq, budget, target_loss=None, solved=None, trace, r=100.0, batch=64
):
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
        defaults=dict(DEFAULTS),
        label="random guessing",
        color="#000000",
        marker="*",
        order=9,
        validate=validate,
        train=train,
        doc="Random weight guessing, U(-r, r) (Schmidhuber, Hochreiter & Bengio 2001).",
        tags=("baseline",),
    )
)
