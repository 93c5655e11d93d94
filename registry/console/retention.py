"""Retention rules: the one thing here an operator writes; ``manage.py gc`` applies them."""

from django.contrib import admin


class RetentionRuleAdmin(admin.ModelAdmin):
    """Rules that ``manage.py gc`` applies: preview them with ``manage.py gc --dry-run``."""

    list_display = [
        "pattern",
        "tag_pattern",
        "keep_latest",
        "max_age_days",
        "untagged_after_days",
        "protected_tags",
        "enabled",
    ]
    list_filter = ["enabled"]
    search_fields = ["pattern", "tag_pattern"]
    readonly_fields = ["created"]
