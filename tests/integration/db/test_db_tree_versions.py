"""The console's versions and accounts on SQLite and PostgreSQL: the seed from the files, drafts per
editor, a save on an old base refused with the other edit's diff (also when two saves race), rollback, and
the login lockout."""

from __future__ import annotations

import threading

import pytest
from dbfixtures import TestClock

from ivr.db.session import UowFactory
from ivr.services import staff, tree_versions

FILES = {
    "operator.yaml": "version: 1\nline: operator\n",
    "texts/operator.ru.yaml": "welcome: Здравствуйте!\n",
}
PASSWORD = "a long password"


def seed(factory: UowFactory) -> None:
    with factory(write=True) as uow:
        assert tree_versions.import_files(uow, "operator", FILES) is not None
        uow.commit()


def edit(factory: UowFactory, author: str, text: str) -> None:
    with factory(write=True) as uow:
        draft = tree_versions.open_draft(uow, "operator", author)
        files = dict(draft.files)
        files["texts/operator.ru.yaml"] = f"welcome: {text}\n"
        tree_versions.update_draft(uow, "operator", author, files)
        uow.commit()


def save(factory: UowFactory, author: str) -> int:
    with factory(write=True) as uow:
        number = tree_versions.save_version(uow, "operator", author, "c").number
        uow.commit()
        return number


def test_the_files_seed_version_1_once(uow_factory: UowFactory) -> None:
    seed(uow_factory)
    with uow_factory(write=True) as uow:
        assert tree_versions.import_files(uow, "operator", FILES) is None  # the same files: nothing new
        live = tree_versions.live(uow, "operator")
        assert live is not None and live.number == 1 and live.published_by == "files"
        changed = {**FILES, "texts/operator.ru.yaml": "welcome: Привет!\n"}
        again = tree_versions.import_files(uow, "operator", changed)  # edited with a text editor
        assert again is not None and again.number == 2 and again.published_at is not None
        uow.commit()


def test_two_editors_on_one_base_the_second_save_is_refused_with_the_diff(uow_factory: UowFactory) -> None:
    seed(uow_factory)
    edit(uow_factory, "anna", "Первая правка")
    edit(uow_factory, "boris", "Вторая правка")
    assert save(uow_factory, "anna") == 2
    with pytest.raises(tree_versions.VersionConflict) as refused:
        save(uow_factory, "boris")
    assert refused.value.latest_number == 2 and refused.value.latest_author == "anna"
    assert "+welcome: Первая правка" in refused.value.diff and "-welcome: Здравствуйте!" in refused.value.diff
    with uow_factory() as uow:
        assert [v.number for v in tree_versions.history(uow, "operator")] == [2, 1]
        assert (
            tree_versions.get(uow, "operator", 2).files["texts/operator.ru.yaml"]
            == "welcome: Первая правка\n"
        )


def test_racing_saves_on_one_base_make_one_version(uow_factory: UowFactory) -> None:
    seed(uow_factory)
    authors = [f"editor{i}" for i in range(4)]
    for author in authors:
        edit(uow_factory, author, f"Правка {author}")
    outcomes: list[str] = []
    start = threading.Barrier(len(authors))

    def race(author: str) -> None:
        start.wait()
        try:
            save(uow_factory, author)
            outcomes.append("saved")
        except tree_versions.VersionConflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(a,)) for a in authors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 3 + ["saved"], outcomes
    with uow_factory() as uow:
        assert [v.number for v in tree_versions.history(uow, "operator")] == [2, 1]


def test_publish_and_rollback_move_the_live_version(uow_factory: UowFactory, clock: TestClock) -> None:
    seed(uow_factory)
    edit(uow_factory, "anna", "Новое")
    save(uow_factory, "anna")
    clock.advance(seconds=5)
    with uow_factory(write=True) as uow:
        tree_versions.mark_published(uow, "operator", 2, "pavel")
        uow.commit()
    clock.advance(seconds=5)
    with uow_factory(write=True) as uow:
        assert tree_versions.live(uow, "operator").number == 2
        back = tree_versions.rollback_version(uow, "operator", 1, "pavel")
        tree_versions.mark_published(uow, "operator", back.number, "pavel", action="rollback")
        uow.commit()
    with uow_factory() as uow:
        live = tree_versions.live(uow, "operator")
        assert live.number == 3 and live.files == FILES and live.comment == "rollback to version 1"
        actions = [a.action for a in staff.audit_trail(uow, line="operator")]
        assert actions[:2] == ["rollback", "publish"], actions
        assert "+welcome: Здравствуйте!" in staff.audit_trail(uow, line="operator")[0].detail


def test_five_wrong_passwords_lock_the_account_for_a_while(uow_factory: UowFactory, clock: TestClock) -> None:
    with uow_factory(write=True) as uow:
        staff.add_staff(uow, "anna", PASSWORD, "editor")
        uow.commit()

    def login(password: str) -> staff.Staff | None:
        with uow_factory(write=True) as uow:
            found = staff.login(uow, "anna", password)
            uow.commit()
            return found

    assert login(PASSWORD) == staff.Staff("anna", "editor")
    for _ in range(staff.MAX_FAILED_LOGINS):
        assert login("wrong password") is None
    assert login(PASSWORD) is None  # locked
    clock.advance(minutes=staff.LOCK_MINUTES + 1)
    assert login(PASSWORD) is not None
    with uow_factory() as uow:
        trail = staff.audit_trail(uow)
        assert all(PASSWORD not in a.detail and a.detail != "wrong password" for a in trail)
        assert [a.action for a in trail].count("login_failed") == staff.MAX_FAILED_LOGINS + 1


def test_account_rules(uow_factory: UowFactory) -> None:
    with uow_factory(write=True) as uow:
        with pytest.raises(staff.StaffError):
            staff.add_staff(uow, "anna", "short", "editor")
        with pytest.raises(staff.StaffError):
            staff.add_staff(uow, "Anna Smith", PASSWORD, "editor")
        with pytest.raises(staff.StaffError):
            staff.add_staff(uow, "anna", PASSWORD, "owner")
        staff.add_staff(uow, "anna", PASSWORD, "viewer")
        with pytest.raises(staff.StaffError):
            staff.add_staff(uow, "anna", PASSWORD, "viewer")
        staff.set_disabled(uow, "anna", True, by="admin")
        uow.commit()
    with uow_factory(write=True) as uow:
        assert staff.login(uow, "anna", PASSWORD) is None  # disabled
        assert staff.current(uow, "anna") is None
        uow.commit()
