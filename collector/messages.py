"""What an sshd message says: its kind (and so its phase for connection accounting), the user,
the source address and port, the method. Pure Python: no Django, no I/O.

Everything in a message is attacker-controlled in part (user names), so the source address is
always read from the trailing part that sshd itself wrote, anchored at the end of the message,
never from the first " from " in the line.
"""

from __future__ import annotations

import re
from typing import Final

from .contract import is_address

# Phases decide what a line means for connection accounting (see sessions.py):
OPEN: Final = "open"  # starts authenticating: opens a connection, even on a PID whose connection ended
PRE: Final = "pre"  # pre-auth line: opens a connection only on a PID not seen recently
POST: Final = "post"  # only ever written after login (post-auth child, session lines): never opens one
LISTENER: Final = "listener"  # the listening daemon itself: never a connection
# The listener refusing or penalising an address (OpenSSH 9.8+ PerSourcePenalties, MaxStartups):
# the address joins the day's sources, but no connection is counted (it never got a process).
REFUSED: Final = "refused"
ATTACH: Final = "attach"  # belongs to a known connection if there is one, never opens one

SUCCESS: Final = "success"
FAILURE: Final = "failure"

# Each kind's phase, and the outcome of the kinds that have one.
PHASES: Final = {
    OPEN: ("accepted", "failed", "invalid_user", "userauth_request_invalid", "pam_auth_failure",
           "pam_user_unknown", "not_allowed", "root_refused", "connection_from"),
    PRE: ("pam_more_failures", "max_auth_attempts", "too_many_auth_failures", "received_disconnect",
          "disconnected", "connection_closed", "connection_reset", "no_identification", "kex_error",
          "banner_error", "bad_protocol", "unable_to_negotiate", "timeout", "reverse_mapping",
          "refused_connect"),
    POST: ("received_disconnect_user", "disconnected_user", "connection_closed_postauth",
           "session_opened", "session_closed", "subsystem"),
    LISTENER: ("server_listening", "received_signal", "received_sighup"),
    REFUSED: ("penalised", "dropped"),
    ATTACH: ("info", "unknown", "repeat"),
}  # fmt: skip
OUTCOMES: Final = {"accepted": SUCCESS, **dict.fromkeys(
    ("failed", "invalid_user", "pam_auth_failure", "not_allowed", "root_refused", "pam_more_failures",
     "max_auth_attempts", "too_many_auth_failures"), FAILURE)}  # fmt: skip
# kind -> (phase, outcome)
KINDS: dict[str, tuple[str, str | None]] = {
    kind: (phase, OUTCOMES.get(kind)) for phase, kinds in PHASES.items() for kind in kinds
}


# --- Messages ------------------------------------------------------------------------------

