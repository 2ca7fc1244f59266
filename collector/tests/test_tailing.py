from __future__ import annotations

import grp
import gzip
import io
import os
import pwd

from collector.parsing import MAX_LINE_LENGTH
from collector.tailing import (
    decode_lines,
    describe_os_error,
    find_by_inode,
    find_copy,
    identify,
    open_log,
    read_chunks,
)


def test_it_leaves_a_partial_last_line_for_the_next_read(tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(b"one\ntwo\nthr")
    f, _ = open_log(str(path))
    chunks = list(read_chunks(f, 0))
    # Only complete lines are consumed; the offset stops before "thr".
    assert chunks == [(b"one\ntwo\n", 8)]
    with open(path, "ab") as out:
        out.write(b"ee\n")
    assert list(read_chunks(f, 8)) == [(b"three\n", 14)]


def test_it_takes_the_partial_last_line_of_a_finished_file():
    f = io.BytesIO(b"one\ntwo")
    assert list(read_chunks(f, 0, final=True)) == [(b"one\n", 4), (b"two\n", 7)]


def test_it_decodes_bad_bytes_nul_and_long_lines_as_malformed():
    long_line = b"x" * (MAX_LINE_LENGTH + 10)
    chunk = b"good\n\xff\xfebad\nnul\x00here\n" + long_line + b"\n"
    lines, malformed = decode_lines(chunk)
    assert malformed == {1, 2, 3}
    assert lines[0] == "good"
    assert lines[1] == "\ufffd\ufffdbad"
    assert "\x00" not in lines[2]
    assert len(lines[3]) == MAX_LINE_LENGTH


def test_it_reads_gzip_files_transparently(tmp_path):
    path = tmp_path / "auth.log.2.gz"
    with gzip.open(path, "wb") as out:
        out.write(b"a\nb\n")
    f, compressed = open_log(str(path))
    assert compressed
    assert list(read_chunks(f, 0, final=True)) == [(b"a\nb\n", 4)]
    # The identity is that of the decompressed text, so it matches the file before gzip.
    plain = tmp_path / "auth.log.2"
    plain.write_bytes(b"a\nb\n")
    g, _ = open_log(str(plain))
    assert identify(f, True).fingerprint == identify(g, False).fingerprint


def test_it_finds_a_rotated_file_by_its_inode(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text("x\n")
    st = os.stat(path)
    os.rename(path, tmp_path / "auth.log.1")
    assert find_by_inode(str(tmp_path), st.st_dev, st.st_ino) == str(tmp_path / "auth.log.1")


def test_it_finds_a_copied_or_compressed_rotated_file_by_its_first_bytes(tmp_path):
    path = tmp_path / "auth.log"
    text = b"Mar  2 21:00:00 web1 sshd[100]: Connection closed by 198.51.100.1 port 4444 [preauth]\n"
    path.write_bytes(text)
    f, _ = open_log(str(path))
    ident = identify(f, False)
    # copytruncate: the copy has a new inode, the emptied file keeps the old one.
    (tmp_path / "auth.log.1").write_bytes(text)
    path.write_bytes(b"")
    (tmp_path / "auth.log.2.gz").write_bytes(gzip.compress(b"older\n"))
    assert find_copy(str(path), ident.fingerprint, ident.fingerprint_size) == str(tmp_path / "auth.log.1")
    # Compressed since, under another name: found by its decompressed first bytes.
    (tmp_path / "auth.log.1").unlink()
    (tmp_path / "auth.log.1.gz").write_bytes(gzip.compress(text))
    assert find_copy(str(path), ident.fingerprint, ident.fingerprint_size) == str(tmp_path / "auth.log.1.gz")
    # Never another log that happens to sit beside it, nor the live file itself.
    (tmp_path / "auth.log.1.gz").unlink()
    (tmp_path / "syslog").write_bytes(text)
    path.write_bytes(text)
    assert find_copy(str(path), ident.fingerprint, ident.fingerprint_size) is None


def test_it_names_the_group_a_user_needs(tmp_path):
    denied = PermissionError(13, "Permission denied")
    # Readable by its group (Debian's auth.log: root:adm 640): join that group.
    shared = tmp_path / "auth.log"
    shared.write_text("x\n")
    shared.chmod(0o640)
    group = grp.getgrgid(shared.stat().st_gid).gr_name
    message = describe_os_error(str(shared), denied)
    assert message.startswith(f"Cannot read {shared}: permission denied")
    if group != "root":
        assert f"sudo usermod -aG {group} $USER" in message
    # Readable by its owner only (600): no group helps, and joining root is never the advice.
    private = tmp_path / "secure"
    private.write_text("x\n")
    private.chmod(0o600)
    message = describe_os_error(str(private), denied)
    owner = pwd.getpwuid(private.stat().st_uid).pw_name
    assert f"only its owner '{owner}' may read it" in message
    assert "usermod" not in message
    assert "\n" not in message
    assert describe_os_error("/nope", FileNotFoundError(2, "No such file")) == "/nope does not exist."
