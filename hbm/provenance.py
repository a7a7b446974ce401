"""Provenance: what made a result (config, data, code, environment, seeds, time and memory per rule)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from hbm import __version__
from hbm.io import sha256_file

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("arviz", "h5netcdf", "jax", "Jinja2", "matplotlib", "numba", "numpy", "numpyro", "nutpie", "pandas",
            "pyarrow", "pymc", "pytensor", "PyYAML", "scipy", "snakemake", "xarray")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(root: Path = ROOT) -> dict:
    """The commit of the hbm checkout and whether its tree has uncommitted changes.

    Code extracted from a revision by ``hbm regenerate --with-code`` is not a checkout: its REVISION
    file names the commit it came from.
    """
    if (root / "REVISION").is_file():
        return {"commit": (root / "REVISION").read_text().strip(), "dirty": False}

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def code_fingerprint(*modules: str) -> str:
    """sha256 over the source of the named hbm modules ("models", "fit") or files ("templates/x.j2").

    Snakemake does not track code imported from a package; rules put this into ``params:`` so that a
    change to the code a rule runs reruns that rule.
    """
    h = hashlib.sha256()
    for m in sorted(modules):
        h.update(m.encode())
        h.update((ROOT / "hbm" / (m if "." in m else f"{m}.py")).read_bytes())
    return h.hexdigest()[:16]


def rule_times(benchmark_files) -> list[dict]:
    """Wall time and peak memory of each job, from Snakemake's ``benchmark:`` files."""
    import pandas as pd

    rows = []
    for path in benchmark_files:
        path = Path(path)
        if not path.is_file():
            continue
        b = pd.read_csv(path, sep="\t")
        rows.append({"job": path.stem, "seconds": round(float(b["s"].iloc[-1]), 2),
                     "max_rss_mb": None if str(b["max_rss"].iloc[-1]) == "-" else float(b["max_rss"].iloc[-1])})
    return rows


def netcdf_attrs(sources: dict | None = None) -> dict:
    """NetCDF attributes that say what made a result: hbm version, git commit and dirtiness, Python and
    package versions and, given ``sources`` ({"config_file", "data_file"}), the config file's content and
    sha256 and the data file's sha256. Values are strings or numbers (what NetCDF attributes can hold)."""
    import json

    git = git_state()
    attrs = {
        "hbm_version": __version__,
        "hbm_git_commit": git["commit"] or "unknown",
        "hbm_git_dirty": "unknown" if git["dirty"] is None else str(git["dirty"]).lower(),
        "hbm_python": sys.version.split()[0],
        "hbm_packages": json.dumps(package_versions(), sort_keys=True),
    }
    if sources:
        config_file, data_file = Path(sources["config_file"]), Path(sources["data_file"])
        attrs.update(
            hbm_config_file=str(config_file),
            hbm_config_sha256=sha256_file(config_file),
            hbm_config_text=config_file.read_text(encoding="utf-8"),
            hbm_data_file=str(data_file),
            hbm_data_sha256=sha256_file(data_file),
        )
    return attrs


def stamp(idata, attrs: dict) -> None:
    """Put ``attrs`` on every group of an InferenceData (a DataTree; so each NetCDF group carries them)."""
    for group in idata.children.values():
        group.attrs.update(attrs)


def collect(config_file, data_file, seed: int, benchmark_files=(), job_seeds: dict | None = None) -> dict:
    config_file, data_file = Path(config_file), Path(data_file)
    return {
        "config_file": str(config_file),
        "config_sha256": sha256_file(config_file),
        "config_text": config_file.read_text(encoding="utf-8"),
        "data_file": str(data_file),
        "data_sha256": sha256_file(data_file),
        "hbm_version": __version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "snakemake_command": os.environ.get("HBM_SNAKEMAKE_COMMAND"),
        "seed": seed,
        "job_seeds": job_seeds or {},
        "rules": rule_times(benchmark_files),
    }
