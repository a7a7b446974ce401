"""A fit's pointwise log-likelihood (ArviZ's ``log_likelihood`` group), a block of draws at a time.

``pm.compute_log_likelihood`` keeps every draw's values in a list and then stacks them: two arrays of draws x
rows at once (M5's product level, 2 chains x 2,000 draws x 85,372 rows: 2.7 GB each, and the fit job's peak
was 7.6 GB with the in-memory NetCDF file). :func:`pointwise` computes the same numbers with the same
PyTensor graph (the model's ``logp`` of each observed variable, transforms removed, as PyMC does) and
hands them out in blocks of draws; :func:`hbm.io.write_netcdf` writes each block into posterior.nc as it
comes (:class:`hbm.io.Streamed`), so the job holds one block (:data:`BLOCK_BYTES`), and
:func:`materialize` builds the whole group in memory where that is wanted (a small model, a test).

The layout on disk follows its reader, the posterior check, which takes the log-likelihood a block of
observations at a time across every draw (:func:`hbm.posterior_check.obs_block`): HDF5 chunks of one chain,
a block of draws and that many observations (about :data:`CHUNK_BYTES` each).
"""

from __future__ import annotations

import numpy as np

from hbm.io import Streamed

BLOCK_BYTES = 64 * 2 ** 20   # the draws computed and written at once: about this many bytes of float64
CHUNK_BYTES = 2 ** 20        # an HDF5 chunk of the log-likelihood on disk


def chunk_shape(chains: int, draws: int, rows: int, per: int) -> tuple[int, int, int]:
    """The HDF5 chunk shape ``(1, draws, observations)`` of an array of draws x rows written ``per`` draws
    at a time: as many observations as the posterior check's blocks (:func:`hbm.posterior_check.obs_block`),
    about :data:`CHUNK_BYTES`, and no more draws than a write holds."""
    from hbm.posterior_check import obs_block

    obs = max(1, min(rows, obs_block(chains * draws)))
    return 1, max(1, min(per, draws, CHUNK_BYTES // 8 // obs)), obs


def draws_per_block(chains: int, draws: int, rows: int) -> tuple[int, tuple[int, int, int]]:
    """Draws per chain computed and written at once (about :data:`BLOCK_BYTES` of float64; every draw when
    they fit) and the HDF5 chunk shape (:func:`chunk_shape`), which a block of draws never splits."""
    block = max(1, min(draws, BLOCK_BYTES // 8 // max(1, rows)))
    chunks = chunk_shape(chains, draws, rows, block)
    return (block if block == draws else block // chunks[1] * chunks[1]), chunks


def pointwise(model, idata, compile_kwargs: dict | None = None) -> list[Streamed]:
    """The pointwise log-likelihood of ``idata``'s posterior under ``model`` (the model that drew it), one
    :class:`Streamed` per observed variable, in group ``log_likelihood``: dims ``(chain, draw)`` and the
    observed variable's dims, coordinates from ``idata``'s posterior and observed_data, attributes those of
    its observed_data (PyMC's, and hbm's provenance stamp once :func:`hbm.fit.stamp` has run) with
    ``sample_dims`` chain and draw, as PyMC's ``log_likelihood`` group has them."""
    from pymc.model.transform.conditioning import remove_value_transforms

    from hbm.model import PREDICTIVE_COMPILE

    umodel = remove_value_transforms(model)  # the posterior holds the values, not their transforms
    observed = list(umodel.observed_RVs)
    fn = umodel.compile_fn(inputs=umodel.value_vars, outs=umodel.logp(vars=observed, sum=False),
                           on_unused_input="ignore", **(compile_kwargs or PREDICTIVE_COMPILE))
    posterior = idata["posterior"]
    values = {v.name: np.asarray(posterior[v.name].values, dtype=v.type.dtype) for v in umodel.value_vars}
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    out = []
    for i, rv in enumerate(observed):
        obs = idata["observed_data"][rv.name]
        rows = int(np.prod(obs.shape))
        block, chunks = draws_per_block(chains, draws, rows)

        def blocks(i=i, block=block, obs=obs):
            for c in range(chains):
                for start in range(0, draws, block):
                    stop = min(start + block, draws)
                    values_block = np.empty((stop - start, *obs.shape))
                    for d in range(start, stop):
                        values_block[d - start] = fn({k: v[c, d] for k, v in values.items()})[i]
                    yield c, slice(start, stop), values_block

        out.append(Streamed.per_draw("log_likelihood", obs, posterior, dict(idata["observed_data"].attrs),
                                     blocks, chunks))
    return out


def materialize(streamed: list[Streamed]):
    """The group(s) of ``streamed`` whole, in memory (an ``xarray.Dataset`` per group name)."""
    import xarray as xr

    groups: dict[str, xr.Dataset] = {}
    for s in streamed:
        values = np.empty(s.shape, dtype=s.dtype)
        for c, draws, block in s.blocks():
            values[c, draws] = block
        ds = groups.setdefault(s.group, s.coords_dataset())
        groups[s.group] = ds.assign({s.name: (s.dims, values)})
    return groups
