"""Catalogs on the Hugging Face hub: `hf://datasets/OWNER/NAME[@REVISION][/PATH]`.

The files come through `huggingface_hub` and its cache (so `HF_HUB_OFFLINE=1` reads what was
downloaded before, and `HF_TOKEN` opens private datasets). PATH may name one `.parquet` file
or a folder; without one, the whole dataset. A dataset is usually split into shards per split
(`data/train-00000-of-00003.parquet`, `train/0000.parquet`): the shards of the chosen split
(`--split`, by default the only one or `train`) are read one after the other, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import errors

from fashion_clip.errors import CatalogError, ConfigurationError
from fashion_clip.settings import load_settings

_LOCATION = re.compile(
    r"hf://datasets/(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[^/]+))?(?:/(?P<path>.*))?"
)
_SHARD = re.compile(r"(?P<split>[\w.]+?)-\d+-of-\d+\.parquet")


@dataclass(frozen=True)
class HubLocation:
    repo_id: str
    revision: str | None
    path: str  # inside the repository; "" for all of it


def parse_hub_location(location: str, revision: str | None = None) -> HubLocation:
    """`hf://datasets/OWNER/NAME[@REV][/PATH]`; `revision` (--revision) wins over `@REV`."""
    match = _LOCATION.fullmatch(location.rstrip("/"))
    if match is None:
        raise ConfigurationError(
            f"{location}: a hub catalog is hf://datasets/OWNER/NAME, optionally followed by "
            "@REVISION and /PATH to a .parquet file or folder in it"
        )
    return HubLocation(match["repo"], revision or match["rev"], (match["path"] or "").strip("/"))


def hub_files(
    location: str, *, split: str | None = None, revision: str | None = None
) -> list[Path]:
    """The local (cached) Parquet files of the hub catalog at `location`, in reading order."""
    where = parse_hub_location(location, revision)
    token = load_settings().hf_token  # HF_TOKEN from the environment or .env, as for models
    try:
        if where.path.endswith(".parquet"):
            return [Path(_download_file(where, token))]
        folder = Path(
            huggingface_hub.snapshot_download(
                where.repo_id, repo_type="dataset", revision=where.revision, token=token,
                allow_patterns=[f"{where.path}/**.parquet" if where.path else "**.parquet"],
            )
        )  # fmt: skip
    except errors.RepositoryNotFoundError:
        raise CatalogError(
            f"{location}: no such dataset on the hub, or it is private (set HF_TOKEN)"
        ) from None
    except errors.RevisionNotFoundError:
        raise CatalogError(f"{location}: the dataset has no revision {where.revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise CatalogError(
            f"{location}: not in the Hugging Face cache, and the hub cannot be reached "
            "(offline, HF_HUB_OFFLINE=1, or no network); download it once with network"
        ) from None
    except (errors.HfHubHTTPError, OSError) as exc:
        raise CatalogError(f"{location}: cannot fetch it from the hub: {exc}") from None
    return _split_files(location, folder, where.path, split)


def _download_file(where: HubLocation, token: str | None) -> str:
    return huggingface_hub.hf_hub_download(
        where.repo_id, where.path, repo_type="dataset", revision=where.revision, token=token
    )


def _split_files(location: str, folder: Path, inside: str, split: str | None) -> list[Path]:
    """The Parquet files of `split` under `folder / inside`, sorted by their path."""
    base = folder / inside if inside else folder
    files = sorted(p for p in base.rglob("*.parquet") if p.is_file())
    if not files:
        raise CatalogError(f"{location}: holds no .parquet files")
    splits = {_split_of(p.relative_to(base)) for p in files} - {None}
    if split is None and len(splits) > 1:
        if "train" not in splits:
            raise CatalogError(
                f"{location}: has splits {', '.join(sorted(splits))}; choose one with --split"
            )
        split = "train"
    if split is not None:
        files = [p for p in files if _split_of(p.relative_to(base)) == split]
        if not files:
            found = ", ".join(sorted(splits)) or "none"
            raise CatalogError(f"{location}: has no split {split!r} (splits: {found})")
    return files


def _split_of(relative: Path) -> str | None:
    """`train` for `data/train-00000-of-00002.parquet` and for `train/0000.parquet`."""
    shard = _SHARD.fullmatch(relative.name)
    if shard:
        return shard["split"]
    return relative.parent.name or None
