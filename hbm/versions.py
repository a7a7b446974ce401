"""Versions of an analysis: regenerate the results of a past config into a folder of their own.

A version is one state of an analysis config file (for example the file at a git tag). Its results live
under ``<results>/versions/<label>/<analysis>/``, beside and never on top of the current results in
``<results>/<analysis>/``; the label ``current`` names the latter. The ``compare`` rule
(:mod:`hbm.compare`) compares any two versions.

Seeds derive from the config's ``inference.seed`` and the job (analysis, level, stage), never from the
results folder, so a version regenerated with the same code, data and locked environment has
bit-identical posterior draws and the same numbers as the run that made it first.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from hbm.errors import ConfigError, HbmError
from hbm.io import atomic_path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CURRENT = "current"
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # no "_": "<a>_vs_<b>" must split one way only
CODE_PATHS = ("Snakefile", "workflow", "hbm", "pyproject.toml", "requirements.lock", "environment.yml")


def version_dir(results: str | Path, analysis: str, label: str) -> Path:
    """Where the results of one version of an analysis live."""
    if label == CURRENT:
        return Path(results) / analysis
    return Path(results) / "versions" / label / analysis


def label_for(text: str, rev: str | None = None) -> str:
    """A version label: the git revision made safe for a file name, else the config's sha256 (12 digits)."""
    if rev:
        label = re.sub(r"[^A-Za-z0-9.-]+", "-", rev).strip("-.") or "rev"
        return label if LABEL.match(label) else f"rev-{label}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_label(label: str) -> str:
    if label == CURRENT or not LABEL.match(label):
        raise ConfigError(
            f"version label {label!r}: use letters, digits, '.' and '-' (no '_', not starting with '.' or '-'), "
            f"and not {CURRENT!r}, which names the current results"
        )
    return label


def git_show(directory: Path, rev: str, path: str) -> str:
    """The content of ``path`` at git revision ``rev`` in the repository at ``directory``."""
    proc = subprocess.run(["git", "-C", str(directory), "show", f"{rev}:{path}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"cannot read {path} at git revision {rev!r}: {proc.stderr.strip()}")
    return proc.stdout


def extract_code(directory: Path, rev: str, dest: Path) -> Path:
    """Write the workflow and hbm code at ``rev`` (``git archive``) into ``dest``; return its Snakefile.

    ``dest/REVISION`` names the commit, which provenance records as the code's git commit.
    """
    commit = subprocess.run(["git", "-C", str(directory), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True)
    proc = subprocess.run(["git", "-C", str(directory), "archive", "--format=tar", rev, "--", *CODE_PATHS],
                          capture_output=True)
    if commit.returncode != 0 or proc.returncode != 0:
        raise ConfigError(f"cannot extract the code at git revision {rev!r}: "
                          f"{(commit.stderr or proc.stderr.decode()).strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    (dest / "REVISION").write_text(commit.stdout.strip() + "\n")
    return dest / "Snakefile"


def regenerate(config: str | Path, *, rev: str | None = None, with_code: bool = False, label: str | None = None,
               directory: str | Path = ".", results: str = "results", cores: int | str = "all",
               snakemake_args: tuple[str, ...] = ()) -> Path:
    """Run the analysis of one config version into ``<results>/versions/<label>/`` and return its folder.

    ``config`` is a config file; with ``rev``, the path of the config file in the git repository at
    ``directory`` as it was at revision ``rev``. ``with_code`` runs the workflow and hbm code of ``rev``
    too (extracted beside the results), for reports made by older code. The config is copied into the
    version's folder (the user's file is never touched); a label already used by a different config is
    refused.
    """
    directory = Path(directory).resolve()
    if with_code and not rev:
        raise ConfigError("--with-code needs --rev: the code of which git revision?")
    if rev:
        text = git_show(directory, rev, str(config))
    else:
        path = Path(config) if Path(config).is_absolute() else directory / config
        if not path.is_file():
            raise ConfigError(f"{config}: no such config file")
        text = path.read_text(encoding="utf-8")
    try:
        name = yaml.safe_load(text)["name"]
    except (yaml.YAMLError, TypeError, KeyError) as e:
        raise ConfigError(f"{config}: not an analysis config with a 'name' ({e})") from None
    label = check_label(label or label_for(text, rev))
    root = Path(results) / "versions" / label
    copy = root / Path(str(config)).name
    if (directory / copy).exists() and (directory / copy).read_text(encoding="utf-8") != text:
        raise ConfigError(
            f"version {label!r} of {name} already holds a different config ({copy}); pick another --label"
        )
    if not (directory / copy).exists():
        with atomic_path(directory / copy) as tmp:
            tmp.write_text(text, encoding="utf-8")
    snakefile, env = ROOT / "Snakefile", None
    if with_code:
        code = directory / root / "code"
        snakefile = extract_code(directory, rev, code)
        # the extracted code lies inside this checkout: keep git from taking this checkout's commit for its own
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(code.parent)}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(directory),
           "--cores", str(cores), *snakemake_args, "--config", f"analyses={copy}", f"results={root}"]
    log.info("regenerating %s version %s into %s", name, label, root / name)
    log.info("running: %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise HbmError(f"regenerating version {label!r} of {name} failed (snakemake exit {proc.returncode}); "
                       f"see the messages above")
    out = directory / version_dir(results, name, label)
    log.info("report: %s", out / "report.html")
    return out
