"""hbm: reproducible hierarchical Bayesian analyses.

One module per stage of the workflow:

- :mod:`hbm.config`          load and validate an analysis config (Snakemake's ``validate``)
- :mod:`hbm.ingest`          raw CSV/Parquet -> validated Parquet + summary
- :mod:`hbm.models`          the one place where PyMC graphs are built
- :mod:`hbm.prior_check`     prior predictive checks
- :mod:`hbm.fit`             MCMC per hierarchy level
- :mod:`hbm.diagnostics`     convergence diagnostics from InferenceData (ArviZ)
- :mod:`hbm.posterior_check` posterior predictive checks, PSIS-LOO, LOO-PIT
- :mod:`hbm.report`          the self-contained HTML report
- :mod:`hbm.provenance`      hashes, versions, git state
- :mod:`hbm.simulate`        simulators that made the bundled example data
"""

__version__ = "0.1.0"