# A source as sshd writes it: an IPv4 or IPv6 address (with a scope), or a host name. The one
# address pattern of every message below.
ADDRESS: Final = r"[0-9A-Za-z.:%_-]+"
IP: Final = rf"(?P<ip>{ADDRESS})"
# The trusted tail of an authentication message: "<user> from <addr>[ port <n>][ ssh2]", cut
# before sshd's own ": <auth info>" suffix. sshd strips everything from the first ':' out of a
# user name (BSD auth style), so the first ": " always starts the suffix; the greedy user group
# then takes the LAST " from <addr>" before it, and a user name with a fake
# " from 1.2.3.4 port 22 ssh2" in it stays inside the user name.
USER_FROM_TAIL: Final = re.compile(rf"{IP}(?: port (?P<port>\d{{1,5}}))?(?: ssh\d?)?(?: \[preauth\])?$")
USER_FROM: Final = re.compile(rf"(?P<user>.*) from {USER_FROM_TAIL.pattern}")
ACCEPTED: Final = re.compile(r"Accepted (?P<method>\S+) for (?P<rest>.*)$")
# sshd's auth info after an Accepted publickey line: "<key type> <fingerprint>[ ID … CA …]".
KEY_INFO: Final = re.compile(
    r"(?P<type>[A-Z][A-Z0-9-]{1,30}) (?P<fp>(?:SHA256|MD5):[A-Za-z0-9+/=:]{16,100})(?: |$)"
)
FAILED: Final = re.compile(r"Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<rest>.*)$")
INVALID_USER: Final = re.compile(r"Invalid user (?P<rest>.*)$")
USERAUTH_REQUEST_INVALID: Final = re.compile(
    r"input_userauth_request: invalid user (?P<user>.*?)(?: \[preauth\])?$"
)
PAM_AUTH_FAILURE: Final = re.compile(
    rf"pam_(?:unix|sss)\(sshd:auth\): authentication failure; logname=\S* uid=\d* euid=\d* tty=\S* "
    rf"ruser=\S* rhost=(?P<ip>{ADDRESS})?(?:\s+user=(?P<user>.*?))?(?: \[preauth\])?$"
)
PAM_MORE_FAILURES: Final = re.compile(
    rf"PAM (?P<n>\d+) more authentication failures?;.*? rhost=(?P<ip>{ADDRESS})?(?:\s+user=(?P<user>.*))?$"
)
PAM_ERROR_FAILURE: Final = re.compile(
    rf"error: PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module) "
    rf"for (?P<invalid>(?:illegal|invalid) user )?(?P<user>.*) from {IP}(?: via \S+)?$"
)
PAM_SESSION: Final = re.compile(
    r"pam_unix\(sshd:session\): session (?P<what>opened|closed) for user (?P<user>\S+)"
)
MAX_AUTH: Final = re.compile(
    r"(?:error: )?maximum authentication attempts exceeded for (?P<invalid>invalid user )?(?P<rest>.*?)(?: \[preauth\])?$"
)
DISCONNECTING: Final = re.compile(
    rf"Disconnecting(?: (?:(?:invalid|authenticating) user (?P<user>[^:]*) )?{IP} port (?P<port>\d+))?: "
    rf"(?P<why>.*?)(?: for (?:invalid user )?(?P<user2>.*?))?(?: \[preauth\])?$"
)
RECEIVED_DISCONNECT: Final = re.compile(
    rf"(?:error: )?Received disconnect from {IP}(?: port (?P<port>\d+))?: ?\d+: (?P<why>.*?)(?P<pre> \[preauth\])?$"
)
# "Disconnected from [invalid user X |authenticating user X |user X ]<addr> port <n> [preauth]"
DISCONNECTED: Final = re.compile(
    rf"Disconnected from (?:(?P<who>invalid|authenticating) user (?P<user>.*) |user (?P<postuser>.*) )?"
    rf"{IP} port (?P<port>\d+)(?P<pre> \[preauth\])?$"
)
CONNECTION_CLOSED: Final = re.compile(
    rf"Connection (?P<what>closed|reset) by (?:(?:(?P<who>invalid|authenticating) user (?P<user>.*) )?"
    rf"{IP} port (?P<port>\d+)|(?P<ip_only>{ADDRESS}))(?P<pre> \[preauth\])?$"
)
# OpenSSH 9.8+: "srclimit_penalise: ipv4: new 198.51.100.7/32 deferred penalty of 30 seconds for
# penalty: failed authentication" (later releases write "30.000 seconds"), and the listener's
# "drop connection #0 from [198.51.100.7]:51312 on [192.0.2.1]:22 penalty: exceeded LoginGraceTime".
PENALISED: Final = re.compile(
    rf"srclimit_penalise: (?:ipv[46]: new (?P<net>{ADDRESS})/(?P<bits>\d+) (?:active|deferred) penalty"
    rf"|(?P<net2>{ADDRESS})/(?P<bits2>\d+): activating ipv[46] penalty)"
)
DROPPED: Final = re.compile(rf"drop connection #\d+ from \[{IP}\]:(?P<port>\d+) on \[")
SOCKET_RESET: Final = re.compile(r"(?:fatal: )?Read from socket failed: Connection reset by peer")
CONNECTION_FROM: Final = re.compile(rf"Connection from {IP}(?: port (?P<port>\d+))?(?: on |$)")
NO_IDENTIFICATION: Final = re.compile(
    rf"Did not receive identification string from {IP}(?: port (?P<port>\d+))?"
)
BAD_PROTOCOL: Final = re.compile(
    rf"(?:Bad protocol version identification .* from|Protocol major versions differ for) "
    rf"(?P<ip>{ADDRESS}?)(?: port (?P<port>\d+))?(?::.*)?$"
)
# sshd's packet-layer fatal errors: "<function>: Connection from [<who> user <name> ]<addr> port <n>:
# <error>" (also "banner exchange: ..."). Anchored at the start: the client's identification string
# in other kex lines is attacker text and may itself say "Connection from 6.6.6.6 port 1". User
# names never hold ':' (sshd cuts them there), so the user part cannot run past the address.
KEX_SOURCE: Final = re.compile(
    rf"(?:error: |fatal: )?[\w ]+: Connection from (?:(?:authenticating |invalid )?user [^:]* )?"
    rf"{IP} port (?P<port>\d+)(?::|$)"
)
MAGIC_SOURCE: Final = re.compile(
    rf"Magic value check failed \(\d+\) on obfuscated handshake from {IP} port (?P<port>\d+)$"
)
UNABLE_TO_NEGOTIATE: Final = re.compile(
    rf"(?:fatal: )?(?:Unable to negotiate (?:with {IP} port (?P<port>\d+): |a )"
    rf"|no matching \S+ found)"
)
TIMEOUT: Final = re.compile(
    rf"(?:fatal: )?Timeout before authentication for (?:connection from )?{IP}(?: port (?P<port>\d+))?"
)
NOT_ALLOWED: Final = re.compile(rf"User (?P<user>.*) from {IP} not allowed because ")
NOT_ALLOWED_NO_SOURCE: Final = re.compile(r"User (?P<user>\S+) not allowed because ")
ROOT_REFUSED: Final = re.compile(rf"ROOT LOGIN REFUSED FROM {IP}(?: port (?P<port>\d+))?")
REFUSED_CONNECT: Final = re.compile(rf"refused connect from \S+ \({IP}\)")
REVERSE_MAPPING: Final = re.compile(
    rf"(?:reverse mapping checking getaddrinfo for \S+ \[{IP}\] failed"
    rf"|Address (?P<ip2>{ADDRESS}) maps to \S+, but this does not map back to the address)"
)
SUBSYSTEM: Final = re.compile(r"subsystem request for (?P<what>\S+) by user (?P<user>.*?)(?: failed.*)?$")
REPEATED: Final = re.compile(r"message repeated (?P<n>\d+) times: \[ ?(?P<inner>.*)\]$")
LAST_REPEATED: Final = re.compile(r"last message repeated (?P<n>\d+) times?$")

