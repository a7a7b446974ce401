"""Compile caches: where they live, and draws that do not depend on whether they were cold or warm.

Where. PyTensor keeps every cache under ``base_compiledir``: its C modules in
``<base_compiledir>/compiledir_<platform>`` and its numba cache (``numba__cache=True``, the default) in
``<base_compiledir>/numba``. Setting only ``compiledir`` moves the C cache and leaves the numba cache in
``~/.pytensor``, outside the checkout. The workflow (``Snakefile``) and the benchmarks
(:func:`environ`) set ``base_compiledir`` to ``.cache/pytensor`` of the checkout (:data:`PYTENSOR_DIR`);
it has to be set before PyTensor is imported, so in the environment of the process. The same flags put
PyTensor's generated Python source (one file per compiled Op, which numba reads back) in
``<base_compiledir>/generated_src`` (``generated_src_dir``), named by content, reused by the next process
and pruned by PyTensor when unused for weeks (:func:`install` sets it in a process that has no such flag); without it, every process leaves a new file per Op in the
system's temporary folder and PyTensor never removes them (a run of the test suite left about 20,000). numba writes no
other cache for a fit: nutpie's wrappers hold dynamic globals and are compiled again in every process,
and numba's own ``cache=True`` functions (none on a fit's path) would go to ``__pycache__`` or
``NUMBA_CACHE_DIR``.

Determinism (project issue 15). With pytensor 3 every Op of a graph is its own numba function, cached on
disk, and numba compiles a function by linking copies of the functions it calls into its own LLVM module
with ``linkonce_odr`` linkage. LLVM treats all definitions of a ``linkonce_odr`` symbol as equal, and the
JIT (RuntimeDyld) binds such a (weak) symbol to the first definition loaded in the process: the copy
inside the module is dropped when another module already defined that name. With PyTensor's fast-math
flags (``numba__fastmath=True``: reassociation, contraction) the copies are not equal: each was optimized
again in its caller's module, and a re-associated sum rounds differently. So

- with a cold cache, each Op's function is compiled (and loaded) on its own before the graph's function,
  and the graph's calls go to those separately optimized definitions;
- with a warm cache, only the graph's function is loaded from disk, and its calls go to its own copies.

Same seed, same graph, different last bits of the log density from the first gradient on, hence
different draws (nutpie and PyMC's sampler alike). Seen on graphs with a fused sum over the observations
and a shared scale (radon; grouped with one noise sd), not on the bundled grouped config.

:func:`install` makes every function numba compiles from then on self-contained: after numba's
optimization (unchanged), the linked-in copies become ``internal``, so the object code calls its own
copies whatever was loaded before it. What other modules link in is still what numba makes (a clone
in which they are ``linkonce_odr`` again), so optimization, the IR and compile time are as before. A cold
and a warm cache then run the same code: the code a warm cache ran before. Such object code must not
be mixed with entries written without :func:`install` (their copies would still bind to whatever was
loaded first), so PyTensor's numba cache entries get their own names (:data:`CACHE_TAG`).

:func:`install` acts on the process that calls it, before it compiles: ``hbm.fit.sample`` calls it. PyMC's
chains (``cores > 1``) run in forked processes on Linux with Python 3.12 and 3.13, which inherit it; a
process started with ``spawn`` or ``forkserver`` would have to call it itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache"
PYTENSOR_DIR = CACHE_DIR / "pytensor"  # base_compiledir; its numba/ folder is PyTensor's numba cache
GENERATED_SRC = "generated_src"  # <base_compiledir>/generated_src: PyTensor's generated_src_dir

# Appended to PyTensor's numba cache keys (file names in <base_compiledir>/numba): entries written by a
# process with install() apart from those of processes without it. Change it when the patch changes.
CACHE_TAG = "_hbm-selfcontained1"

_installed = False
# nutpie versions whose C wrappers the lean copies (lean_nutpie_wrappers) were compared with, line by line
# and in tests/test_determinism.py; another version keeps its own (a test then fails: check and add it)
LEAN_NUTPIE_VERSIONS = ("0.16.11",)
NUTPIE_ORIGINALS: dict = {}  # nutpie's own wrapper makers, where lean_nutpie_wrappers replaced them


def pytensor_flags(base_compiledir=PYTENSOR_DIR, flags: str | None = None) -> str:
    """``PYTENSOR_FLAGS`` that put every PyTensor cache (C and numba) under ``base_compiledir``, and its
    generated source in ``<base_compiledir>/generated_src`` (not one new file per Op in the system's
    temporary folder).

    ``flags`` (e.g. the current ``PYTENSOR_FLAGS``) are kept, except ``compiledir`` and
    ``base_compiledir``: ``compiledir`` would keep the C cache elsewhere. A ``generated_src_dir`` in
    ``flags`` is kept."""
    kept = [f.strip() for f in (flags or "").split(",")
            if f.strip() and f.split("=", 1)[0].strip() not in ("compiledir", "base_compiledir")]
    ours = [f"base_compiledir={base_compiledir}"]
    if not any(f.split("=", 1)[0].strip() == "generated_src_dir" for f in kept):
        ours.append(f"generated_src_dir={Path(base_compiledir) / GENERATED_SRC}")
    return ",".join([*ours, *kept])


def environ(base_compiledir=PYTENSOR_DIR, env: dict | None = None) -> dict:
    """The environment variables a child process needs for its caches to be under ``base_compiledir``
    (the other flags of ``env``'s, by default this process's, ``PYTENSOR_FLAGS`` kept)."""
    import os

    env = os.environ if env is None else env
    return {"PYTENSOR_FLAGS": pytensor_flags(base_compiledir, env.get("PYTENSOR_FLAGS"))}


def install() -> bool:
    """Make numba's compiled functions self-contained and tag PyTensor's numba cache entries (see the
    module's docstring). Idempotent; call it before the first compilation of a process (``hbm.fit.sample``
    does). Returns False, with a warning, when numba's or PyTensor's internals are not the expected ones."""
    global _installed
    if _installed:
        return True
    try:
        import llvmlite.binding as ll
        from numba.core.codegen import CPUCodeLibrary
        from pytensor.link.numba.cache import NumbaPyTensorCacheLocator
    except ImportError as e:  # pragma: no cover - numba is a dependency of pytensor 3 and nutpie
        log.warning("compile cache: numba/pytensor internals not found (%s): a cold and a warm cache may give "
                    "different draws", e)
        return False
    if not (hasattr(CPUCodeLibrary, "_optimize_final_module") and hasattr(CPUCodeLibrary, "_get_module_for_linking")
            and hasattr(NumbaPyTensorCacheLocator, "get_disambiguator")):
        log.warning("compile cache: numba's or PyTensor's internals changed: a cold and a warm cache may give "
                    "different draws")
        return False

    optimize, for_linking = CPUCodeLibrary._optimize_final_module, CPUCodeLibrary._get_module_for_linking

    def _optimize_final_module(self):
        optimize(self)
        local = []
        for fn in self._final_module.functions:
            if not fn.is_declaration and fn.linkage == ll.Linkage.linkonce_odr:
                fn.linkage = ll.Linkage.internal
                local.append(fn.name)
        self._hbm_local = frozenset(local)

    def _get_module_for_linking(self):
        # What libraries that link this one get, as numba makes it (a clone with the exported functions
        # linkonce_odr), with the copies made internal above linkonce_odr again.
        local = getattr(self, "_hbm_local", None)
        if not local:
            return for_linking(self)
        self._ensure_finalized()
        if self._shared_module is None:
            module = self._final_module.clone()
            for fn in module.functions:
                if not fn.is_declaration and (fn.linkage == ll.Linkage.external or fn.name in local):
                    fn.linkage = ll.Linkage.linkonce_odr
            self._shared_module = module
        return self._shared_module

    disambiguator = NumbaPyTensorCacheLocator.get_disambiguator

    def get_disambiguator(self):
        return disambiguator(self) + CACHE_TAG

    CPUCodeLibrary._optimize_final_module = _optimize_final_module
    CPUCodeLibrary._get_module_for_linking = _get_module_for_linking
    NumbaPyTensorCacheLocator.get_disambiguator = get_disambiguator
    lean_nutpie_wrappers()
    keep_generated_src()
    _installed = True
    return True


def keep_generated_src() -> str:
    """Put PyTensor's generated source in ``<base_compiledir>/generated_src`` when no ``generated_src_dir``
    is set (a process whose ``PYTENSOR_FLAGS`` did not come from :func:`pytensor_flags`, e.g. hbm used as a
    library), rather than one new file per compiled Op in the system's temporary folder. Returns the
    folder in use."""
    from pytensor import config

    if not config.generated_src_dir:
        config.generated_src_dir = str(Path(config.base_compiledir) / GENERATED_SRC)
    return config.generated_src_dir


def lean_nutpie_wrappers() -> bool:
    """Compile nutpie's two C wrappers (log density with gradient; the draws' expansion) about 3 s faster.

    nutpie (0.16) copies the graph's result into the sampler's buffer with ``out[...] = values``. For that
    broadcast numba compiles the message of a shape-mismatch error (string formatting of the shapes), 3 of
    the 7-8 s a small model's wrappers take, in every process (the wrappers are never cached). The same
    functions with an element-wise copy, after a length check that returns nutpie's code for the error
    (1 for the log density, -2 for the expansion), compute exactly the same numbers and return the same
    codes. Applied only to the nutpie versions in :data:`LEAN_NUTPIE_VERSIONS` whose source still has
    ``out[...] = grad`` and ``out[...] = values``; otherwise nutpie is left as it is. Returns whether it
    applied."""
    import inspect

    try:
        import nutpie
        import nutpie.compile_pymc as ncp

        if getattr(ncp._make_c_logp_func, "_hbm_lean", False):
            return True
        sources = inspect.getsource(ncp._make_c_logp_func), inspect.getsource(ncp._make_c_expand_func)
    except Exception as e:  # noqa: BLE001 - pragma: no cover; nutpie is pinned: then nutpie is left as it is
        log.info("compile cache: nutpie's C wrappers not found (%s); left as they are", e)
        return False
    if (nutpie.__version__ not in LEAN_NUTPIE_VERSIONS or "out[...] = grad" not in sources[0]
            or "out[...] = values" not in sources[1]):
        log.info("compile cache: nutpie %s's C wrappers are not the ones hbm's lean copies were checked against "
                 "(%s); left as they are", nutpie.__version__, ", ".join(LEAN_NUTPIE_VERSIONS))
        return False
    NUTPIE_ORIGINALS.update(_make_c_logp_func=ncp._make_c_logp_func, _make_c_expand_func=ncp._make_c_expand_func)
    ncp._make_c_logp_func = _lean_logp_func(ncp)
    ncp._make_c_expand_func = _lean_expand_func(ncp)
    return True


def _lean_logp_func(ncp):
    import numba
    import numpy as np

    def make(n_dim, logp_fn, user_data, shared_keys, shared_data):
        extract = ncp.make_extraction_fn(logp_fn, shared_data, shared_keys, user_data.dtype)
        double = numba.types.CPointer(numba.types.double)
        c_sig = numba.types.int64(numba.types.uint64, double, double, double, numba.types.voidptr)

        def logp_numba(dim, x_, out_, logp_, user_data_):
            if dim != n_dim:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                out = numba.carray(out_, (n_dim,))
                logp = numba.carray(logp_, ())
                logp_val, grad = extract(x, user_data_)
                logp[()] = logp_val
                if grad.shape[0] != n_dim:  # nutpie's out[...] = grad raises, and returns 1
                    return 1
                finite = True
                for i in range(n_dim):
                    out[i] = grad[i]
                    finite = finite and np.isfinite(grad[i])
                if not finite:
                    return 3
                if not np.isfinite(logp_val):
                    return 4
            except Exception:  # noqa: BLE001 - nutpie's own code: any error is code 1
                return 1
            return 0

        return logp_numba, c_sig

    make._hbm_lean = True
    return make


def _lean_expand_func(ncp):
    import numba

    def make(n_dim, n_expanded, expand_fn, user_data, shared_var_keys, shared_data):
        extract = ncp.make_extraction_fn(expand_fn, shared_data, shared_var_keys, user_data.dtype)
        double = numba.types.CPointer(numba.types.double)
        c_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, double, double, numba.types.voidptr)

        def expand_numba(dim, expanded, x_, out_, user_data_):
            if dim != n_dim or expanded != n_expanded:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                out = numba.carray(out_, (n_expanded,))
                (values,) = extract(x, user_data_)
                if values.shape[0] != n_expanded:  # nutpie's out[...] = values raises, and returns -2
                    return -2
                for i in range(n_expanded):
                    out[i] = values[i]
            except Exception:  # noqa: BLE001 - nutpie's own code: any error is code -2
                return -2
            return 0

        return expand_numba, c_sig

    make._hbm_lean = True
    return make
