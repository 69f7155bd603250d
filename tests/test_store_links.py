"""No store operation follows a symbolic link out of the store: links at each level (the
trash, an experiment folder in the trash, an experiment folder, a run folder, a file or
folder inside a run) make delete, gc, archive, tag, note and export refuse, exit 2,
naming the link, with nothing moved, deleted or written outside."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_tui.errors import StoreError
from mnist_tui.runs import manage
from mnist_tui.runs.store import RunStore

from .test_cli import cli
from .test_store import write_run

RUN = "11c0ffee"


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    store, outside = tmp_path / "store", tmp_path / "outside"
    store.mkdir()
    outside.mkdir()
    return store, outside


def named(link: Path, said: str) -> bool:
    """Whether the message names the link (a terminal may wrap it anywhere)."""
    return "".join(str(link).split()) in "".join(said.split())


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def link_trash(store: Path, outside: Path) -> Path:
    (outside / "trash").mkdir()
    (store / ".trash").symlink_to(outside / "trash")
    write_run(store, "fnn1", "", run_id=RUN)
    return store / ".trash"


def link_trash_experiment(store: Path, outside: Path) -> Path:
    (store / ".trash").mkdir()
    (outside / "fnn1").mkdir()
    (store / ".trash" / "fnn1").symlink_to(outside / "fnn1")
    write_run(store, "fnn1", "", run_id=RUN)
    return store / ".trash" / "fnn1"


def link_experiment(store: Path, outside: Path) -> Path:
    write_run(outside, "fnn1", "", run_id=RUN)
    (store / "fnn1").symlink_to(outside / "fnn1")
    return store / "fnn1"


def link_run(store: Path, outside: Path) -> Path:
    write_run(outside, "fnn1", "", run_id=RUN)
    (store / "fnn1").mkdir()
    (store / "fnn1" / RUN).symlink_to(outside / "fnn1" / RUN)
    return store / "fnn1" / RUN


def link_file(store: Path, outside: Path) -> Path:
    run = write_run(store, "fnn1", "", run_id=RUN)
    (outside / "meta.json").write_text('{"note": "outside"}')
    (run / "meta.json").symlink_to(outside / "meta.json")
    return run / "meta.json"


def link_folder_in_run(store: Path, outside: Path) -> Path:
    run = write_run(store, "fnn1", "", run_id=RUN)
    (outside / "ckpt").mkdir()
    (outside / "ckpt" / "last.pt").write_bytes(b"weights")
    (run / "checkpoints").symlink_to(outside / "ckpt")
    return run / "checkpoints"


LEVELS: dict[str, Callable[[Path, Path], Path]] = {
    "trash": link_trash,
    "trash_experiment": link_trash_experiment,
    "experiment": link_experiment,
    "run": link_run,
    "file_in_run": link_file,
    "folder_in_run": link_folder_in_run,
}
RUN_LEVELS = ("experiment", "run", "file_in_run", "folder_in_run")


@pytest.mark.parametrize("permanent", [False, True])
@pytest.mark.parametrize("level", sorted(LEVELS))
def test_delete_refuses_a_link_out_of_the_store(
    level: str, permanent: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, outside = _layout(tmp_path)
    link = LEVELS[level](store, outside)
    before = _snapshot(outside)
    args = ["delete", RUN, "--yes", "--runs-dir", str(store)] + (["--permanent"] * permanent)
    code, out, err = cli(capsys, *args)
    said = " ".join((out + err).split())
    assert code == 2, (out, err)
    assert named(link, said) and "outside the run store" in said and "Traceback" not in said
    assert _snapshot(outside) == before  # nothing moved into or out of it
    assert link.is_symlink()


@pytest.mark.parametrize("level", ["trash", "trash_experiment", "file_in_trash"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_gc_refuses_a_trash_that_leads_outside(
    level: str, dry_run: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, outside = _layout(tmp_path)
    if level == "file_in_trash":
        write_run(store / ".trash", "fnn1", "", run_id=RUN)
        (outside / "big.bin").write_bytes(b"x" * 1000)
        link = store / ".trash" / "fnn1" / RUN / "big.bin"
        link.symlink_to(outside / "big.bin")
    else:
        link = LEVELS[level](store, outside)
        write_run(link if level == "trash" else link.parent, "fnn1", "", run_id="22c0ffee")
    before = _snapshot(outside)
    code, out, err = cli(capsys, "gc", *(["--dry-run"] * dry_run), "--runs-dir", str(store))
    said = " ".join((out + err).split())
    assert code == 2 and named(link, said) and "freed" not in said, said
    assert _snapshot(outside) == before and link.is_symlink()


@pytest.mark.parametrize("level", RUN_LEVELS)
@pytest.mark.parametrize(
    "command",
    [["archive"], ["unarchive"], ["tag", "x"], ["note", "hello"], ["export", "--csv", "-"]],
)
def test_archive_tag_note_export_refuse_a_run_reached_through_a_link(
    level: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, outside = _layout(tmp_path)
    link = LEVELS[level](store, outside)
    before = _snapshot(outside)
    args = [command[0], RUN, *command[1:], "--runs-dir", str(store)]
    code, out, err = cli(capsys, *args)
    said = " ".join((out + err).split())
    assert code == 2 and named(link, said), (args, said)
    assert _snapshot(outside) == before


def test_links_that_stay_inside_the_store_are_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that is itself a link, and a link inside it to its own files, are fine."""
    real, _outside = _layout(tmp_path)
    store = tmp_path / "store-link"
    store.symlink_to(real)
    run = write_run(real, "fnn1", "", run_id=RUN)
    (real / "shared").mkdir()
    (run / "extra").symlink_to(real / "shared")
    manage.set_note(RunStore(store), RunStore(store).resolve(RUN), "fine")
    code, _, err = cli(capsys, "delete", RUN, "--yes", "--runs-dir", str(store))
    assert code == 0, err
    assert (real / ".trash" / "fnn1" / RUN / "meta.json").is_file()
    code, _, err = cli(capsys, "gc", "--runs-dir", str(store))
    assert code == 0, err
    assert not (real / ".trash").exists() and (real / "shared").is_dir()


def test_the_core_refuses_too(tmp_path: Path) -> None:
    store, outside = _layout(tmp_path)
    link_trash(store, outside)
    rs = RunStore(store)
    with pytest.raises(StoreError, match="outside the run store"):
        manage.delete_run(rs, rs.resolve(RUN))
    with pytest.raises(StoreError, match="outside the run store"):
        manage.empty_trash(rs)
    assert (store / "fnn1" / RUN).is_dir() and not list((outside / "trash").iterdir())
    shutil.rmtree(outside / "trash")