# Known lines that change no count: written by sshd around a connection, at INFO or VERBOSE.
INFO_PREFIXES: Final = (
    "Postponed ", "Starting session:", "Close session:", "Transferred:", "User child is on pid",
    "Accepted key ", "Accepted certificate ", "Changed root directory", "pam_succeed_if(sshd:auth):",
    "PAM service(sshd) ignoring max retries", "pam_unix(sshd:account):", "pam_systemd(sshd:session):",
    "Disconnecting: ", "Disconnecting ", "debug1:", "Failed to release session", "Exiting on signal",
    "error: Bind to port", "error: Could not load host key", "Server terminated",
    "Received request to connect to", "Set /proc/self/oom_score_adj", "rexec line", "Nasty PTR record",
    "Authentication refused:", "userauth_pubkey:", "SSH: Server;",
    # Debian 12's PAM; SSSD/FreeIPA's PAM module besides its failure line; the monitor's reaping of
    # a pre-auth child; a malformed key sent by a client; the rest of PerSourcePenalties' lines.
    "pam_env(sshd:session):", "pam_env(sshd:setcred):", "pam_sss(sshd:", "mm_reap: ",
    "error: key_from_blob:", "srclimit_penalise: ", "PerSourcePenalties logging rate-limited",
    "Maxstartups logging rate-limited",
)  # fmt: skip

