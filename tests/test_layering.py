"""The layering of ``DESIGN.md``, as a test: each layer imports only its own layer and the ones below.

The table below lists the layers lowest first; a module belongs to the one
layer whose patterns match its dotted name (``*`` also matches dots).
Patterns name packages and modules, not today's files: a pattern that matches
no module yet (``registry.db.*`` before the data layer has its folder) is no
error, and a new module that no pattern matches fails
``test_it_places_every_module_in_one_layer`` until the table says where it
belongs. There is no list of exceptions: a wrong arrow is fixed in the code.

Imports are read from the source (``ast``), without importing anything: module
level, function level (a deliberate lazy import must point down too) and
``TYPE_CHECKING`` blocks alike. ``from package import name`` is an arrow to
``package.name`` when that is a module, else to ``package``.
"""

import ast
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("registry", "crow")

# What only the HTTP edge and above may know of: requests, responses, the management API's framework.
HTTP = ("django.http", "django.shortcuts", "django.views", "rest_framework")
# What views and the edge reach only through ``registry.storage``'s interface.
STORE_INTERNALS = ("boto3", "botocore", "registry.storage.*")


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]
    forbids: tuple[str, ...] = field(default=())  # imports this layer may not make, whatever their layer


LAYERS = (
    # Settings from the environment: read by everything, reading nothing of ours.
    Layer("configuration", ("crow.env", "crow.settings"), forbids=HTTP),
    # What every layer reports into: the metrics' definitions, a request's access-log record.
    Layer("instruments", ("registry.metrics", "registry.requestlog"), forbids=HTTP),
    # Grammar and data: what parses and validates without I/O; errors are data here too.
    Layer(
        "grammar",
        (
            "registry.references",
            "registry.mediatypes",
            "registry.errors",
            "registry.patterns",
            "registry.manifests",
        ),
        forbids=HTTP,
    ),
    # The blob-store interface and its backends: nothing of the registry above them.
    Layer("storage", ("registry.storage", "registry.storage.*"), forbids=HTTP),
    # The tables: nothing of HTTP or of the apps built on them.
    Layer(
        "models",
        (
            "registry.models",
            "registry.events.models",
            "registry.mirror.models",
            "registry.maintenance.models",
        ),
        forbids=(*HTTP, "registry.auth"),
    ),
    # The tables of the apps built on the registry's.
    Layer("app models", ("registry.auth.models",), forbids=HTTP),
    # The fast SQL behind the managers, one module per aggregate.
    Layer("data", ("registry.db", "registry.db.*"), forbids=HTTP),
    # Domain code: takes names, bytes and lengths (never a request), raises errors the edge renders.
    Layer(
        "domain",
        (
            "registry.uploads",
            "registry.claims",
            "registry.pushes",
            "registry.deletions",
            "registry.hashing",
            "registry.sparse",
            "registry.locks",
            "registry.readiness",
            "registry.progress",
            "registry.gc",
            "registry.gc.*",
            "registry.backup",
            "registry.backup.*",
            "registry.auth.accounts",
            "registry.auth.counters",
            "registry.auth.identity",
            "registry.auth.keys",
            "registry.auth.permissions",
            "registry.auth.ratelimit",
            "registry.auth.robots",
            "registry.auth.scopes",
            "registry.auth.tokens",
            "registry.events.audit",
            "registry.events.envelope",
            "registry.events.dispatch",
            "registry.events.delivery",
            "registry.events.worker",
            "registry.events.wakeups",
            "registry.events.retention",
            "registry.events.signals",
            "registry.mirror.environment",
            "registry.mirror.routing",
            "registry.mirror.usage",
            "registry.mirror.upstream",
            "registry.mirror.fetches",
            "registry.mirror.pulls",
            "registry.mirror.blobs",
            "registry.mirror.policy",
            "registry.maintenance",
            "registry.maintenance.readonly",
        ),
        forbids=HTTP,
    ),
    # The HTTP edge: what every endpoint needs, requests in, responses out.
    Layer(
        "edge",
        (
            "registry.endpoint",
            "registry.responses",
            "registry.bodies",
            "registry.ranges",
            "registry.etags",
            "registry.auth.access",
            "registry.auth.credentials",
            "registry.events.middleware",
            "crow.proxies",
        ),
        forbids=STORE_INTERNALS,
    ),
    # One module per resource: parse HTTP, call the layers below, render.
    Layer(
        "views",
        (
            "registry.views",
            "registry.views.*",
            "registry.urls",
            "registry.auth.views",
            "registry.auth.api",
            "registry.auth.serializers",
            "registry.events.api",
            "registry.events.serializers",
            "registry.mirror.api",
            "registry.mirror.serializers",
            "registry.maintenance.api",
        ),
        forbids=STORE_INTERNALS,
    ),
    # What Django and the server load: apps, checks, admin, commands, migrations, URLconf, WSGI.
    Layer(
        "site",
        (
            "registry.apps",
            "registry.checks",
            "registry.admin",
            "registry.console",
            "registry.console.*",
            "registry.templatetags",
            "registry.templatetags.*",
            "registry.management.*",
            "registry.migrations.*",
            "registry.auth.apps",
            "registry.auth.checks",
            "registry.auth.admin",
            "registry.auth.management.*",
            "registry.auth.migrations.*",
            "registry.events.admin",
            "crow.apps",
            "crow.urls",
            "crow.wsgi",
            "crow.asgi",
            "crow.fastpath",
            "crow.serve",
            "crow.webhooks",
            "crow.bridge",
            "crow.fastcache",
            "crow.notices",
            "crow.outages",
            "crow.earlyanswers",
            "crow.deadlines",
            "crow.pooled",
            "crow.recording",
            "crow.monitoring",
            "crow.logformat",
            "crow.start",
            "crow.healthcheck",
        ),
    ),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
    }


SOURCES = _sources()


def _is_empty(path: Path) -> bool:
    """A package marker: nothing but a docstring (``registry/__init__.py``); no layer needed."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports, anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in SOURCES else base


def _ours(name: str) -> str | None:
    """The module of ours that ``name`` is or lies in, if any."""
    while name and name not in SOURCES:
        name = name.rpartition(".")[0]
    return name or None


IMPORTS = {module: sorted(set(_imported(module, path))) for module, path in SOURCES.items()}
ARROWS = {
    module: sorted({target for name in names if (target := _ours(name)) and target != module})
    for module, names in IMPORTS.items()
}


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _layers_of(module: str) -> list[int]:
    return [rank for rank, layer in enumerate(LAYERS) if _matches(module, layer.modules)]


def _rank(module: str) -> int | None:
    ranks = _layers_of(module)
    return ranks[0] if len(ranks) == 1 else None


def test_it_places_every_module_in_one_layer() -> None:
    misplaced = {
        module: [LAYERS[rank].name for rank in _layers_of(module)]
        for module, path in SOURCES.items()
        if len(_layers_of(module)) != 1 and not _is_empty(path)
    }
    assert misplaced == {}, "give each module exactly one layer in LAYERS"


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_it_imports_only_from_its_own_layer_and_below(layer: Layer) -> None:
    rank = LAYERS.index(layer)
    upward = [
        f"{module} -> {target} ({LAYERS[_rank(target)].name})"
        for module in ARROWS
        if _rank(module) == rank
        for target in ARROWS[module]
        if (_rank(target) or 0) > rank
    ]
    assert not upward, "\n".join(["imports of a layer above:", *upward])


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer.forbids], ids=lambda layer: layer.name)
def test_it_keeps_out_what_the_layer_must_not_know(layer: Layer) -> None:
    rank = LAYERS.index(layer)
    forbidden = [
        f"{module} -> {name}"
        for module, names in IMPORTS.items()
        if _rank(module) == rank
        for name in names
        if _matches(name, layer.forbids) or _matches(name, tuple(f"{p}.*" for p in layer.forbids))
    ]
    assert not forbidden, "\n".join([f"imports the {layer.name} layer must not make:", *forbidden])


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in ARROWS[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                components.append(sorted([module, *component]))

    for module in ARROWS:
        if module not in index:
            visit(module)
    return components


def test_it_has_no_import_cycles() -> None:
    cycles = _cycles()
    assert not cycles, "\n".join(["modules that import each other:", *(" <-> ".join(c) for c in cycles)])


def test_it_reads_the_imports_it_judges() -> None:
    """The reader itself: relative, lazy and ``from package import module`` arrows all count."""
    assert "registry.patterns" in ARROWS["registry.models"]
    assert "registry.storage.filesystem" in ARROWS["registry.storage"]  # a lazy import, in a function
    assert "registry.references" in ARROWS["registry.urls"]
    assert _rank("registry.db.blobs") == _rank("registry.db.to_come")  # matched by its package pattern
