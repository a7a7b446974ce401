"""hbm's model core, one module per part:

- :mod:`hbm.model.families`: the likelihood families as data (one registry entry each: link, auxiliary
  parameters and their default priors, the target check at ingest, aggregation, plot scale);
- :mod:`hbm.model.priors`: priors as objects that round-trip to and from the config (``Prior``);
- :mod:`hbm.model.design`: a table to the arrays of the bottom model (no file I/O);
- :mod:`hbm.model.builder`: the PyMC graph of the bottom model from its design.

The per-level models (:mod:`hbm.models`) use the same families and priors.
"""

# How PyTensor compiles the functions that draw from the prior and posterior predictive and compute the
# pointwise log-likelihood: its Python/NumPy linker, not numba (the sampler's logp and gradient still go
# through numba, where the time goes). These functions run a few hundred to a few thousand times per job,
# so compiling them is what costs: measured cold (a fresh clone's first run), numba took 13.1 s for the
# prior predictive of retail_demand's store level against 0.95 s, and 5.7 + 4.3 s against 2.7 + 2.7 s for
# the posterior predictive and log-likelihood of its product level; at 100,000 rows x 1,000 draws 10.2 + 9.9 s
# against 8.7 + 8.6 s. Same distributions, different random streams from numba's (the draws of a seed
# change once, then stay the same run after run).
PREDICTIVE_COMPILE = {"mode": "FAST_COMPILE"}
