"""The inventory's rules that live on the models."""

from __future__ import annotations

import unittest

from inventory_app.models import normalised_url


class NormalisedUrlTests(unittest.TestCase):
    def test_it_spells_the_urls_of_one_agent_one_way(self):
        same = {
            "https://web1.example.com:8001": [
                "HTTPS://WEB1.example.com:8001/",
                "https://web1.example.com.:8001",
                "  https://web1.example.com:8001//  ",
            ],
            "https://web1.example.com": ["https://web1.example.com:443", "https://user:pw@web1.example.com/"],
            "http://web1.example.com": ["http://web1.example.com:80/"],
            "http://[2001:db8::1]:8001": ["http://[2001:DB8:0::1]:8001/"],
            "https://proxy.example.com/agents/web1": ["https://PROXY.example.com:443/agents/web1/"],
        }
        for expected, urls in same.items():
            for url in [expected, *urls]:
                with self.subTest(url):
                    self.assertEqual(normalised_url(url), expected)

    def test_it_keeps_what_tells_agents_apart(self):
        different = [
            "https://web1.example.com",
            "http://web1.example.com",
            "https://web1.example.com:8443",
            "https://web2.example.com",
            "https://proxy.example.com/agents/web1",
            "https://proxy.example.com/agents/WEB1",
            "https://proxy.example.com/agents/web2",
        ]
        self.assertEqual(len({normalised_url(url) for url in different}), len(different))
