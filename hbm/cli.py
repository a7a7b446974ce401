"""The ``hbm`` command: work with versions of analyses beside the Snakemake workflow.

    hbm regenerate CONFIG [--rev REV [--with-code]] [--label LABEL] [--cores N]
    hbm archive ANALYSIS [--results results] [--output FILE]
    hbm verify ARCHIVE [--data DATA_FILE]

Comparisons are Snakemake targets: ``snakemake --cores 2 results/<analysis>/compare/<a>_vs_<b>.html``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hbm.errors import HbmError
from hbm.smk import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="hbm", description="Versions of hbm analyses: regenerate a past config, archive results, verify "
                                "an archive. Compare two versions with the Snakemake target "
                                "results/<analysis>/compare/<a>_vs_<b>.html.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regenerate", help="run a config version into results/versions/<label>/",
                       description="Run the analysis of a config file (or of the file at a git revision) into "
                                   "<results>/versions/<label>/<analysis>/, beside the current results.")
    p.add_argument("config", help="the config file (with --rev: its path in the repository)")
    p.add_argument("--rev", help="take the config file as it was at this git revision (tag, branch, commit)")
    p.add_argument("--with-code", action="store_true",
                   help="run the workflow and hbm code of --rev too, not today's (for reports made by older code)")
    p.add_argument("--label", help="the version's name (default: the revision, or the config's sha256[:12])")
    p.add_argument("--cores", default="all", help="passed to snakemake (default: all)")
    p.add_argument("--directory", default=".", help="the working directory with config/ and data/ (default: .)")
    p.add_argument("--results", default="results", help="the results folder (default: results)")

    p = sub.add_parser("archive", help="pack an analysis's config, data checksum, lock file and results",
                       description="Pack results/<analysis>/ with its config, data checksum and lock files into "
                                   "one reproducible .tar.gz with a sha256 manifest.")
    p.add_argument("analysis")
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument("--output", help="the archive file (default: <results>/archives/<analysis>-<digest>.tar.gz)")

    p = sub.add_parser("verify", help="check an archive against its manifest (and the data against its checksum)")
    p.add_argument("archive")
    p.add_argument("--data", help="a data file to check against the archived data checksum")

    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "regenerate":
            from hbm.versions import regenerate

            out = regenerate(args.config, rev=args.rev, with_code=args.with_code, label=args.label,
                             directory=args.directory, results=args.results, cores=args.cores)
            print(out / "report.html")
        elif args.command == "archive":
            from hbm.archive import archive

            print(archive(args.analysis, results=args.results, output=args.output))
        else:
            from hbm.archive import verify

            result = verify(args.archive, data=args.data)
            print(f"OK: {result['files']} files match the manifest; data {result['data']}; "
                  f"{len(result['environment'])} package versions differ from the lock")
    except HbmError as e:
        logging.getLogger("hbm").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
