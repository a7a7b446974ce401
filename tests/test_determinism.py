"""The same seed gives the same draws whether the compile cache was cold or warm (project issue 15).

Each fit runs in a fresh Python process, as a Snakemake job does: two with an empty cache directory
(``base_compiledir``, so PyTensor's numba cache is in it too) and a third with the cache the first one
filled. Draws must be bit-identical. The model is the bundled ``grouped`` example, centered, with one
shared noise sd: its likelihood is a fused sum over the observations, whose rounding depended on which
copy of the compiled Op ran (hbm.cache explains why; the bundled config's own model did not show it).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hbm import cache

from conftest import ROOT

pytestmark = pytest.mark.slow

SAMPLERS = ("nutpie", "pymc")

FIT = """
import json, sys
import numpy as np
from hbm.config import level_spec, load_analysis
from hbm.fit import sample
from hbm.ingest import read_raw, validate_table
from hbm.models import build_model, level_data

root, out = sys.argv[1], sys.argv[2]
cfg = load_analysis(f"{root}/config/analyses/grouped.yaml")
spec = level_spec(cfg, "group")
spec["model"].update(noise="shared", parametrization="centered")
data = level_data(validate_table(read_raw(f"{root}/{cfg['data']['path']}"), cfg["data"]["path"], cfg["columns"],
                                 cfg["levels"]), spec)
arrays = {}
for sampler in %r:
    inference = {"sampler": sampler, "chains": 2, "tune": 50, "draws": 50, "target_accept": 0.9}
    idata = sample(build_model(data, spec), inference, seed=11)
    for name, values in idata.posterior.data_vars.items():
        arrays[f"{sampler}/{name}"] = values.values
    arrays[f"{sampler}/diverging"] = idata.sample_stats["diverging"].values
np.savez(out, **arrays)
print(json.dumps(sorted(arrays)))
""" % (SAMPLERS,)


def fit_in_fresh_process(base_compiledir, out):
    env = {**os.environ, **cache.environ(base_compiledir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", FIT, str(ROOT), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def test_cold_and_warm_compile_cache_give_bit_identical_draws(tmp_path):
    first, other = tmp_path / "cache_first", tmp_path / "cache_other"
    cold = fit_in_fresh_process(first, tmp_path / "cold.npz")
    # The fit's numba cache is under base_compiledir (not ~/.pytensor), so the third fit finds it warm.
    entries = list((first / "numba").glob("*.nbi"))
    assert entries, f"no numba cache entries under {first}"
    cold_again = fit_in_fresh_process(other, tmp_path / "cold_again.npz")
    warm = fit_in_fresh_process(first, tmp_path / "warm.npz")

    assert {k.split("/")[0] for k in cold} == set(SAMPLERS)
    assert cold.keys() == cold_again.keys() == warm.keys()
    for key in cold:
        assert np.array_equal(cold[key], cold_again[key]), f"{key}: two cold caches differ"
        assert np.array_equal(cold[key], warm[key]), (
            f"{key}: a warm cache gave other draws than a cold one "
            f"(first difference at {np.argwhere(cold[key] != warm[key])[:1].tolist()})")
    # Every entry was written with hbm.cache.install() active (entries written without it are kept apart).
    assert all(cache.CACHE_TAG in p.name for p in entries), [p.name for p in entries if cache.CACHE_TAG not in p.name]


def _wrappers(model, monkeypatch, lean: bool):
    """nutpie's compiled model of ``model`` with hbm's lean C wrappers or nutpie's own."""
    import nutpie
    import nutpie.compile_pymc as ncp

    cache.install()
    assert cache.NUTPIE_ORIGINALS, "hbm.cache did not replace nutpie's wrappers (nutpie's source changed?)"
    with monkeypatch.context() as m:
        if not lean:
            for name, original in cache.NUTPIE_ORIGINALS.items():
                m.setattr(ncp, name, original)
        return nutpie.compile_pymc_model(model)


