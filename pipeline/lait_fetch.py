"""Where image bytes come from when the WARC does not hold them: pluggable fetchers.

A ``Fetcher`` answers ``handles(url)`` and ``fetch(url) -> bytes`` (raising ``FetchError`` with
a short reason). ``build_fetcher`` chains, in order:

- ``LocalFetcher``: ``--url-map PREFIX=FOLDER`` serves URLs that start with ``PREFIX`` from
  ``FOLDER`` (the rest of the URL path, query dropped, is the relative file path), and
  ``file://`` URLs are read when they lie under one of the allowed local roots. Paths that
  escape their folder (``..``) are refused, so a web page cannot make the job read other files;
- ``HttpFetcher`` (only with ``--allow-network``): ``urllib`` with a timeout and a size cap.

Fetchers are built in ``DoFn.setup()``, once per worker; they hold no open resources.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

USER_AGENT = "msp-lait/0.1 (research corpus builder)"


class FetchError(Exception):
    """An image could not be fetched; ``str(err)`` is the reject reason."""


class Fetcher(ABC):
    """Fetch image bytes by URL."""

    @abstractmethod
    def handles(self, url: str) -> bool:
        """True if this fetcher is responsible for ``url``."""

    @abstractmethod
    def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raise ``FetchError`` with a short reason otherwise."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


class LocalFetcher(Fetcher):
    """URL-prefix -> folder mapping plus ``file://`` URLs under allowed roots."""

    def __init__(
        self, url_map: list[tuple[str, str]], local_roots: list[str], max_bytes: int
    ) -> None:
        self.url_map = [(prefix, Path(folder).resolve()) for prefix, folder in url_map]
        self.roots = [Path(r).resolve() for r in local_roots] + [f for _, f in self.url_map]
        self.max_bytes = max_bytes

    def handles(self, url: str) -> bool:
        return url.startswith("file://") or any(url.startswith(p) for p, _ in self.url_map)

    def _path(self, url: str) -> Path:
        for prefix, folder in self.url_map:
            if url.startswith(prefix):
                rel = unquote(urlsplit(url[len(prefix) :]).path).lstrip("/")
                path = (folder / rel).resolve()
                if not _inside(path, folder):
                    raise FetchError("fetch: path escapes the mapped folder")
                return path
        path = Path(unquote(urlsplit(url).path)).resolve()
        if not any(_inside(path, root) for root in self.roots):
            raise FetchError("fetch: local file outside the allowed roots")
        return path

    def fetch(self, url: str) -> bytes:
        path = self._path(url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FetchError(f"too large: {size} bytes")
            return path.read_bytes()
        except FileNotFoundError:
            raise FetchError("fetch: not found") from None
        except IsADirectoryError:
            raise FetchError("fetch: not a file") from None
        except PermissionError:
            raise FetchError("fetch: permission denied") from None


class HttpFetcher(Fetcher):
    """Plain HTTP(S) GET with a timeout and a size cap (used only when network is allowed)."""

    def __init__(self, timeout: float, max_bytes: int) -> None:
        self.timeout, self.max_bytes = timeout, max_bytes

    def handles(self, url: str) -> bool:
        return urlsplit(url).scheme in ("http", "https")

    def fetch(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"fetch: http status {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(f"fetch: {type(exc).__name__}") from None
        if len(data) > self.max_bytes:
            raise FetchError(f"too large: over {self.max_bytes} bytes")
        return data


class ChainFetcher(Fetcher):
    """The first fetcher that handles a URL fetches it."""

    def __init__(self, fetchers: list[Fetcher]) -> None:
        self.fetchers = fetchers

    def handles(self, url: str) -> bool:
        return any(f.handles(url) for f in self.fetchers)

    def fetch(self, url: str) -> bytes:
        for fetcher in self.fetchers:
            if fetcher.handles(url):
                return fetcher.fetch(url)
        raise FetchError("fetch: no source for this URL (not in the WARC, no --url-map)")


def parse_url_map(entries: list[str]) -> list[tuple[str, str]]:
    """``["PREFIX=FOLDER", ...]`` -> ``[(PREFIX, FOLDER), ...]``, longest prefix first."""
    pairs = []
    for entry in entries:
        prefix, sep, folder = entry.partition("=")
        if not sep or not prefix or not folder:
            raise ValueError(f"--url-map wants PREFIX=FOLDER, got {entry!r}")
        pairs.append((prefix, folder))
    return sorted(pairs, key=lambda p: -len(p[0]))


def build_fetcher(
    url_map: list[str],
    local_roots: list[str],
    *,
    allow_network: bool,
    timeout: float,
    max_bytes: int,
) -> Fetcher:
    """The default chain: local mapping and files, then the network if allowed."""
    fetchers: list[Fetcher] = [LocalFetcher(parse_url_map(url_map), local_roots, max_bytes)]
    if allow_network:
        fetchers.append(HttpFetcher(timeout, max_bytes))
    return ChainFetcher(fetchers)
