"""Random weight guessing: the floor every training method must beat.

Paper: Schmidhuber, Hochreiter & Bengio 2001, "Evaluating benchmark problems by random
guessing", in Kolen & Kremer (eds.), A Field Guide to Dynamical Recurrent Networks (also
Hochreiter & Schmidhuber 1997, "Long short-term memory", sec. 5): draw all weights i.i.d. from
U(-r, r) -- the paper used r = 100 -- until the task is solved or the budget is spent. On the
latch and parity problems this beats many published gradient methods.

Draws are made ``batch`` at a time from the run's Generator (the distribution of
``net.init(rng, scale=r)``) and each batch is one ``net.population_loss`` call (the ask/tell
loop of :mod:`toolkit.train.strategy`); ``seed_seq`` is not used (no other stream is needed, and
no global random state is touched).
"""

from __future__ import annotations

import numpy as np

from toolkit.params import Param
from toolkit.train.strategy import Context, Strategy, register_strategy

PARAMS = {
    "r": Param(100.0, "float", lo=0.0, lo_open=True, doc="weights ~ U(-r, r) (the paper: 100)"),
    "batch": Param(64, "int", lo=1, doc="guesses per population_loss call (one generation)"),
}


class RandomGuessing(Strategy):
    """ask: ``batch`` guesses U(-r, r)^n from the run's Generator; tell: nothing to learn."""

    def __init__(self, ctx: Context, r: float, batch: int):
        self.rng, self.r, self.shape = ctx.rng, float(r), (int(batch), ctx.n)

    def ask(self) -> np.ndarray:
        return self.rng.uniform(-self.r, self.r, size=self.shape)

    def tell(self, losses) -> None:
        pass


register_strategy(
    "random",
    RandomGuessing,
    params=PARAMS,
    label="random guessing",
    color="#000000",
    marker="*",
    order=9,
    doc="Random weight guessing, U(-r, r) (Schmidhuber, Hochreiter & Bengio 2001).",
    tags=("baseline",),
)
