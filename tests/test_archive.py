"""Archives: reproducible, complete, and every tampering or wrong data file is named by verify."""

import hashlib
import io
import json
import tarfile

import pytest

from hbm.archive import MANIFEST, archive, verify
from hbm.errors import ArchiveError, ConfigError


@pytest.fixture
def results(tmp_path):
    """A results folder with one finished analysis (a stand-in: provenance.json and a few outputs)."""
    data = tmp_path / "data.csv"
    data.write_text("group,y\na,1\n")
    folder = tmp_path / "results" / "demo"
    (folder / "fits/g").mkdir(parents=True)
    (folder / "fits/g/diagnostics.json").write_text('{"passed": true}\n')
    (folder / "report.html").write_text("<html>report</html>\n")
    (folder / "fits/g/.posterior.nc.abc.tmp").write_text("a write in progress")
    (folder / "provenance.json").write_text(json.dumps({
        "config_file": "config/analyses/demo.yaml", "config_text": "name: demo\n",
        "data_file": str(data), "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest()}))
    return tmp_path / "results"


def members(path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}


def test_archive_holds_config_checksums_lock_and_results(results):
    path = archive("demo", results=results)
    files = members(path)
    assert path.parent == results / "archives" and path.name.startswith("demo-")
    assert files["config/demo.yaml"] == b"name: demo\n"
    assert files["results/demo/report.html"] == b"<html>report</html>\n"
    assert "requirements.lock" in files and "pyproject.toml" in files
    assert not any(".tmp" in name for name in files)
    listed = dict(reversed(line.split("  ")) for line in files[MANIFEST].decode().splitlines())
    assert set(listed) == set(files) - {MANIFEST}
    assert all(hashlib.sha256(files[n]).hexdigest() == d for n, d in listed.items())
    assert verify(path, data=results.parent / "data.csv")["data"] == "matches"


def test_archiving_twice_gives_the_same_bytes_and_never_overwrites(results, tmp_path):
    first = archive("demo", results=results)
    assert archive("demo", results=results) == first
    other = archive("demo", results=results, output=tmp_path / "copy.tar.gz")
    assert other.read_bytes() == first.read_bytes()
    with pytest.raises(ConfigError, match="copy.tar.gz: exists already"):
        archive("demo", results=results, output=tmp_path / "copy.tar.gz")


def rewrite(src, dst, change):
    """Copy an archive, letting ``change(name, data)`` return new bytes, or None to drop the member."""
    with tarfile.open(src) as a, tarfile.open(dst, "w:gz") as b:
        for m in a.getmembers():
            data = change(m.name, a.extractfile(m).read())
            if data is not None:
                m.size = len(data)
                b.addfile(m, io.BytesIO(data))


@pytest.mark.parametrize("change, message", [
    (lambda n, d: d.replace(b"true", b"false") if n.endswith("diagnostics.json") else d,
     "results/demo/fits/g/diagnostics.json: checksum differs from MANIFEST.sha256"),
    (lambda n, d: None if n.endswith("report.html") else d,
     "results/demo/report.html: listed in MANIFEST.sha256 but missing"),
])
def test_verify_names_the_file_that_changed_or_went_missing(results, tmp_path, change, message):
    bad = tmp_path / "bad.tar.gz"
    rewrite(archive("demo", results=results), bad, change)
    with pytest.raises(ArchiveError, match="verification failed") as e:
        verify(bad)
    assert message in str(e.value)


def test_verify_names_an_unlisted_file_and_wrong_data(results, tmp_path):
    path = archive("demo", results=results)
    bad = tmp_path / "extra.tar.gz"
    with tarfile.open(path) as a, tarfile.open(bad, "w:gz") as b:
        for m in a.getmembers():
            b.addfile(m, a.extractfile(m))
        top = a.getmembers()[0].name.split("/")[0]
        info = tarfile.TarInfo(f"{top}/results/demo/extra.txt")
        info.size = 2
        b.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ArchiveError, match="results/demo/extra.txt: not listed in MANIFEST.sha256"):
        verify(bad)
    other = tmp_path / "other.csv"
    other.write_text("group,y\nb,2\n")
    with pytest.raises(ArchiveError, match="other.csv: sha256 .* differs from the archived data checksum"):
        verify(path, data=other)


def test_verify_refuses_what_is_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(ArchiveError, match="junk.tar.gz: not a readable .tar.gz archive"):
        verify(junk)
    with pytest.raises(ConfigError, match="missing.tar.gz: no such archive"):
        verify(tmp_path / "missing.tar.gz")


def test_archive_needs_a_finished_analysis(tmp_path):
    with pytest.raises(ConfigError, match="provenance.json: no such file; run the analysis to its report"):
        archive("absent", results=tmp_path)