def _call(compiled, x, dim=None, n_expanded=None):
    """(return code, log density, gradient, expansion's return code, expanded draw) of the compiled C
    wrappers at ``x`` (``dim``, ``n_expanded``: the sizes the caller claims, the right ones by default)."""
    import ctypes

    n = compiled.n_dim
    ptr = ctypes.POINTER(ctypes.c_double)
    grad, logp = np.zeros(n), np.zeros(())
    expanded = np.zeros(compiled.n_expanded + 1)
    code = compiled.compiled_logp_func.ctypes(dim or n, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
                                              logp.ctypes.data_as(ptr), compiled.user_data.ctypes.data)
    expand = compiled.compiled_expand_func.ctypes(dim or n, n_expanded or compiled.n_expanded,
                                                  x.ctypes.data_as(ptr), expanded.ctypes.data_as(ptr),
                                                  compiled.user_data.ctypes.data)
    return code, float(logp), grad, expand, expanded


def test_lean_nutpie_wrappers_compute_what_nutpie_s_own_compute(monkeypatch):
    """hbm.cache.lean_nutpie_wrappers: the same log density, gradient, draws' expansion and return codes
    (0 finite, 3 a non-finite gradient, -1 a wrong dimension or number of expanded values) as nutpie's
    wrappers, and the same draws."""
    import nutpie
    import pandas as pd

    from hbm.models import build_model, level_data

    from conftest import make_spec

    spec = make_spec(parametrization="centered", noise="shared")
    data = level_data(pd.read_csv(ROOT / "data/grouped/grouped.csv"), spec)
    model = build_model(data, spec)
    lean, own = _wrappers(model, monkeypatch, True), _wrappers(model, monkeypatch, False)
    rng = np.random.default_rng(0)
    for x in [*rng.normal(size=(3, lean.n_dim)), np.full(lean.n_dim, np.nan)]:
        a, b = _call(lean, x), _call(own, x)
        assert a[0] == b[0] and a[3] == b[3] == 0
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_array_equal(a[4], b[4])
    assert _call(lean, x)[0] == 3  # NaN parameters: a non-finite gradient
    x = rng.normal(size=lean.n_dim)
    assert _call(lean, x, dim=lean.n_dim + 1)[0] == _call(own, x, dim=own.n_dim + 1)[0] == -1
    assert _call(lean, x, dim=lean.n_dim + 1)[3] == _call(own, x, dim=own.n_dim + 1)[3] == -1
    assert _call(lean, x, n_expanded=lean.n_expanded + 1)[3] == _call(own, x, n_expanded=own.n_expanded + 1)[3] == -1
    draws = [nutpie.sample(c, draws=50, tune=50, chains=1, seed=3, progress_bar=False).posterior["tau"].values
             for c in (lean, own)]
    np.testing.assert_array_equal(*draws)


GENERATED = """
import sys
import numpy as np
import pytensor
import pytensor.tensor as pt
if sys.argv[1] == "install":
    from hbm import cache
    cache.install()
x = pt.vector("x")
f = pytensor.function([x], pt.exp(x).sum() * 2.0, mode="NUMBA")
assert np.isclose(f(np.zeros(3)), 6.0)
print(pytensor.config.generated_src_dir)
"""


@pytest.mark.parametrize("how", ["flags", "install"])
def test_generated_source_goes_to_the_compile_cache_not_the_temporary_folder(tmp_path, how):
    """PyTensor writes the Python source of every Op it compiles with numba to a file; without
    ``generated_src_dir`` each is a new file in the temporary folder that nobody removes. The workflow's flags
    (``how="flags"``) and, in a process without them, :func:`hbm.cache.install` put it in the compile cache."""
    base, tmp = tmp_path / "base", tmp_path / "tmp"
    tmp.mkdir()
    flags = cache.pytensor_flags(base) if how == "flags" else f"base_compiledir={base}"
    env = {**os.environ, "PYTENSOR_FLAGS": flags, "TMPDIR": str(tmp),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", GENERATED, how], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().splitlines()[-1] == str(base / cache.GENERATED_SRC)
    assert list((base / cache.GENERATED_SRC).glob("m*.py")), "no generated source in the compile cache"
    assert not [p.name for p in tmp.rglob("*") if p.is_file()], "generated source left in the temporary folder"


def test_pytensor_flags_keep_the_user_s_own_flags_and_generated_src_dir():
    flags = cache.pytensor_flags("/c", "floatX=float64, compiledir=/x,generated_src_dir=/mine")
    assert flags.split(",") == ["base_compiledir=/c", "floatX=float64", "generated_src_dir=/mine"]
    assert cache.pytensor_flags("/c").split(",") == ["base_compiledir=/c", "generated_src_dir=/c/generated_src"]
