from __future__ import annotations

import tempfile
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import SimpleTestCase, TestCase
from django.test.utils import CaptureQueriesContext

from inventory_app.inventory import parse_tags
from inventory_app.models import NEVER_POLLED, OK, Host

TOKEN = "inventory-token-0123456789"
OTHER_TOKEN = "other-token-abcdefghijklmn"


class FilesTestCase(TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.dir = Path(directory.name)

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run_command(self, *args) -> str:
        out = StringIO()
        call_command(*args, stdout=out)
        return out.getvalue()


class ParseTagsTests(SimpleTestCase):
    def test_it_splits_strings_and_accepts_lists(self):
        self.assertEqual(parse_tags("web; prod  eu,web"), ["eu", "prod", "web"])
        self.assertEqual(parse_tags(["web", " prod "]), ["prod", "web"])
        self.assertEqual(parse_tags(None), [])
        self.assertEqual(parse_tags(""), [])

    def test_it_refuses_tags_that_could_not_be_matched_whole(self):
        for bad in ("we!b", "-web", "x" * 51, ["a,b"], [1]):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                parse_tags(bad)


class AddHostTests(FilesTestCase):
    def test_it_creates_a_host_from_a_token_file(self):
        token_file = self.write("token", f"\n  {TOKEN}  \n")
        ca = self.write("ca.pem", "not checked here")

        out = self.run_command(
            "add_host",
            "web1",
            "https://web1.example.com:8001",
            "--token-file",
            str(token_file),
            "--tags",
            "web,prod",
            "--no-verify-tls",
            "--ca-bundle",
            str(ca),
            "--disabled",
        )

        # The token is read stripped; every option lands on the host.
        host = Host.objects.get(name="web1")
        self.assertEqual(out.strip(), "Created host web1.")
        self.assertEqual(host.url, "https://web1.example.com:8001")
        self.assertEqual(host.token, TOKEN)
        self.assertEqual(host.tag_list(), ["prod", "web"])
        self.assertFalse(host.verify_tls)
        self.assertEqual(host.ca_bundle, str(ca.resolve()))
        self.assertFalse(host.enabled)
        self.assertEqual(host.state, NEVER_POLLED)

    def test_it_updates_the_host_with_the_same_name(self):
        Host.objects.create(
            name="web1", url="http://old.example.com", token=TOKEN, tags="web", state=OK, agent_version="1.0"
        )
        token_file = self.write("token", OTHER_TOKEN)

        out = self.run_command(
            "add_host", "web1", "http://new.example.com:8001", "--token-file", str(token_file)
        )

        # One host, new url and token; tags kept without --tags; polling status untouched.
        host = Host.objects.get()
        self.assertEqual(out.strip(), "Updated host web1.")
        self.assertEqual((host.url, host.token), ("http://new.example.com:8001", OTHER_TOKEN))
        self.assertEqual(host.tag_list(), ["web"])
        self.assertEqual((host.state, host.agent_version), (OK, "1.0"))

    def test_it_says_when_nothing_changed(self):
        token_file = self.write("token", TOKEN)
        args = (
            "add_host",
            "web1",
            "http://web1.example.com",
            "--token-file",
            str(token_file),
            "--tags",
            "a b",
        )
        self.run_command(*args)

        out = self.run_command(*args)

        self.assertEqual(out.strip(), "Host web1 unchanged.")
        self.assertEqual(Host.objects.count(), 1)

    def test_it_refuses_bad_input_with_one_sentence(self):
        good = self.write("token", TOKEN)
        cases = [
            (["web1", "http://x.example.com", "--token-file", str(self.dir / "nope")], "does not exist"),
            (["web1", "http://x.example.com", "--token-file", str(self.write("empty", " \n"))], "is empty"),
            (["web1", "http://x.example.com", "--token-file", str(self.dir)], "Cannot read the token file"),
            (["web1", "http://x.example.com", "--token-file", str(self.write("short", "abc"))], "shorter"),
            (["web1", "not a url", "--token-file", str(good)], "url: Enter a valid URL."),
            (["web1", "ftp://x.example.com", "--token-file", str(good)], "http:// or https://"),
            (["web 1", "http://x.example.com", "--token-file", str(good)], "name: Use letters"),
            (["web1", "http://x.example.com", "--token-file", str(good), "--tags", "a!"], "tag 'a!'"),
            (
                ["web1", "http://x.example.com", "--token-file", str(good), "--ca-bundle", "/nonexistent"],
                "is not a file",
            ),
        ]
        for args, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(CommandError) as caught:
                    self.run_command("add_host", *args)
                # One line, a capital first, and the token never echoed.
                text = str(caught.exception)
                self.assertIn(message, text)
                self.assertEqual(len(text.splitlines()), 1)
                self.assertTrue(text[0].isupper())
                self.assertNotIn(TOKEN, text)
                self.assertFalse(Host.objects.exists())


CSV = """name,url,token,token_file,tags
web1,https://web1.example.com:8001,{token},,web;prod
db1,http://db1.example.com:8001,,secrets/db1.token,db eu
"""

YAML = """# Two hosts
- name: web1
  url: https://web1.example.com:8001
  token: {token}
  tags: [web, prod]

- name: db1
  url: http://db1.example.com:8001
  token_file: secrets/db1.token
  tags: db eu
"""


class ImportInventoryTests(FilesTestCase):
    def setUp(self):
        super().setUp()
        self.write("secrets/db1.token", OTHER_TOKEN + "\n")

    def assert_imported(self):
        web1, db1 = Host.objects.get(name="web1"), Host.objects.get(name="db1")
        self.assertEqual((web1.url, web1.token), ("https://web1.example.com:8001", TOKEN))
        self.assertEqual(web1.tag_list(), ["prod", "web"])
        # token_file is relative to the inventory, not to the working directory.
        self.assertEqual((db1.url, db1.token), ("http://db1.example.com:8001", OTHER_TOKEN))
        self.assertEqual(db1.tag_list(), ["db", "eu"])

    def test_it_imports_a_csv_file(self):
        path = self.write("hosts.csv", CSV.format(token=TOKEN))

        out = self.run_command("import_inventory", str(path))

        self.assertEqual(out.strip(), f"Imported {path}: 2 created, 0 updated, 0 unchanged.")
        self.assert_imported()

    def test_it_imports_a_yaml_file(self):
        for name, text in [
            ("hosts.yaml", YAML),
            ("under-key.yml", "hosts:\n" + "".join(f"  {line}\n" for line in YAML.splitlines())),
        ]:
            with self.subTest(name=name):
                Host.objects.all().delete()
                path = self.write(name, text.format(token=TOKEN))

                out = self.run_command("import_inventory", str(path))

                self.assertIn("2 created, 0 updated, 0 unchanged", out)
                self.assert_imported()

    def test_it_changes_nothing_when_the_same_file_is_imported_again(self):
        for name, text in [("hosts.csv", CSV), ("hosts.yaml", YAML)]:
            with self.subTest(name=name):
                Host.objects.all().delete()
                path = self.write(name, text.format(token=TOKEN))
                self.run_command("import_inventory", str(path))
                before = list(Host.objects.order_by("pk").values())

                with CaptureQueriesContext(connection) as queries:
                    out = self.run_command("import_inventory", str(path))

                # Same rows, same values, and not one write issued.
                self.assertIn("0 created, 0 updated, 2 unchanged", out)
                self.assertEqual(list(Host.objects.order_by("pk").values()), before)
                writes = [
                    q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))
                ]
                self.assertEqual(writes, [])

    def test_it_updates_changed_hosts_and_leaves_others_alone(self):
        Host.objects.create(name="web1", url="http://old.example.com", token=TOKEN, state=OK, last_error="x")
        Host.objects.create(name="db1", url="http://db1.example.com:8001", token=OTHER_TOKEN, tags="db,eu")
        Host.objects.create(name="other", url="http://other.example.com", token=TOKEN, notes="keep")
        path = self.write("hosts.csv", CSV.format(token=TOKEN))

        out = self.run_command("import_inventory", str(path))

        # web1 gets its new url and tags, keeping its polling status; "other" is not in the file.
        self.assertIn("0 created, 1 updated, 1 unchanged", out)
        self.assert_imported()
        web1 = Host.objects.get(name="web1")
        self.assertEqual((web1.state, web1.last_error), (OK, "x"))
        self.assertEqual(Host.objects.get(name="other").notes, "keep")

    def test_it_names_the_line_of_a_bad_csv_row_and_imports_nothing(self):
        good = f"web1,https://web1.example.com,{TOKEN},,web\n"
        cases = [
            (f"web2,,{TOKEN},,\n", "line 3 (web2): url: This field cannot be blank."),
            (f"web2,not a url,{TOKEN},,\n", "line 3 (web2): url: Enter a valid URL."),
            (f",http://x.example.com,{TOKEN},,\n", "line 3: name: This field cannot be blank."),
            (f"web1,http://x.example.com,{TOKEN},,\n", "line 3: the name web1 is already used on line 2."),
            (
                f"web2,http://x.example.com,{TOKEN},secrets/db1.token,\n",
                "line 3 (web2): give token or token_file, not both.",
            ),
            ("web2,http://x.example.com,,,\n", "line 3 (web2): give a token or a token_file."),
            ("web2,http://x.example.com,,missing.token,\n", "line 3 (web2): the token file"),
            (f"web2,http://x.example.com,{TOKEN},,we!b\n", "line 3 (web2): the tag 'we!b' is not valid"),
            ("web2,http://x.example.com,short,,\n", "line 3 (web2): the token is shorter than 16"),
            (f"web2,http://x.example.com,{TOKEN},,,extra\n", "line 3: the row has more cells"),
        ]
        Host.objects.create(name="web1", url="http://old.example.com", token=TOKEN)
        for row, message in cases:
            with self.subTest(message=message):
                path = self.write("hosts.csv", "name,url,token,token_file,tags\n" + good + row)

                with self.assertRaises(CommandError) as caught:
                    self.run_command("import_inventory", str(path))

                # The line and its problem, never the token; the good row was not applied either.
                self.assertIn(message, str(caught.exception))
                self.assertIn("Nothing was imported", str(caught.exception))
                self.assertNotIn(TOKEN, str(caught.exception))
                self.assertEqual(
                    list(Host.objects.values_list("name", "url")), [("web1", "http://old.example.com")]
                )

    def test_it_names_the_entry_and_line_of_a_bad_yaml_entry(self):
        path = self.write(
            "hosts.yaml",
            YAML.format(token=TOKEN)
            + "\n- name: web2\n  url: http://x.example.com\n  token: 12345678901234567\n",
        )

        with self.assertRaises(CommandError) as caught:
            self.run_command("import_inventory", str(path))

        # A number is not taken for a token: quoting it is the fix, at entry 3 on line 12.
        self.assertIn("entry 3 (line 12) (web2): token must be text (quote it).", str(caught.exception))
        self.assertFalse(Host.objects.exists())

    def test_it_lists_every_bad_line(self):
        path = self.write(
            "hosts.csv",
            f"name,url,token\nweb1,nope,{TOKEN}\nweb2,http://ok.example.com,{TOKEN}\nweb3,,{TOKEN}\n",
        )

        with self.assertRaises(CommandError) as caught:
            self.run_command("import_inventory", str(path))

        text = str(caught.exception)
        self.assertIn("line 2 (web1): url: Enter a valid URL.", text)
        self.assertIn("line 4 (web3): url: This field cannot be blank.", text)
        self.assertNotIn("line 3", text)

    def test_it_refuses_files_it_cannot_read_as_an_inventory(self):
        cases = [
            ("hosts.txt", "name,url\n", "use a .csv, .yaml or .yml file"),
            ("hosts.csv", "name,address,token\n", "line 1: unknown column 'address'"),
            ("hosts.csv", "url,token\n", "line 1: the header needs at least the columns name and url"),
            ("hosts.yaml", "- name: [unclosed\n", "not valid YAML"),
            ("hosts.yaml", "name: web1\n", "must be a list of hosts"),
            ("hosts.yaml", "- web1\n", "entry 1 (line 1): each host must be a mapping"),
            (
                "hosts.yaml",
                f"- name: web1\n  url: http://x.example.com\n  tokn: {TOKEN}\n",
                "unknown field 'tokn'",
            ),
        ]
        for name, text, message in cases:
            with self.subTest(message=message):
                path = self.write(name, text)
                with self.assertRaises(CommandError) as caught:
                    self.run_command("import_inventory", str(path))
                self.assertIn(message, str(caught.exception))
        with self.assertRaisesMessage(CommandError, "Cannot read"):
            self.run_command("import_inventory", str(self.dir / "missing.csv"))
        self.assertFalse(Host.objects.exists())

    def test_it_accepts_an_empty_inventory(self):
        path = self.write("hosts.yaml", "# nothing yet\n")

        out = self.run_command("import_inventory", str(path))

        self.assertIn("0 created, 0 updated, 0 unchanged", out)