KEX_MARKERS: Final = (
    "kex_exchange_identification",
    "kex_protocol_error",
    "ssh_dispatch_run_fatal",
    "Magic value check failed",
)


def _port(value: str | None) -> int | None:
    if not value:
        return None
    number = int(value)
    return number if number <= 65535 else None


def classify(msg: str) -> dict:
    """The kind of an sshd message and what it says about user, source and method."""
    space = msg.find(" ")
    word = msg[:space] if space > 0 else msg
    # Only a message starting "message " can be rsyslog's repeat: no regex for the others.
    if word == "message":
        m = REPEATED.match(msg)
        if m:
            fields = classify(m["inner"].rstrip())
            if fields["kind"] in ("repeat", "unknown"):
                return fields
            fields["count"] = max(1, int(m["n"]))
            return fields
    handler = DISPATCH.get(word)
    if handler is not None:
        found = handler(msg)
        if found is not None:
            return found
    return _fallback(msg)


def _user_source(rest: str) -> tuple[str, str, int | None] | None:
    end = rest.find(": ")
    if end == -1:
        end = len(rest)
    # USER_FROM's greedy user takes the last " from " whose tail matches: try the last one
    # directly (one short match instead of backtracking over the whole line), and leave any
    # other case (a last " from " followed by no address, a newline) to USER_FROM itself.
    # The tail ends at `end` (sshd's ": "): with endpos, its "$" matches there.
    at = rest.rfind(" from ", 0, end)
    if at != -1 and "\n" not in rest:
        m = USER_FROM_TAIL.match(rest, at + 6, end)
        if m is not None:
            ip, port = m.groups()
            return rest[:at], ip, _port(port)
    m = USER_FROM.match(rest, 0, end)
    if m is None:
        return None
    user, ip, port = m.groups()
    return user, ip, _port(port)


def _at(kind: str, m: re.Match, **fields) -> dict:
    """A kind, with the address and port the match found (a port only if it has that group)."""
    port = m["port"] if "port" in m.re.groupindex else None
    return {"kind": kind, "source_ip": m["ip"], "source_port": _port(port), **fields}


def _matcher(pattern: re.Pattern, kind: str):
    """A handler for messages that say only their kind, address and port."""

    def handler(msg: str) -> dict | None:
        m = pattern.match(msg)
        return _at(kind, m) if m else None

    return handler


def _first(*handlers):
    """A handler trying others in turn: the first that recognises the message wins."""

    def handler(msg: str) -> dict | None:
        for each in handlers:
            fields = each(msg)
            if fields is not None:
                return fields
        return None

    return handler


def _method_rest(msg: str, start: int) -> tuple[str, str] | None:
    """(method, rest) of "<word> <method> for <rest>", the method read from `start`, with str
    methods where the line is plain (no newline, the method printable ASCII, so without spaces);
    None leaves the line to the pattern."""
    space = msg.find(" ", start)
    method = msg[start:space]
    if space <= start or not msg.startswith(" for ", space) or "\n" in msg:
        return None
    if not (method.isascii() and method.isprintable()):
        return None
    return method, msg[space + 5 :]


def _attempt(kind: str, rest: str) -> dict | None:
    """Accepted / Failed / Invalid user: "<what> for <user> from <addr> port <n> ssh2[: info]"."""
    parts = _user_source(rest)
    if parts is None:
        return None
    return {"kind": kind, "user": parts[0], "source_ip": parts[1], "source_port": parts[2]}


