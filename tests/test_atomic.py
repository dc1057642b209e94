"""A file or a directory replaced whole: the new one in place, or the old one kept."""

import pytest

from entropice.atomic import replacing


def test_a_file_and_a_directory_are_replaced_whole(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with replacing(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    folder = tmp_path / "tiles"
    folder.mkdir()
    (folder / "a.tif").write_text("old a")
    (folder / "b.tif").write_text("old b")
    with replacing(folder) as tmp:
        tmp.mkdir()
        (tmp / "a.tif").write_text("new a")
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif"]
    assert (folder / "a.tif").read_text() == "new a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "tiles"]  # no leftovers


def test_a_failed_or_empty_write_keeps_the_old_one(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    (folder / "a.tif").write_text("old a")
    with pytest.raises(RuntimeError, match="interrupted"), replacing(folder) as tmp:
        tmp.mkdir()
        (tmp / "half.tif").write_text("part")
        raise RuntimeError("interrupted")
    with pytest.raises(FileNotFoundError, match="tiles was not written"), \
            replacing(folder) as tmp:
        pass  # the writer wrote nothing
    assert [p.name for p in folder.iterdir()] == ["a.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"]  # no leftovers
