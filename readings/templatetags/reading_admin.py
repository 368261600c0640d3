"""{% reading_date_hierarchy cl %}: the admin's date hierarchy bar, from index seeks (readings.dates)."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from readings import dates

register = template.Library()


def _date_hierarchy(cl) -> dict:
    return dates.date_hierarchy(cl, cl.timestamp_span)


@register.tag(name="reading_date_hierarchy")
def reading_date_hierarchy_tag(parser, token):
    # Django's own template (date_hierarchy.html) and its overrides draw the bar.
    return InclusionAdminNode(
        parser, token, func=_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )
