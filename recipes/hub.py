"""Pushing an exported model folder to the Hugging Face Hub (`kollm export --push REPO [--dry-run]`).

The dry run lists exactly what `huggingface_hub.HfApi.upload_folder` would send: every file's name,
size and sha256, and the repository URL. The real upload is huggingface_hub's own code; it is not
tested against the Hub here (no network to it), only up to that call.
"""

from __future__ import annotations

import hashlib
import os
import re

from kollm.core.errors import KollmError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_repo_id(repo: str) -> None:
    if not REPO_ID.match(repo) or ".." in repo or repo.endswith(".git"):
        raise KollmError(f"--push {repo!r}: a Hub repository id is owner/name (letters, digits, - _ .)")


def upload_plan(folder: str) -> list[dict]:
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise KollmError(f"{folder}: not an exported model folder (no config.json); run the export stage first")
    plan = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            plan.append({"name": name, "bytes": os.path.getsize(path), "sha256": digest.hexdigest()})
    return plan


def push(folder: str, repo: str, dry_run: bool = True, private: bool = False) -> dict:
    check_repo_id(repo)
    plan = upload_plan(folder)
    result = {
        "repo": repo,
        "url": f"https://huggingface.co/{repo}",
        "folder": os.path.abspath(folder),
        "files": plan,
        "dry_run": dry_run,
    }
    if dry_run:
        return result
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=folder, repo_id=repo, repo_type="model", commit_message="kollm export")
    result["commit"] = str(getattr(commit, "oid", commit))
    return result
