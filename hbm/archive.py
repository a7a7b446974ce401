"""Archive an analysis's results with everything needed to check them elsewhere; verify such an archive.

An archive ``<results>/archives/<analysis>-<digest>.tar.gz`` holds one folder ``<analysis>-<digest>/``:

- ``config/<file>``: the config that made the results (from provenance.json, not today's file);
- ``data.sha256``: the data file's checksum, in ``sha256sum -c`` format (the data itself stays out);
- ``requirements.lock``, ``environment.yml``, ``pyproject.toml``: the locked environment;
- ``results/<analysis>/...``: every result file, the report and provenance.json included;
- ``MANIFEST.sha256``: the sha256 of every other file, in ``sha256sum -c`` format.

``<digest>`` is the first 12 hex digits of the manifest's sha256, so the name follows the content; the
tar file is reproducible (sorted members, fixed owner and times), so archiving the same results twice
gives the same bytes. :func:`verify` checks an archive on any machine: every member against the manifest,
nothing missing or extra, and optionally the data file against ``data.sha256``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
from pathlib import Path

from hbm.errors import ArchiveError, ConfigError
from hbm.io import atomic_path, read_json, sha256_file

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILES = ("requirements.lock", "environment.yml", "pyproject.toml")
MANIFEST = "MANIFEST.sha256"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_members(analysis: str, results: Path, root: Path = ROOT) -> dict[str, bytes | Path]:
    """The files of an archive (content, or a file to read it from), keyed by their path inside its top
    folder; the manifest is not included."""
    folder = results / analysis
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise ConfigError(f"{prov_path}: no such file; run the analysis to its report before archiving it")
    prov = read_json(prov_path)
    members = {f"config/{Path(prov['config_file']).name}": prov["config_text"].encode("utf-8"),
               "data.sha256": f"{prov['data_sha256']}  {prov['data_file']}\n".encode()}
    for name in LOCK_FILES:
        if (root / name).is_file():
            members[name] = root / name
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):  # .name.tmp: a write in progress
            members[f"results/{analysis}/{path.relative_to(folder).as_posix()}"] = path
    return members


def manifest(members: dict[str, bytes | Path]) -> bytes:
    def sha(v):
        return sha256_file(v) if isinstance(v, Path) else _sha(v)

    return "".join(f"{sha(v)}  {name}\n" for name, v in sorted(members.items())).encode()


def archive(analysis: str, *, results: str | Path = "results", output: str | Path | None = None,
            root: Path = ROOT) -> Path:
    """Pack one analysis into a reproducible .tar.gz; return its path."""
    results = Path(results)
    members = archive_members(analysis, results, root)
    members[MANIFEST] = manifest(members)
    top = f"{analysis}-{_sha(members[MANIFEST])[:12]}"
    if output is None:
        output = results / "archives" / f"{top}.tar.gz"
        if output.is_file():  # the name follows the content: this archive exists already
            log.info("%s exists already (same content)", output)
            return output
    elif Path(output).exists():
        raise ConfigError(f"{output}: exists already; archive never overwrites a file (remove it or pick another)")
    output = Path(output)
    with atomic_path(output) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            value = members[name]
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = value.stat().st_size if isinstance(value, Path) else len(value)
            info.mtime, info.mode = 0, 0o644
            with (open(value, "rb") if isinstance(value, Path) else io.BytesIO(value)) as f:
                tar.addfile(info, f)
    log.info("archived %s: %d files, %.1f MB -> %s", analysis, len(members), output.stat().st_size / 1e6, output)
    return output


def verify(path: str | Path, *, data: str | Path | None = None) -> dict:
    """Check an archive against its manifest (and ``data`` against its data checksum); raise on a mismatch.

    Returns {"files": n, "data": "matches" | "not checked", "environment": [differences from the lock]}.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such archive")
    try:
        with tarfile.open(path, "r:gz") as tar:
            files = {}
            for m in tar.getmembers():
                if not m.isfile():
                    raise ArchiveError(f"{path}: member {m.name!r} is not a regular file")
                files[m.name] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError(f"{path}: not a readable .tar.gz archive ({e})") from None
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) != 1 or f"{next(iter(tops))}/{MANIFEST}" not in files:
        raise ArchiveError(f"{path}: no {MANIFEST} in a single top folder; not an hbm archive")
    top = tops.pop()
    listed = {}
    for n, line in enumerate(files.pop(f"{top}/{MANIFEST}").decode().splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ArchiveError(f"{path}: {MANIFEST} line {n} is malformed: {line!r}")
        listed[f"{top}/{name}"] = digest
    problems = [f"{name[len(top) + 1:]}: checksum differs from {MANIFEST}" for name, digest in sorted(listed.items())
                if name in files and _sha(files[name]) != digest]
    problems += [f"{name[len(top) + 1:]}: listed in {MANIFEST} but missing" for name in sorted(listed) if name not in files]
    problems += [f"{name[len(top) + 1:]}: not listed in {MANIFEST}" for name in sorted(files) if name not in listed]
    if problems:
        raise ArchiveError(f"{path}: verification failed:\n  " + "\n  ".join(problems))
    result = {"files": len(listed), "data": "not checked", "environment": _environment_differences(
        files.get(f"{top}/requirements.lock", b"").decode())}
    if data is not None:
        expected, _, recorded = files[f"{top}/data.sha256"].decode().strip().partition("  ")
        actual = sha256_file(data) if Path(data).is_file() else None
        if actual is None:
            raise ConfigError(f"{data}: no such data file to check against the archive")
        if actual != expected:
            raise ArchiveError(f"{data}: sha256 {actual} differs from the archived data checksum {expected} "
                            f"(of {recorded}): these are not the data that made the archived results")
        result["data"] = "matches"
    log.info("%s: all %d files match %s; data %s", path, result["files"], MANIFEST, result["data"])
    for line in result["environment"]:
        log.warning("environment differs from the archived lock file: %s", line)
    return result


def _environment_differences(lock: str) -> list[str]:
    """Packages whose installed version differs from the archived requirements.lock."""
    import importlib.metadata

    out = []
    for line in lock.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name, version = (s.strip() for s in line.split("==", 1))
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            out.append(f"{name} {installed} here, {version} in the lock")
    return out

