"""A scripted agent for the hostile-agent tests: it answers like a real agent (consistent days
and sources) unless a test makes one of its answers hostile."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from .agents import Answer, FakeAgent

HEALTH = {"agent_version": "1", "following": True, "sources": []}


def sources_of(day: date, n: int, first: int = 1) -> list[dict]:
    seen = datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone()).isoformat()
    return [
        {"ip": f"198.18.{i // 250}.{i % 250 + 1}", "sessions": 2, "failed_attempts": 3, "accepted": 0,
         "users": ["root"], "first_seen": seen, "last_seen": seen}
        for i in range(first, first + n)
    ]  # fmt: skip


def day_of(day: date, sources: list[dict]) -> dict:
    """Counts that hold the day's sources, as an agent's would."""
    sessions = sum(s["sessions"] for s in sources)
    return {
        "date": day.isoformat(),
        "sessions": sessions,
        "accepted": sum(s["accepted"] for s in sources),
        "failed_attempts": sum(s["failed_attempts"] for s in sources),
        "failed_sessions": sessions - sum(s["accepted"] for s in sources),
        "invalid_user_sessions": 0,
        "preauth_only": 0,
        "unique_sources": len(sources),
    }


class ScriptedAgent:
    """Serves `days` ({date: [sources]}) as the agent API does, pages of `page_size` rows;
    `hostile(path, answer) -> Answer` may replace any answer."""

    def __init__(self, testcase, days: dict[date, list[dict]] | None = None, hostile=None, page_size=100):
        today = timezone.localdate()
        self.days = days if days is not None else {today: sources_of(today, 3)}
        self.hostile = hostile or (lambda path, answer: answer)
        self.page_size = page_size
        self.fake = FakeAgent(self.answer)
        testcase.addCleanup(self.fake.close)
        self.url = self.fake.url

    @property
    def paths(self) -> list[str]:
        return self.fake.paths

    def answer(self, path: str) -> Answer:
        return self.hostile(path, self.honest(path))

    def honest(self, path: str) -> Answer:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == "/api/v1/health/":
            return Answer.json(HEALTH)
        if parts.path == "/api/v1/logins/":
            return Answer.json({"host": "x", "days": [day_of(d, s) for d, s in sorted(self.days.items())]})
        for day, sources in self.days.items():
            if parts.path == f"/api/v1/logins/{day}/":
                return Answer.json({"host": "x", **day_of(day, sources), "top_sources": [], "top_users": []})
            if parts.path == f"/api/v1/sources/{day}/":
                start = int(query.get("cursor", ["0"])[0])
                end = start + self.page_size
                link = f"{self.url}/api/v1/sources/{day}/?cursor={end}" if end < len(sources) else None
                return Answer.json({"next": link, "previous": None, "results": sources[start:end]})
        return Answer(404, b'{"detail": "Not found."}')


def json_body(data) -> bytes:
    return json.dumps(data).encode()


def days_back(n: int) -> list[date]:
    today = timezone.localdate()
    return [today - timedelta(days=i) for i in range(n)]
