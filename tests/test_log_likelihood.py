"""The pointwise log-likelihood a block of draws at a time: PyMC's numbers, written into posterior.nc as
they come, the same file whichever way it is written."""

from collections import namedtuple

import numpy as np
import pytest

from hbm import io as hbm_io
from hbm import log_likelihood
from hbm.config import level_spec, load_analysis
from hbm.errors import DiskFullError
from hbm.ingest import read_raw, validate_table
from hbm.io import read_netcdf, write_netcdf
from hbm.models import build_model, level_data

from conftest import ROOT


def bundled_model(name, level, **build):
    cfg = load_analysis(ROOT / "config" / "analyses" / f"{name}.yaml")
    spec = level_spec(cfg, level)
    data = level_data(validate_table(read_raw(ROOT / cfg["data"]["path"]), cfg["data"]["path"], cfg["columns"],
                                     cfg["levels"]), spec)
    return build_model(data, spec, **build)


def fake_fit(model, chains=2, draws=30, seed=0):
    """A 'posterior' of prior draws (every free variable, on its own scale) and the model's observed and
    constant data, shaped as a fit's InferenceData."""
    import pymc as pm
    import xarray as xr

    drawn = pm.sample_prior_predictive(draws=chains * draws, model=model, random_seed=seed)
    prior = drawn.prior.to_dataset()[[rv.name for rv in model.free_RVs]]
    posterior = xr.Dataset({name: (("chain", "draw", *var.dims[2:]),
                                   var.values.reshape(chains, draws, *var.shape[2:])) for name, var in prior.items()},
                           coords={"chain": np.arange(chains), "draw": np.arange(draws),
                                   **{d: prior[d].values for d in prior.dims if d not in ("chain", "draw")}})
    return xr.DataTree.from_dict({"posterior": posterior, "observed_data": drawn.observed_data.to_dataset(),
                                  "constant_data": drawn.constant_data.to_dataset()})


@pytest.fixture(scope="module")
def radon():
    """radon's county level (919 houses, 85 counties, centred and non-centred counties mixed)."""
    model = bundled_model("radon", "county")
    return model, fake_fit(model)


def pymc_log_likelihood(model, idata):
    import pymc as pm

    return pm.compute_log_likelihood(idata.copy(), model=model, progressbar=False,
                                     extend_inferencedata=False)


