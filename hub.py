"""Resolve a model or dataset name to a local directory: a directory is used as is, anything else is a
Hugging Face hub id fetched with `snapshot_download` (only the files the caller asks for).

Set HF_HUB_OFFLINE=1 to read from the local HF cache without touching the network (huggingface_hub
reads it at import time, so set it before Python starts).
"""
import os

from inputs import InputNotFound


def local_dir(name_or_path: str, allow_patterns: list[str], repo_type: str = "model") -> str:
    """Return a local directory holding `name_or_path`'s files.

    `snapshot_download` rejects local paths, so a directory is checked first. A path that looks local
    (starts with '.', '/' or '~', or exists as a file) but is not a directory is an error, not a hub id.
    """
    expanded = os.path.expanduser(name_or_path)
    if os.path.isdir(expanded):
        return expanded
    if os.path.exists(expanded) or name_or_path.startswith((".", "/", "~")):
        what = "no such file or directory" if not os.path.exists(expanded) else "not a directory"
        raise InputNotFound(name_or_path, f"{what} (expected a local directory or a hub {repo_type} id)")
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(name_or_path, repo_type=repo_type, allow_patterns=allow_patterns)
    except Exception as e:  # the hub's errors vary by version; name what was asked for
        raise InputNotFound(name_or_path, f"not a local directory, and fetching it as a hub {repo_type} id "
                            f"failed ({type(e).__name__}: {e})") from None
