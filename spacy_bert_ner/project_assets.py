"""`assets`: `spacy project assets` for this project, with one line for a file that is missing
offline instead of a traceback.

spaCy's command (weasel's `fetch_asset`, reused here asset by asset) skips a file already in
place with the md5 of project.yml and downloads the others. Offline, its download raises the
HTTP library's connection error as a traceback at the first missing file; here every missing
file is named with where to put it.
"""

from pathlib import Path

from wasabi import msg

from .errors import BertNERError, one_line


def fetch_project_assets(project_dir: Path) -> None:
    """Fetch the project's assets, or raise naming each one that is still missing."""
    from weasel.cli.assets import fetch_asset
    from weasel.util import get_checksum, load_project_config

    project_dir = Path(project_dir)
    assets = load_project_config(project_dir).get("assets", [])
    missing = []
    for asset in assets:
        dest = Path(asset["dest"])
        checksum = asset.get("checksum")
        try:
            fetch_asset(project_dir, asset["url"], dest, checksum)
        except Exception as err:  # noqa: BLE001 - requests, httpx and OS errors alike
            problem = f"{type(err).__name__}: {one_line(err, 60)}"
        else:
            path = project_dir / dest
            if path.is_file() and (not checksum or get_checksum(path) == checksum):
                continue
            problem = "not there after the download, or with another md5"
        missing.append(f"{dest} (md5 {checksum}; {problem})")
    if missing:
        raise BertNERError(
            f"missing and not downloaded (offline?): {'; '.join(missing)}. Copy the CoNLL-2003 "
            f"files into {project_dir / 'assets'}/ (see assets/README.md), or run the workflow "
            "with --vars.data_dir DIR where they are"
        )
    msg.good(f"{len(assets)} asset(s) in place")
