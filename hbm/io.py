"""File output that is never half-written: every file is written under a temporary name and renamed."""

from __future__ import annotations

import contextlib
import datetime
import errno
import glob
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbm.errors import DiskFullError

_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file (``.<name>.<random>.tmp``) is removed if the block fails. A full disk or quota
    raises :class:`hbm.errors.DiskFullError`, whose message names ``path``. Only a process killed
    outright (SIGKILL, power loss) can leave a temporary file behind; it is never taken for ``path``,
    and the next successful write of ``path`` removes it (a path has one writer at a time: Snakemake's
    lock sees to that for the workflow's outputs).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should have the usual permissions
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        problem = _disk_full(e)
        if problem:
            raise DiskFullError(
                f"{path}: {problem} while writing this file (nothing half-written was kept); free space on "
                f"that disk, or point 'results' in config/config.yaml at a disk with more room"
            ) from None
        raise
    # Temporary files of this path left by a killed earlier write (mkstemp's random part is 8 characters,
    # so another file's temporaries, e.g. those of "<name>.gz", never match).
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}.tmp"):
        stale.unlink(missing_ok=True)


def _disk_full(e: BaseException) -> str | None:
    """'no space left on device' / 'disk quota exceeded' if ``e`` (or what caused it) says so, else None."""
    for _ in range(4):
        if e is None:
            break
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return _DISK_FULL[e.errno]
        e = e.__cause__ or e.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def write_text(text: str, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@dataclass
class Streamed:
    """One group of an InferenceData for :func:`write_netcdf`, made of one variable of shape
    ``(chain, draw, *obs)`` that is never held whole: ``blocks()`` yields ``(chain, draw_slice, values)``
    (a fit's log-likelihood, :mod:`hbm.log_likelihood`; a posterior check's predictive draws). ``coords``
    gives the values of every dimension, ``attrs`` the group's attributes, ``chunks`` the HDF5 chunk shape
    (empty: HDF5's choice)."""

    group: str
    name: str
    dims: tuple[str, ...]
    coords: dict
    attrs: dict
    blocks: Callable[[], Iterator[tuple[int, slice, Any]]]
    chunks: tuple[int, ...] = field(default=())
    dtype: str = "float64"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[d]) for d in self.dims)

    @property
    def nbytes(self) -> int:
        import numpy as np

        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    @classmethod
    def per_draw(cls, group: str, observed, posterior, attrs: dict, blocks, chunks=(), dtype="float64"):
        """A variable of ``observed``'s shape (a DataArray of observed data) for every draw of ``posterior``:
        named as ``observed``, dims ``(chain, draw, *observed.dims)``, coordinates from both, ``attrs``
        with ``sample_dims`` chain and draw (as PyMC's log_likelihood and posterior_predictive groups)."""
        import numpy as np

        coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                  **{d: observed[d].values if d in observed.coords else np.arange(n)
                     for d, n in zip(observed.dims, observed.shape)}}
        made = {"created_at": datetime.datetime.now(datetime.timezone.utc).isoformat()} if "created_at" in attrs else {}
        return cls(group, observed.name, ("chain", "draw", *observed.dims), coords,
                   {**attrs, **made, "sample_dims": ["chain", "draw"]}, blocks, tuple(chunks) if observed.ndim == 1 else (),
                   dtype)

    def coords_dataset(self):
        """The group without its variable: coordinates and attributes (written by xarray, as ArviZ writes them)."""
        import xarray as xr

        return xr.Dataset(coords={d: self.coords[d] for d in self.dims}, attrs=dict(self.attrs))


IN_MEMORY_BYTES = 256 * 2 ** 20  # a NetCDF file up to this size (uncompressed) is built in memory


def write_netcdf(idata, path, streamed=()) -> None:
    """Write an InferenceData (an ``xarray.DataTree`` of groups) atomically (NetCDF4 via h5netcdf), with
    the groups of ``streamed`` (:class:`Streamed`: a fit's log-likelihood, a posterior check's predictive
    draws) written a block of draws at a time, never whole in memory.

    A file up to :data:`IN_MEMORY_BYTES` (uncompressed) is built in memory, as ``idata.to_netcdf`` builds it
    (attributes, then one compressed group after another), and then written out with plain file I/O: HDF5
    that runs out of disk space mid-write prints tracebacks and can crash the process while closing the
    broken file (h5py segfaults), so HDF5 never writes to the disk here and a full disk is an ordinary
    OSError in :func:`atomic_path`. A larger file (M5's product level: 2.7 GB of log-likelihood) is written
    by HDF5 straight to its temporary file, each part only once the disk has room for it uncompressed and
    :data:`ROOM_MARGIN` besides (the in-memory groups first, then every block of a streamed group; less is
    a full disk, named as in :func:`atomic_path`); only a disk filled by another process during a write
    can still crash it, and then no file of that name is left behind either.
    """
    groups_size = sum(int(v.nbytes) for g in idata.children.values() for v in g.to_dataset().variables.values())
    if groups_size + sum(s.nbytes for s in streamed) <= IN_MEMORY_BYTES:
        buf = io.BytesIO()
        _build_netcdf(buf, idata, streamed)  # before the temporary file exists: a kill meanwhile leaves none
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getbuffer())
        return
    with atomic_path(path) as tmp:
        _require_room(tmp.parent, groups_size)
        _build_netcdf(str(tmp), idata, streamed, disk=tmp.parent)


