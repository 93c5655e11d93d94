"""``{% dashboard as figures %}``: what the admin's home page shows (``registry.console.dashboard``)."""

from django import template

from registry.console import dashboard as figures

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context: template.Context) -> figures.Dashboard:
    return figures.read(context["request"])
