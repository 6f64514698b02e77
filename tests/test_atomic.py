"""course_lib.atomic: a failed write leaves the old file and no temporary file behind."""

import os

import pytest

from course_lib.atomic import atomic_write, atomic_write_text


def test_text_is_written_and_permissions_are_kept(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new ✓\n")
    assert path.read_bytes() == "new ✓\n".encode()
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("where", ["write", "verify"])
def test_a_failure_leaves_the_old_file(tmp_path, where):
    path = tmp_path / "b.bin"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        if where == "write":
            raise KeyboardInterrupt

    def verify(tmp):
        assert tmp.read_bytes() == b"half" and tmp.parent == tmp_path
        raise ValueError("refused")

    with pytest.raises(KeyboardInterrupt if where == "write" else ValueError):
        atomic_write(path, write, verify)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]
