"""Hugging Face Hub ids (`facebook/sam-audio-large`) as checkpoint sources.

A Hub repository holding the release layout is downloaded into (or found in) the local Hub
cache with huggingface_hub.snapshot_download, which honours the environment: HF_TOKEN (the
access token; the release is gated), HF_HOME / HF_HUB_CACHE (where the cache lives) and
HF_HUB_OFFLINE=1 (no network: the cached snapshot of `revision` or of `main`). Gated,
unauthorised or missing repositories are one-line errors saying what to do.
"""

from __future__ import annotations

import re

from samaudio_jax.paths import as_path, is_url

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def looks_like_hub_id(source) -> bool:
    """True for "org/name" that is not a URL and not an existing local path."""
    text = str(source)
    if is_url(text) or not _HUB_ID.match(text) or text.endswith((".", "..")):
        return False
    return not as_path(text).exists()


def snapshot(repo_id: str, revision: str | None = None) -> str:
    """The local directory of `repo_id` at `revision` (a branch, tag or commit; main if None)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/{repo_id}"
    try:
        return snapshot_download(repo_id, revision=revision)
    except GatedRepoError:
        raise ValueError(
            f"{repo_id}: the repository is gated: accept its licence on {page} (logged in), "
            "then set HF_TOKEN to an access token of that account (or run `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise ValueError(f"{repo_id}: no revision {revision!r} on the Hub") from None
    except RepositoryNotFoundError:
        raise ValueError(
            f"{repo_id}: not found on the Hub, or not visible without a token: check the id, "
            f"accept the licence on {page} if it is gated, and set HF_TOKEN"
        ) from None
    except LocalEntryNotFoundError:
        raise ValueError(
            f"{repo_id}: not in the local Hub cache (revision {revision or 'main'}) and the Hub "
            "cannot be reached (HF_HUB_OFFLINE=1 or no network): download it once online"
        ) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise ValueError(
                f"{repo_id}: the Hub refused access (HTTP {status}): accept the licence on "
                f"{page} and set HF_TOKEN to an access token of that account"
            ) from None
        raise ValueError(f"{repo_id}: {str(err).splitlines()[0]}") from None
