"""Attacker text (user names from logs) shown as what it is.

Escaping keeps markup out; this keeps out the invisible: a user name with a right-to-left
override (`admin\u202etxt.exe`) would display as `adminexe.txt`, and zero-width or control
characters hide parts of a name. Each such character is shown as [U+XXXX], and the text is
isolated from its neighbours (<bdi>; unicode-bidi: isolate in the CSS).
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from alerting.formatting import visible
from collector.contract import is_address

register = template.Library()

# The characters written out are those of the alerts' email and Slack text too: control
# characters (C0, C1) and the format characters that change what a reader sees (soft hyphen,
# bidirectional marks, embeddings, overrides and isolates, zero-width characters, word joiners,
# the byte order mark, interlinear annotations and tag characters); one list, in alerting.formatting.


@register.filter(name="visible")
def visible_filter(text) -> str:
    """{{ name|visible }}: escaped, invisible characters shown, isolated in a <bdi>."""
    return format_html("<bdi>{}</bdi>", visible(str(text)))


@register.filter(name="source")
def source_filter(text) -> str:
    """{{ source.ip|source }}: as `visible`, and marked when it is a host name, not an address
    (PAM's rhost where sshd wrote none: chosen by whoever controls the PTR record)."""
    text = str(text)
    if is_address(text):
        return visible_filter(text)
    return format_html(
        '<bdi>{}</bdi> <span class="tag" title="A host name from PAM, not an address sshd wrote">host name</span>',
        visible(text),
    )
