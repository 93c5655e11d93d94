"""Retention rules: the tags ``manage.py gc`` removes by itself, and when untagged manifests go.

A ``RetentionRule`` (edited in the admin) covers the repositories its
pattern names (``team/app``, ``team/*``, ``*``). ``plan`` works out what the
enabled rules would remove, without changing anything (what ``gc --dry-run``
shows); ``apply`` deletes those tags. Among the tags a rule manages (their
name matches ``tag_pattern`` in full), newest first by when they were last
pushed, a tag goes when it is beyond the newest ``keep_latest`` *and* older
than ``max_age_days`` (or by the one limit the rule sets), unless the
``protected_tags`` of any rule covering the repository matches it. Where
rules disagree on ``untagged_after_days``, the longest wins.

A tag deleted here only loses its name. Its manifest, now untagged, goes in
the same ``gc`` run when untagged manifests are collected there (``gc
--untagged``, or ``untagged_after_days`` on a rule covering the repository,
counted from the manifest's push), and its blobs with it, if nothing else
keeps them.
"""

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from registry import patterns
from registry.events import audit
from registry.events.models import DELETE_TAG
from registry.models import Repository, RetentionRule, Tag

log = logging.getLogger(__name__)
BATCH = 500  # repositories per statement


@dataclass(frozen=True)
class ExpiredTag:
    id: int
    repository: str
    name: str
    manifest_id: int
    updated: datetime
    rule: int

    def __str__(self) -> str:
        return f"{self.repository}:{self.name}"


@dataclass
class RetentionPlan:
    tags: list[ExpiredTag] = field(default_factory=list)
    # Repository id -> untagged manifests older than this go.
    untagged_after: dict[int, timedelta] = field(default_factory=dict)

    @property
    def tag_ids(self) -> set[int]:
        return {tag.id for tag in self.tags}


@dataclass(frozen=True)
class _Rule:
    id: int
    pattern: str
    tags: re.Pattern[str]
    protected: re.Pattern[str] | None
    keep_latest: int | None
    max_age: timedelta | None
    untagged_after: timedelta | None

    @classmethod
    def compile(cls, rule: RetentionRule) -> "_Rule | None":
        try:
            tags = re.compile(rule.tag_pattern)
            protected = re.compile(rule.protected_tags) if rule.protected_tags else None
        except re.error as exc:
            log.warning("retention rule %s is skipped: bad regular expression: %s", rule.pk, exc)
            return None
        return cls(
            id=rule.pk,
            pattern=rule.pattern,
            tags=tags,
            protected=protected,
            keep_latest=rule.keep_latest,
            max_age=_days(rule.max_age_days),
            untagged_after=_days(rule.untagged_after_days),
        )


def _days(days: int | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)


def plan(now: datetime, repository: str | None = None) -> RetentionPlan:
    """What the enabled rules remove at ``now`` (in ``repository`` only, if given)."""
    rules = [rule for rule in map(_Rule.compile, RetentionRule.objects.filter(enabled=True)) if rule]
    result = RetentionPlan()
    if not rules:
        return result
    repositories = Repository.objects.filter(patterns.q([rule.pattern for rule in rules]))
    if repository is not None:
        repositories = repositories.filter(name=repository)
    managed: dict[int, tuple[str, list[_Rule]]] = {}  # repositories whose tags some rule may expire
    for repository_id, name in repositories.order_by("name").values_list("id", "name"):
        covering = [rule for rule in rules if patterns.matches(rule.pattern, name)]
        untagged = [rule.untagged_after for rule in covering if rule.untagged_after is not None]
        if untagged:
            result.untagged_after[repository_id] = max(untagged)
        if any(rule.keep_latest is not None or rule.max_age is not None for rule in covering):
            managed[repository_id] = (name, covering)
    tags = _tags(list(managed))
    for repository_id, (name, covering) in managed.items():  # by name
        result.tags += _expired_tags(name, tags.get(repository_id, []), covering, now)
    return result


def _tags(repositories: list[int]) -> dict[int, list[tuple[int, str, int, datetime]]]:
    """Each repository's tags, newest first: a statement per batch of repositories, not per repository."""
    found: dict[int, list[tuple[int, str, int, datetime]]] = defaultdict(list)
    for start in range(0, len(repositories), BATCH):
        rows = (
            Tag.objects.filter(repository_id__in=repositories[start : start + BATCH])
            .order_by("repository_id", "-updated", "-id")
            .values_list("repository_id", "id", "name", "manifest_id", "updated")
        )
        for repository_id, *tag in rows.iterator(chunk_size=10_000):
            found[repository_id].append(tuple(tag))
    return found


def _expired_tags(
    name: str, tags: list[tuple[int, str, int, datetime]], rules: list[_Rule], now: datetime
) -> list[ExpiredTag]:
    protected = [rule.protected for rule in rules if rule.protected is not None]
    expired: dict[int, ExpiredTag] = {}
    for rule in rules:
        managed = [tag for tag in tags if rule.tags.fullmatch(tag[1])]
        for position, (tag_id, tag, manifest_id, updated) in enumerate(managed):
            limits = []
            if rule.keep_latest is not None:
                limits.append(position >= rule.keep_latest)
            if rule.max_age is not None:
                limits.append(updated < now - rule.max_age)
            if not limits or not all(limits) or any(p.fullmatch(tag) for p in protected):
                continue
            expired.setdefault(tag_id, ExpiredTag(tag_id, name, tag, manifest_id, updated, rule.id))
    return sorted(expired.values(), key=lambda tag: tag.name)


def apply(plan: RetentionPlan) -> list[ExpiredTag]:
    """Delete the plan's tags; one that a push moved since the plan was made stays."""
    deleted = []
    for tag in plan.tags:
        with transaction.atomic():
            gone, _ = Tag.objects.filter(id=tag.id, manifest_id=tag.manifest_id, updated=tag.updated).delete()
            if gone:
                audit.record(
                    DELETE_TAG,
                    actor=audit.RETENTION,
                    repository=tag.repository,
                    reference=tag.name,
                    detail={"rule": tag.rule},
                )
                deleted.append(tag)
    return deleted
