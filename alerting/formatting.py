"""What an alert says on each channel. Pure Python, no Django: a dict of the alert's fields in,
bytes or text out.

User names and source addresses come from logs an attacker writes. They stay data: a JSON string
in webhooks, plain text (never HTML) in email, and in Slack escaped and inside code spans, where
nothing becomes a mention (@channel, <!here>) or a link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

SIGNATURE_HEADER = "X-Alpha-Signature"

# The webhook body's fields, in this order (a contract: receivers parse it).
WEBHOOK_FIELDS = ("rule", "severity", "summary", "address", "user", "hosts", "first_seen", "last_seen",
                  "count", "url")  # fmt: skip

# Control and format characters that hide or reorder what a reader sees (the dashboard's
# `visible` filter writes the same ones out in pages).
INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)
SUBJECT_LENGTH = 150


def visible(text: str) -> str:
    """Every invisible character (newlines too) written out as [U+XXXX]."""
    return INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def webhook_body(alert: dict) -> bytes:
    """The generic webhook's JSON body, the exact bytes that are signed."""
    return json.dumps({name: alert[name] for name in WEBHOOK_FIELDS}, ensure_ascii=False).encode()


def signature(body: bytes, secret: str) -> str:
    """X-Alpha-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_code(text: str, limit: int = 500) -> str:
    """Attacker text for Slack: inside a code span, with &, < and > escaped as Slack requires
    (so `<!channel>` or `<http://x|y>` is shown, not acted on), no backtick to close the span,
    no newline, and '@' followed by a word joiner so that no client reads a mention."""
    text = visible(text)[:limit]
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("`", "\u02cb").replace("@", "@\u2060")
    return f"`{text}`" if text else "–"


def slack_body(alert: dict) -> bytes:
    """A Slack-compatible incoming webhook's body: {"text": ...}. Only the rule's name and the
    alert's link are ours; everything else is shown as code."""
    lines = [
        f"*Alpha: {alert['rule']}* ({alert['severity']})",
        slack_code(alert["summary"], 1500),
        f"Address: {slack_code(alert['address'])}  User: {slack_code(alert['user'])}  "
        f"Hosts: {slack_code(', '.join(alert['hosts']))}  Seen {alert['count']} time(s), "
        f"{alert['first_seen']} to {alert['last_seen']}",
        f"<{slack_url(alert['url'])}|Open the alert in Alpha>",
    ]
    body = {"text": "\n".join(lines), "unfurl_links": False, "unfurl_media": False}
    return json.dumps(body, ensure_ascii=False).encode()


def slack_url(url: str) -> str:
    # Our own URL, but a link's target must not contain what ends it.
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def email_subject(alert: dict) -> str:
    """One line (a header: newlines would be refused), attacker text made visible."""
    subject = f"[Alpha] {alert['rule']} ({alert['severity']}): {visible(alert['key'])}"
    return subject[:SUBJECT_LENGTH]


def email_text(alert: dict) -> str:
    """The plain-text body: attacker text as text, invisible characters written out."""
    return "\n".join(
        [
            f"{alert['rule']} ({alert['severity']})",
            "",
            visible(alert["summary"]),
            "",
            f"Address:    {visible(alert['address']) or '-'}",
            f"User:       {visible(alert['user']) or '-'}",
            f"Hosts:      {', '.join(alert['hosts']) or '-'}",
            f"First seen: {alert['first_seen']}",
            f"Last seen:  {alert['last_seen']}",
            f"Seen:       {alert['count']} time(s)",
            "",
            f"In Alpha: {alert['url']}",
        ]
    )
