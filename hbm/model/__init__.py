"""hbm's model core, one module per part:

- :mod:`hbm.model.families`: the likelihood families as data (one registry entry each: link, auxiliary
  parameters and their default priors, the target check at ingest, aggregation, plot scale);
- :mod:`hbm.model.priors`: priors as objects that round-trip to and from the config (``Prior``);
- :mod:`hbm.model.design`: a table to the arrays of the bottom model (no file I/O);
- :mod:`hbm.model.builder`: the PyMC graph of the bottom model from its design.

The per-level models (:mod:`hbm.models`) use the same families and priors.
"""
