"""Planning reads the index one folder at a time; overlapping roots, exclusions and deleted folders still
plan exactly as a whole-index comparison would."""

from __future__ import annotations

from umsearch.index import Indexer
from umsearch.planning import plan_changes
from umsearch.scan import scan
from umsearch.settings import max_pixels
from umsearch.store import Store

from .photos import write_photo


def test_overlapping_roots_deleted_folders_and_exclusions(tmp_path, tiny_embedder):
    root = tmp_path / "lib"
    for rel, seed in (("a.jpg", 1), ("b.jpg", 2), ("sub/c.jpg", 3), ("sub/deep/d.jpg", 4), ("gone/e.jpg", 5)):
        write_photo(root / rel, seed)
    with Store.open(tmp_path / "i.db") as store:
        indexer = Indexer(store, lambda: tiny_embedder, max_pixels=max_pixels(1280))
        assert indexer.index([str(root)]).added == 5

        # a file root listed before the folder that holds it, and a sub-folder root inside another root
        roots = [str(root / "a.jpg"), str(root / "sub"), str(root)]
        plan = plan_changes(store, roots, scan(roots))
        assert (plan.unchanged, plan.jobs, plan.moves, plan.removals) == (5, [], [], [])

        # a whole folder deleted, another excluded: their rows are removed (only within the roots)
        for path in (root / "gone").iterdir():
            path.unlink()
        (root / "gone").rmdir()
        plan = plan_changes(store, [str(root)], scan([str(root)], excludes=["deep"]))
        assert sorted(row.path for row in plan.removals) == [str(root / "gone/e.jpg"), str(root / "sub/deep/d.jpg")]
        assert plan.unchanged == 3

        # planning a single file root never touches its siblings
        plan = plan_changes(store, [str(root / "b.jpg")], scan([str(root / "b.jpg")]))
        assert (plan.unchanged, plan.removals) == (1, [])