def _build_netcdf(target, idata, streamed=(), disk=None) -> None:
    """:func:`write_netcdf`'s file in ``target`` (a file-like object or a path on the disk, whose folder
    ``disk`` is then)."""
    import xarray as xr

    mode = "w"
    if idata.attrs:
        xr.Dataset(attrs=idata.attrs).to_netcdf(target, mode=mode, engine="h5netcdf", group="/")
        mode = "a"
    groups = dict(idata.children)
    for s in streamed:  # the coordinates and attributes of a streamed group, as xarray writes them
        if s.group not in groups:
            groups[s.group] = s.coords_dataset()
    for group, data in groups.items():
        data = data.to_dataset() if hasattr(data, "to_dataset") else data
        encoding = {name: {"zlib": True} for name, var in data.variables.items() if _compressible(var.dtype)}
        data.to_netcdf(target, mode=mode, engine="h5netcdf", group=f"/{group}", encoding=encoding)
        mode = "a"
    if mode == "w":  # an empty InferenceData: an empty NetCDF file, as arviz writes it
        import h5netcdf

        h5netcdf.File(target, mode="w").close()
    if streamed:
        _write_streamed(target, streamed, disk)


ROOM_MARGIN = 2 ** 24  # free bytes kept for HDF5's own metadata when it writes straight to the disk


def _require_room(folder, nbytes: int) -> None:
    """A full disk (ENOSPC, which :func:`atomic_path` names) unless ``folder``'s disk has ``nbytes`` and
    :data:`ROOM_MARGIN` free."""
    import shutil

    if shutil.disk_usage(folder).free < nbytes + ROOM_MARGIN:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write_streamed(target, streamed, disk=None) -> None:
    """Fill the variables of ``streamed`` into ``target`` (a NetCDF file with their groups' coordinates);
    ``disk``: the folder of a file on the disk, whose room each block checks first (:func:`_require_room`)."""
    import h5netcdf
    import numpy as np

    with h5netcdf.File(target, mode="a") as f:
        for s in streamed:
            # shuffled bytes compress: M5's product level 14 % smaller and 1.6x faster than gzip alone (6 %)
            float_ = np.dtype(s.dtype).kind == "f"
            var = f[s.group].create_variable(s.name, s.dims, dtype=s.dtype, chunks=s.chunks or True,
                                             compression="gzip", shuffle=True,
                                             **({"fillvalue": np.nan} if float_ else {}))
            for chain, draws, block in s.blocks():
                if disk is not None:
                    _require_room(disk, block.nbytes)
                var[chain, draws] = block


def _compressible(dtype) -> bool:
    """The dtypes arviz's ``to_netcdf`` compresses."""
    if dtype.kind == "V":
        return all(_compressible(item) for item, _ in dtype.fields.values())
    return dtype.kind in {"b", "i", "u", "f", "c", "S"}


def read_netcdf(path, exclude: tuple[str, ...] = ()):
    """Read an InferenceData written by :func:`write_netcdf` (or arviz) into memory and close the file; the
    groups named in ``exclude`` are left out unread (a fit's ``log_likelihood``, draws x rows, for a job that
    needs only the posterior)."""
    import xarray as xr

    with xr.open_datatree(str(path), engine="h5netcdf") as tree:
        for name in exclude:
            if name in tree.children:
                del tree[name]
        return tree.load().copy()


@contextlib.contextmanager
def open_netcdf(path, lazy: tuple[str, ...] = ()):
    """Open an InferenceData written by :func:`write_netcdf` for the ``with`` block: every group read into
    memory except those named in ``lazy``, which are read from the file only as they are indexed (a
    ``log_likelihood`` of draws x rows, read a block of rows at a time)."""
    import xarray as xr

    with xr.open_datatree(str(path), engine="h5netcdf") as tree:
        for name, group in tree.children.items():
            if name not in lazy:
                group.load()
        yield tree


def save_figure(fig, path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
