"""The image record the host reads after a crash."""

import importlib
import os

import pytest

from _wheelwright_abimodel import images


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return importlib.reload(images)


def read(path):
    with open(os.path.join(path, images.FILE)) as f:
        return f.read()


def test_one_line_per_image_in_the_run_folder(fresh, tmp_path):
    fresh.record("/job/site/pymult.pyd", 0x7F0012340000, 0x5000, "windows-x86_64")
    fresh.record("/job/site/pkg/other.abi3.so", 0x7F0000010000, 0x3000, "macos-x86_64")
    assert read(tmp_path) == (
        "windows-x86_64 7f0012340000 5000 pymult.pyd\n"
        "macos-x86_64 7f0000010000 3000 other.abi3.so\n"
    )


def test_a_new_process_starts_the_record_afresh(fresh, tmp_path):
    (tmp_path / images.FILE).write_text("windows-x86_64 1000 1000 stale.pyd\n")
    fresh.record("/job/site/pymult.pyd", 0x2000, 0x1000, "windows-x86_64")
    assert read(tmp_path) == "windows-x86_64 2000 1000 pymult.pyd\n"


def test_a_name_with_white_space_is_refused(fresh):
    with pytest.raises(ValueError):
        fresh.record("/job/site/two words.pyd", 0x2000, 0x1000, "windows-x86_64")