def _accepted(msg: str) -> dict | None:
    quick = _method_rest(msg, 9)  # after "Accepted "
    if quick is None:
        m = ACCEPTED.match(msg)
        if m is None:
            return None
        quick = m["method"], m["rest"]
    fields = _attempt("accepted", quick[1])
    if fields is not None:
        fields["method"] = quick[0]
        # The key's fingerprint follows sshd's own ": " (a user name never holds ':').
        cut = msg.find(": ", msg.find(" for "))
        m = KEY_INFO.match(msg, cut + 2) if cut != -1 else None
        if m:
            fields["key"] = f"{m['type']} {m['fp']}"
    return fields


def _failed(msg: str) -> dict | None:
    quick = _method_rest(msg, 7)  # after "Failed "
    if quick is not None:
        method, rest = quick
        invalid = rest.startswith("invalid user ")
        if invalid:
            rest = rest[13:]
    else:
        m = FAILED.match(msg)
        if m is None:
            return None
        method, rest, invalid = m["method"], m["rest"], bool(m["invalid"])
    fields = _attempt("failed", rest)
    if fields is not None:
        fields["method"] = method
        fields["invalid_user"] = invalid
    return fields


def _invalid(msg: str) -> dict | None:
    if msg.startswith("Invalid user ") and "\n" not in msg:
        rest = msg[13:]
    else:
        m = INVALID_USER.match(msg)
        if m is None:
            return None
        rest = m["rest"]
    fields = _attempt("invalid_user", rest)
    if fields is not None:
        fields["invalid_user"] = True
    return fields


_no_identification = _matcher(NO_IDENTIFICATION, "no_identification")
_bad = _matcher(BAD_PROTOCOL, "bad_protocol")
_unable = _matcher(UNABLE_TO_NEGOTIATE, "unable_to_negotiate")
_timeout = _matcher(TIMEOUT, "timeout")
_connection_from = _matcher(CONNECTION_FROM, "connection_from")
_dropped = _matcher(DROPPED, "dropped")


def _rhost(value: str | None) -> dict:
    """PAM's rhost: an address, or the host name sshd resolved (UseDNS yes), which only names the
    source where sshd itself never writes the address (see sessions.py)."""
    if not value:
        return {}
    return {"source_ip": value} if is_address(value) else {"source_name": value}


def _pam_unix(msg: str) -> dict | None:
    if msg.startswith("pam_unix(sshd:auth): check pass; user unknown"):
        return {"kind": "pam_user_unknown", "invalid_user": True}
    m = PAM_AUTH_FAILURE.match(msg)
    if m:
        return {"kind": "pam_auth_failure", "user": m["user"] or None, **_rhost(m["ip"])}
    m = PAM_SESSION.match(msg)
    if m:
        user = m["user"]
        if "(uid=" in user:
            user = user[: user.index("(uid=")]
        return {"kind": f"session_{m['what']}", "user": user}
    if msg.startswith("pam_unix(sshd:auth): "):
        return {"kind": "info"}
    return None


def _pam_sss(msg: str) -> dict | None:
    # SSSD/FreeIPA hosts: the same failure line as pam_unix's; its other lines are info.
    m = PAM_AUTH_FAILURE.match(msg)
    return {"kind": "pam_auth_failure", "user": m["user"] or None, **_rhost(m["ip"])} if m else None


def _pam(msg: str) -> dict | None:
    m = PAM_MORE_FAILURES.match(msg)
    if m:
        return {"kind": "pam_more_failures", "user": m["user"] or None, **_rhost(m["ip"])}
    return None


def _pam_error(msg: str) -> dict | None:
    m = PAM_ERROR_FAILURE.match(msg)
    if m:
        return {"kind": "pam_auth_failure", "user": m["user"], "source_ip": m["ip"],
                "invalid_user": bool(m["invalid"])}  # fmt: skip
    return None


