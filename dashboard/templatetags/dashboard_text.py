"""Attacker text (user names from logs) shown as what it is.

Escaping keeps markup out; this keeps out the invisible: a user name with a right-to-left
override (`admin\u202etxt.exe`) would display as `adminexe.txt`, and zero-width or control
characters hide parts of a name. Each such character is shown as [U+XXXX], and the text is
isolated from its neighbours (<bdi>; unicode-bidi: isolate in the CSS).
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import format_html

from collector.contract import is_address

register = template.Library()

# Control characters (C0, C1) and the format characters that change what a reader sees:
# soft hyphen, bidirectional marks, embeddings, overrides and isolates, zero-width characters,
# word joiners, the byte order mark, interlinear annotations and tag characters.
INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def visible(text: str) -> str:
    """The text with every invisible character written out as [U+XXXX]."""
    return INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


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
