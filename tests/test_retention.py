"""Retention rules: gc expires tags by count and age, spares protected ones, drops old untagged manifests."""

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from registry.gc import collect as gc
from registry.gc import retention
from registry.models import Manifest, RetentionRule, Tag
from tests import oci

pytestmark = pytest.mark.django_db

NAME = "team/app"


def push_tags(client: Client, name: str, *tags: str, days_apart: int = 1) -> None:
    """One image per tag; the first tag is the newest, each next one ``days_apart`` days older."""
    for age, tag in enumerate(tags):
        oci.push_image(client, name, oci.image(f"{name}-{tag}"), tag)
        Tag.objects.filter(repository__name=name, name=tag).update(
            updated=timezone.now() - timedelta(days=age * days_apart)
        )


def tags(name: str = NAME) -> set[str]:
    return set(Tag.objects.filter(repository__name=name).values_list("name", flat=True))


def rule(**fields: Any) -> RetentionRule:
    return RetentionRule.objects.create(**{"pattern": NAME, **fields})


def collect(**options: Any) -> gc.GcReport:
    return gc.collect(gc.GcOptions(grace_period=timedelta(0), **options))


def test_it_keeps_the_newest_tags_matching_the_pattern(client: Client) -> None:
    push_tags(client, NAME, "v5", "v4", "v3", "v2", "v1", "latest")
    rule(tag_pattern=r"v\d+", keep_latest=2)
    assert collect().tags == 3
    assert tags() == {"v5", "v4", "latest"}


def test_it_never_removes_a_protected_tag(client: Client) -> None:
    push_tags(client, NAME, "v3", "v2", "v1", "stable")
    rule(keep_latest=1, protected_tags="stable|v1")
    RetentionRule.objects.create(pattern="team/*", max_age_days=1)  # protection holds against every rule
    collect()
    assert tags() == {"v3", "v1", "stable"}


def test_it_deletes_tags_older_than_the_age_limit(client: Client) -> None:
    push_tags(client, NAME, "new", "week", "month", days_apart=10)
    rule(max_age_days=15)
    collect()
    assert tags() == {"new", "week"}


def test_the_newest_tags_stay_whatever_their_age(client: Client) -> None:
    push_tags(client, NAME, "a", "b", "c", "d", days_apart=30)
    rule(keep_latest=3, max_age_days=7)
    collect()
    assert tags() == {"a", "b", "c"}


def test_a_namespace_rule_covers_the_repositories_below_it_only(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    push_tags(client, "other/app", "new", "old", days_apart=60)
    RetentionRule.objects.create(pattern="team/*", max_age_days=30)
    collect()
    assert tags(NAME) == {"new"}
    assert tags("other/app") == {"new", "old"}


def test_a_disabled_rule_does_nothing(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    rule(max_age_days=1, enabled=False)
    assert collect().tags == 0


def test_expired_tags_free_their_manifests_and_blobs_in_the_same_run(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    rule(max_age_days=30)
    report = collect(untagged=True)
    assert (report.tags, report.manifests, report.blobs) == (1, 1, 2)
    assert oci.get_manifest(client, NAME, "new").status_code == 200


def test_it_deletes_untagged_manifests_after_the_rules_delay_without_untagged(client: Client) -> None:
    old, recent = oci.image("old"), oci.image("recent")
    oci.push_image(client, NAME, old)
    oci.push_image(client, NAME, recent)
    Manifest.objects.filter(digest=old.manifest.digest).update(created=timezone.now() - timedelta(days=10))
    rule(untagged_after_days=7)
    report = collect()
    assert report.manifests == 1
    assert set(Manifest.objects.values_list("digest", flat=True)) == {recent.manifest.digest}


def test_a_dry_run_previews_the_rules(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    rule(max_age_days=30)
    out = StringIO()
    call_command("gc", "--dry-run", "--untagged", "--grace-period", "0", stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    assert f"tag {NAME}:old (retention rule {RetentionRule.objects.get().pk})" in lines
    assert lines[-1].startswith("gc would delete 1 tags, 1 manifests, 2 blobs")
    assert tags() == {"new", "old"}


def test_a_tag_pushed_again_after_the_plan_stays(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    rule(max_age_days=30)
    plan = retention.plan(timezone.now())
    assert [str(tag) for tag in plan.tags] == [f"{NAME}:old"]
    oci.push_manifest(client, NAME, "old", oci.image(f"{NAME}-old").manifest)  # moves `updated`
    assert retention.apply(plan) == []
    assert tags() == {"new", "old"}


def test_a_rule_must_do_something_and_take_valid_patterns() -> None:
    with pytest.raises(ValidationError, match="does nothing"):
        RetentionRule(pattern=NAME).full_clean()
    with pytest.raises(ValidationError) as raised:
        RetentionRule(pattern="Team/App", tag_pattern="(", keep_latest=1).full_clean()
    assert set(raised.value.message_dict) == {"pattern", "tag_pattern"}


def test_a_rule_with_a_broken_pattern_in_the_database_is_skipped(client: Client) -> None:
    push_tags(client, NAME, "new", "old", days_apart=60)
    rule(tag_pattern="(", max_age_days=1)
    assert collect().tags == 0


def test_the_admin_lists_and_adds_rules(admin_client: Client) -> None:
    rule(keep_latest=5)
    assert admin_client.get("/admin/registry/retentionrule/").status_code == 200
    response = admin_client.post(
        "/admin/registry/retentionrule/add/",
        {
            "pattern": "team/*",
            "tag_pattern": ".*",
            "max_age_days": "30",
            "protected_tags": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content
    assert RetentionRule.objects.filter(pattern="team/*", max_age_days=30).exists()
