"""``{% dashboard as figures %}``: what the admin's home page shows (``registry.console.dashboard``);
``{% read_only_state as mode %}``: whether the registry is read-only (``registry.maintenance``)."""

from django import template

from registry.console import dashboard as figures
from registry.maintenance import readonly

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context: template.Context) -> figures.Dashboard:
    return figures.read(context["request"])


@register.simple_tag
def read_only_state() -> readonly.State:
    """``{% read_only_state as mode %}``: the read-only mode, for the banner on every admin page."""
    return readonly.state()