@pytest.mark.parametrize("block_bytes", [log_likelihood.BLOCK_BYTES, 7 * 919 * 8])
def test_the_blocks_are_pymcs_pointwise_log_likelihood(radon, monkeypatch, block_bytes):
    """Equal to pm.compute_log_likelihood's values, in one block per chain or in blocks of 7 draws (the last
    one short); the blocks cover every draw once."""
    model, idata = radon
    monkeypatch.setattr(log_likelihood, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(log_likelihood, "CHUNK_BYTES", 1)  # chunks of one draw: blocks may be any multiple
    [s] = log_likelihood.pointwise(model, idata)
    assert (s.group, s.name, s.dims, s.shape) == ("log_likelihood", "y", ("chain", "draw", "obs_id"), (2, 30, 919))
    seen = np.zeros((2, 30), int)
    for chain, draws, block in s.blocks():
        assert block.shape[1:] == (919,) and block.nbytes <= max(block_bytes, 919 * 8)
        seen[chain, draws] += 1
    assert (seen == 1).all()
    ours = log_likelihood.materialize([s])["log_likelihood"]["y"]
    ref = pymc_log_likelihood(model, idata)["y"]
    assert np.isfinite(ref.values).all()
    np.testing.assert_allclose(ours.values, ref.values, rtol=1e-12, atol=1e-12)
    assert ours.dims == ref.dims and (ours["obs_id"].values == ref["obs_id"].values).all()


def test_a_reparametrized_model_gives_the_same_log_likelihood_of_its_own_posterior():
    """The fit streams the log-likelihood under the model that drew the posterior (its last attempt's
    parametrization); radon with every county non-centred: PyMC's numbers again."""
    model = bundled_model("radon", "county", flipped=["intercept"])
    idata = fake_fit(model, chains=1, draws=12, seed=3)
    assert "theta" in idata.posterior and "theta_offset" not in idata.posterior
    [s] = log_likelihood.pointwise(model, idata)
    np.testing.assert_allclose(log_likelihood.materialize([s])["log_likelihood"]["y"].values,
                               pymc_log_likelihood(model, idata)["y"].values, rtol=1e-12, atol=1e-12)


def test_draws_per_block_at_m5s_product_level_and_the_bottom_level():
    """Blocks of about BLOCK_BYTES (every draw when they fit), HDF5 chunks of about CHUNK_BYTES that are as
    wide as the posterior check's blocks of observations and that blocks of draws never split."""
    from hbm.posterior_check import obs_block

    for chains, draws, rows in ((2, 2000, 85_372), (2, 1000, 853_720), (4, 1000, 919), (4, 1000, 300),
                                (4, 2000, 100), (1, 5, 3)):
        block, chunks = log_likelihood.draws_per_block(chains, draws, rows)
        assert chunks[0] == 1 and chunks[2] == min(rows, obs_block(chains * draws))
        assert block % chunks[1] == 0 or block == draws
        assert np.prod(chunks) * 8 <= max(log_likelihood.CHUNK_BYTES, chunks[2] * 8)
        assert block * rows * 8 <= max(log_likelihood.BLOCK_BYTES, rows * 8)
        assert block == draws or block * rows * 8 > log_likelihood.BLOCK_BYTES / 2
    # 64 MB, not the 2.7 GB of all draws
    assert log_likelihood.draws_per_block(2, 2000, 85_372) == (98, (1, 98, 524))
    assert log_likelihood.draws_per_block(4, 1000, 300)[0] == 1000  # one block, not 872 + 128


@pytest.mark.parametrize("in_memory", [True, False])
def test_written_file_equals_the_one_with_pymcs_group(radon, tmp_path, monkeypatch, in_memory):
    """Built in memory (small) or by HDF5 on the disk (over IN_MEMORY_BYTES): either way the file reads back
    with every group, the log-likelihood equal to PyMC's, and its chunks as the posterior check reads them."""
    import h5netcdf

    model, idata = radon
    monkeypatch.setattr(hbm_io, "IN_MEMORY_BYTES", 10 ** 9 if in_memory else 0)
    monkeypatch.setattr(log_likelihood, "BLOCK_BYTES", 8 * 919 * 8)
    idata = idata.copy()
    idata.attrs["hbm_analysis"] = "radon"
    path = tmp_path / "posterior.nc"
    write_netcdf(idata, path, streamed=log_likelihood.pointwise(model, idata))
    back = read_netcdf(path)
    assert list(back.children) == ["posterior", "observed_data", "constant_data", "log_likelihood"]
    assert back.attrs["hbm_analysis"] == "radon"
    ref = idata.copy()
    ref["log_likelihood"] = pymc_log_likelihood(model, idata)
    np.testing.assert_allclose(back["log_likelihood"]["y"].values, ref["log_likelihood"]["y"].values, rtol=1e-12)
    ours, pymcs = (dict(g["log_likelihood"].attrs) for g in (back, ref))
    assert ours.pop("created_at") and pymcs.pop("created_at")
    assert {k: np.asarray(v).tolist() for k, v in ours.items()} == {k: np.asarray(v).tolist() for k, v in pymcs.items()}
    for group in ("posterior", "observed_data", "constant_data"):
        assert back[group].to_dataset().identical(idata[group].to_dataset()), group
    with h5netcdf.File(path, "r") as f:
        var = f["log_likelihood"]["y"]
        assert var.compression == "gzip" and var.chunks == log_likelihood.draws_per_block(2, 30, 919)[1]
    assert [p.name for p in tmp_path.iterdir()] == ["posterior.nc"]


@pytest.mark.parametrize("room", ["none", "the groups only"])
def test_a_large_file_without_room_on_the_disk_is_a_full_disk_before_hdf5_writes(radon, tmp_path, monkeypatch,
                                                                                 room):
    """The room is checked before HDF5 writes each part to the disk (the in-memory groups, then every block
    of draws, each with ROOM_MARGIN to spare): a full disk's message naming the file, nothing left."""
    import shutil

    model, idata = radon
    monkeypatch.setattr(hbm_io, "IN_MEMORY_BYTES", 0)
    groups = sum(int(v.nbytes) for g in idata.children.values() for v in g.to_dataset().variables.values())
    free = 10 ** 6 if room == "none" else groups + hbm_io.ROOM_MARGIN + 100
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 12, 10 ** 12 - free, free))
    path = tmp_path / "posterior.nc"
    with pytest.raises(DiskFullError) as e:
        write_netcdf(idata, path, streamed=log_likelihood.pointwise(model, idata))
    assert str(e.value).startswith(f"{path}: no space left on device while writing this file")
    assert list(tmp_path.iterdir()) == []
