"""What the console reads out of manifests and image configs: platforms, layers, config summaries.

A manifest's bytes are in the database; an image's config is a blob in the
store. Both are immutable (addressed by digest), so a config's summary is
cached by digest for as long as the cache keeps it, and a page of tags reads
each config at most once.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from registry import mediatypes
from registry.models import Blob
from registry.storage import blob_store

IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
MAX_CONFIG_READ = 1024 * 1024  # bigger configs are not summarised (real ones are a few KiB)
_CACHE_PREFIX = "crow-console-config:"
_CACHE_SECONDS = 24 * 3600


def document(content: bytes | memoryview) -> dict[str, Any]:
    """The manifest's JSON, or an empty document if it is not a JSON object."""
    try:
        parsed = json.loads(bytes(content))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def pretty(content: bytes | memoryview) -> str:
    try:
        return json.dumps(json.loads(bytes(content)), indent=2)
    except ValueError:
        return bytes(content).decode("utf-8", "replace")


def kind(media_type: str, artifact_type: str) -> str:
    """``image``, ``index`` or the artifact type (signatures, SBOMs, attestations, charts...)."""
    if artifact_type and artifact_type not in IMAGE_CONFIGS:  # without artifactType, the config's type
        return artifact_type
    return "index" if media_type in mediatypes.INDEXES else "image"


def platform_name(platform: Any) -> str:
    """``linux/arm64/v8`` from an index entry's or a config's os, architecture and variant."""
    if not isinstance(platform, dict):
        return ""
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(str(part) for part in parts if part)


def index_platforms(manifest: dict[str, Any]) -> list[str]:
    """The platforms an index names, in order, without buildx's attestation entries (unknown/unknown)."""
    names = [platform_name(entry.get("platform")) for entry in _entries(manifest, "manifests")]
    return [name for name in names if name and name != "unknown/unknown"]


def children(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return _entries(manifest, "manifests")


def layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return _entries(manifest, "layers")


def config_descriptor(manifest: dict[str, Any]) -> dict[str, Any] | None:
    config = manifest.get("config")
    return config if isinstance(config, dict) and isinstance(config.get("digest"), str) else None


def _entries(manifest: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = manifest.get(key)
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("digest"), str)]


@dataclass(frozen=True)
class ConfigSummary:
    """What an operator wants of an image config; ``readable`` is False when it could not be read."""

    readable: bool
    platform: str = ""
    created: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    history: int = 0


UNREADABLE = ConfigSummary(readable=False)


def summarise(config: dict[str, Any]) -> ConfigSummary:
    runtime = config.get("config") if isinstance(config.get("config"), dict) else {}
    history = config.get("history")
    return ConfigSummary(
        readable=True,
        platform=platform_name(config),
        created=str(config.get("created") or ""),
        entrypoint=_strings(runtime.get("Entrypoint")),
        cmd=_strings(runtime.get("Cmd")),
        env=_strings(runtime.get("Env")),
        labels={str(k): str(v) for k, v in (runtime.get("Labels") or {}).items()}
        if isinstance(runtime.get("Labels"), dict)
        else {},
        history=len(history) if isinstance(history, list) else 0,
    )


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def config_summaries(descriptors: list[dict[str, Any]]) -> dict[str, ConfigSummary]:
    """The summaries of the image configs ``descriptors`` name, by digest: one query for those not cached."""
    wanted = {
        d["digest"]: d for d in descriptors if d.get("mediaType") in IMAGE_CONFIGS and _small(d.get("size"))
    }
    found = cache.get_many([_CACHE_PREFIX + digest for digest in wanted]) if wanted else {}
    summaries = {key.removeprefix(_CACHE_PREFIX): summary for key, summary in found.items()}
    missing = [digest for digest in wanted if digest not in summaries]
    if missing:
        read = {blob.digest: _read(blob) for blob in Blob.objects.filter(digest__in=missing)}
        cache.set_many(
            {_CACHE_PREFIX + digest: summary for digest, summary in read.items() if summary.readable},
            _CACHE_SECONDS,
        )
        summaries.update(read)
    return summaries


def _small(size: Any) -> bool:
    return isinstance(size, int) and 0 <= size <= MAX_CONFIG_READ


def _read(blob: Blob) -> ConfigSummary:
    if blob.size > MAX_CONFIG_READ:
        return UNREADABLE
    try:
        data = b"".join(blob_store().read(blob.key))
        parsed = json.loads(data)
    except (OSError, ValueError):
        return UNREADABLE
    except Exception:  # noqa: BLE001 - a store error (S3 down, object gone) must not break the page
        return UNREADABLE
    return summarise(parsed) if isinstance(parsed, dict) else UNREADABLE