def _maximum(msg: str) -> dict | None:
    m = MAX_AUTH.match(msg)
    if m is None:
        return None
    fields: dict = {"kind": "max_auth_attempts", "invalid_user": bool(m["invalid"])}
    parts = _user_source(m["rest"])
    if parts:
        fields["user"], fields["source_ip"], fields["source_port"] = parts
    return fields


def _received_disconnect(msg: str) -> dict | None:
    m = RECEIVED_DISCONNECT.match(msg)
    if m is None:
        return None
    # Since OpenSSH 5.9 pre-auth lines end in [preauth] and carry a port; one with a port and
    # without the mark comes from a logged-in session's process (post-auth child).
    post = not m["pre"] and (m["port"] is not None or m["why"] == "disconnected by user")
    return _at("received_disconnect_user" if post else "received_disconnect", m)


def _received(msg: str) -> dict | None:
    if msg.startswith("Received signal"):
        return {"kind": "received_signal"}
    if msg.startswith("Received SIGHUP"):
        return {"kind": "received_sighup"}
    return _received_disconnect(msg)


def _error_kex(msg: str) -> dict | None:
    return _kex(msg) if msg.startswith(KEX_MARKERS, 7) else None  # after "error: "


def _incomplete(msg: str) -> dict | None:
    # "fatal: ssh_packet_get_string: incomplete message [preauth]": the client sent a broken
    # packet and the pre-auth process ends.
    return {"kind": "kex_error"} if msg.startswith("fatal: ssh_packet_get_string: ") else None


def _socket_reset(msg: str) -> dict | None:
    return {"kind": "connection_reset"} if SOCKET_RESET.match(msg) else None


def _disconnected(msg: str) -> dict | None:
    m = DISCONNECTED.match(msg)
    if m is None:
        return None
    if m["postuser"] is not None and not m["pre"]:
        return _at("disconnected_user", m, user=m["postuser"])
    user = m["user"] if m["user"] is not None else m["postuser"]
    return _at("disconnected", m, user=user, invalid_user=m["who"] == "invalid")


def _disconnecting(msg: str) -> dict | None:
    m = DISCONNECTING.match(msg)
    if m is None:
        return None
    if not m["why"].startswith("Too many authentication failures"):
        return _at("info", m)
    if m["user"] is not None or m["user2"] is None:
        return _at("too_many_auth_failures", m, user=m["user"])
    # OpenSSH 6.x: "Disconnecting: Too many authentication failures for root from <addr> port <n> ssh2".
    parts = _user_source(m["user2"])
    if parts is None:
        return _at("too_many_auth_failures", m, user=m["user2"])
    return {
        "kind": "too_many_auth_failures",
        "user": parts[0],
        "source_ip": parts[1],
        "source_port": parts[2],
    }


def _connection_closed(msg: str) -> dict | None:
    m = CONNECTION_CLOSED.match(msg)
    if m is None:
        return None
    if m["pre"] or m["user"] is not None or m["port"] is None:
        kind = "connection_closed" if m["what"] == "closed" else "connection_reset"
    else:
        # "Connection closed by <addr> port <n>" without [preauth] ends a logged-in session
        # (sshd marks every pre-auth line since OpenSSH 5.9).
        kind = "connection_closed_postauth"
    return {"kind": kind, "user": m["user"], "source_ip": m["ip"] or m["ip_only"],
            "source_port": _port(m["port"]), "invalid_user": m["who"] == "invalid"}  # fmt: skip


def _kex(msg: str) -> dict:
    m = KEX_SOURCE.match(msg) or MAGIC_SOURCE.match(msg)
    return _at("kex_error", m) if m else {"kind": "kex_error"}


def _banner(msg: str) -> dict | None:
    return {**_kex(msg), "kind": "banner_error"} if msg.startswith("banner exchange: ") else None


def _user(msg: str) -> dict | None:
    m = NOT_ALLOWED.match(msg)
    if m:
        return {"kind": "not_allowed", "user": m["user"], "source_ip": m["ip"]}
    m = NOT_ALLOWED_NO_SOURCE.match(msg)
    if m:
        return {"kind": "not_allowed", "user": m["user"]}
    return None


def _root(msg: str) -> dict | None:
    m = ROOT_REFUSED.match(msg)
    if m:
        return {**_at("root_refused", m, user="root"), "source_ip": m["ip"].removeprefix("::ffff:")}
    return None


def _refused(msg: str) -> dict | None:
    m = REFUSED_CONNECT.match(msg)
    return {"kind": "refused_connect", "source_ip": m["ip"].removeprefix("::ffff:")} if m else None


def _reverse(msg: str) -> dict | None:
    m = REVERSE_MAPPING.match(msg)
    return {"kind": "reverse_mapping", "source_ip": m["ip"] or m["ip2"]} if m else None


def _subsystem(msg: str) -> dict | None:
    m = SUBSYSTEM.match(msg)
    return {"kind": "subsystem", "user": m["user"], "method": m["what"]} if m else None


def _penalised(msg: str) -> dict | None:
    m = PENALISED.match(msg)
    if m is None:
        return None
    net, bits = (m["net"], m["bits"]) if m["net"] else (m["net2"], m["bits2"])
    # Only a penalty on one address names it; a wider net block (PerSourceNetBlockSize) does not.
    whole = 32 if ":" not in net else 128
    return {"kind": "penalised", "source_ip": net if int(bits) == whole else None}


def _server(msg: str) -> dict | None:
    return {"kind": "server_listening"} if msg.startswith("Server listening on ") else None


def _last(msg: str) -> dict | None:
    m = LAST_REPEATED.match(msg)
    return {"kind": "repeat", "count": max(1, int(m["n"]))} if m else None


def _input(msg: str) -> dict | None:
    m = USERAUTH_REQUEST_INVALID.match(msg)
    return {"kind": "userauth_request_invalid", "user": m["user"], "invalid_user": True} if m else None


# The message's first word picks its handler; a handler that does not recognise the message
# leaves it to _fallback.
DISPATCH: Final = {
    "Accepted": _accepted,
    "Failed": _failed,
    "Invalid": _invalid,
    "pam_unix(sshd:auth):": _pam_unix,
    "pam_unix(sshd:session):": _pam_unix,
    "pam_sss(sshd:auth):": _pam_sss,
    "PAM": _pam,
    "error:": _first(_pam_error, _maximum, _received_disconnect, _error_kex),
    "fatal:": _first(_timeout, _unable, _socket_reset, _incomplete),
    "maximum": _maximum,
    "Received": _received,
    "Disconnected": _disconnected,
    "Disconnecting": _disconnecting,
    "Disconnecting:": _disconnecting,
    "Connection": _first(_connection_from, _connection_closed),
    "Did": _no_identification,
    "Bad": _bad,
    "Protocol": _bad,
    "banner": _banner,
    "Unable": _unable,
    "Timeout": _timeout,
    "User": _user,
    "ROOT": _root,
    "refused": _refused,
    "reverse": _reverse,
    "Address": _reverse,
    "subsystem": _subsystem,
    "Server": _server,
    "last": _last,
    "input_userauth_request:": _input,
    "srclimit_penalise:": _penalised,
    "drop": _dropped,
}


def _fallback(msg: str) -> dict:
    # Markers only where sshd writes them: a user name elsewhere in the line may hold them too.
    if msg.startswith(KEX_MARKERS) or (
        msg.startswith(("error: ", "fatal: ")) and msg.startswith(KEX_MARKERS, 7)
    ):
        return _kex(msg)
    if msg.startswith(INFO_PREFIXES):
        return {"kind": "info"}
    return {"kind": "unknown"}
