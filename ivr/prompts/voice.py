"""What the caller hears: prompt texts with their values filled in, as text and as audio files.

`PromptVoice(settings)` is the drivers' entry point (docs/contracts.md, "Audio"):

    voice.text(line, lang, PromptRef)   -> str          what is said (simulator, logs)
    voice.files(line, lang, PromptRef)  -> list[Path]   WAV files to play in order (absolute paths)
    voice.stream_names(...)             -> list[str]    the same paths minus ".wav", for Asterisk STREAM FILE
    voice.for_texts(catalog)            -> VoiceView    the same API, bound to one set of texts (one call)

A text such as "Ваш баланс {balance:money}." is split at its placeholders. Each static piece that has
something to say is a pre-rendered file named by the piece and by a hash of its text,
`<sounds>/<lang>/<line>/<key>.<n>.<h>.wav` (n counts the spoken static pieces from 0; h = `text_hash`,
the first 10 hex digits of the sha1 of the piece's text), or `<key>.<h>.wav` when the text has no
placeholder. Content-addressed, so the audio of an old text and of its new version lie side by side: a
call that started before a new version was published plays the old audio to its end, while new calls
play the new one. `ivr prompts render` also keeps `<key>.wav` / `<key>.<n>.wav` as a hard link to the
newest render, for the dialplan (which plays a few prompts by name) and for people; the server never
plays those. A value is worded by `wording_ru` / `wording_en` into tokens, each of which is a
pre-rendered file `<sounds>/<lang>/words/<slug>.wav` (words and names are values, not versioned texts:
no hash). Texts found only in `common.<lang>.yaml` live under `<sounds>/<lang>/common/`.

A text without placeholders may have a recording made by a person, `prompts/recordings/<source>/<lang>/
<key>.wav` (ivr/trees/texts.py): its audio is then that recording, named `<key>.<h>.wav` with h the hash of
the text *and* of the recording's bytes (`text_hash(text, recording)`), so it never shares a name with the
synthesised audio of the same text nor with another recording; `text()` still says the text.

Lookup order for a key: the line's texts in the language, the common texts in the language, then the same
two in the default language (settings.default_language). A key found nowhere raises `PromptNotFound`.

Texts are loaded once (own small YAML loader: `prompts/texts/<line>.<lang>.yaml`, flat `key: text`);
resolved templates and static-only file lists are cached per set of texts (`VoiceView`), so a call costs a
dict lookup plus the wording of its values (microseconds; see docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ivr.engine.commands import PromptRef
from ivr.prompts import wording_en, wording_ru
from ivr.trees.texts import (
    PLACEHOLDER,
    PLACEHOLDER_KINDS,
    RECORDINGS_DIR,
    Recordings,
    TextCatalog,
    read_recordings,
    read_text_file,
    recording_files,
    recording_path,
)

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

COMMON = "common"
WORDS_DIR = "words"
PAUSE_SLUG = "pause"

WORDING: dict[str, ModuleType] = {"ru": wording_ru, "en": wording_en}

# One list of placeholder kinds and one pattern, shared with the tree validator.
KINDS = PLACEHOLDER_KINDS
_PLACEHOLDER = PLACEHOLDER
_SPEAKABLE = re.compile(r"\w")


class PromptNotFound(KeyError):
    """A prompt key with no text in the line's, the common, or the default language's texts."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "prompt not found"


class NameToken(str):
    """A plan/reward name said as one pre-rendered fragment (see render.render_names)."""

    __slots__ = ()


PIECE_HASH_LENGTH = 10
# A static piece's content-addressed file: `<stem>.<h>.wav` (render.prune_prompts finds them by this).
PIECE_FILE = re.compile(rf"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{{{PIECE_HASH_LENGTH}}})\.wav$")


def text_hash(text: str, recording: str = "") -> str:
    """The short hash that names a static piece's audio: the first 10 hex digits of the sha1 of its text;
    for a text a person recorded (`recording`: the sha1 of the recording's bytes), of the text and that
    digest, so the recording's audio is named apart from the synthesised one and from other recordings."""
    raw = f"{text}\x1frecording:{recording}" if recording else text
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:PIECE_HASH_LENGTH]


def piece_file(stem: str, text: str, recording: str = "") -> str:
    """The file name of a static piece's audio: "balance_is.0" + "Ваш баланс" -> "balance_is.0.<h>.wav"
    (`recording`: see `text_hash`)."""
    return f"{stem}.{text_hash(text, recording)}.wav"


def name_slug(name: str) -> str:
    digest = hashlib.sha1(name.strip().encode("utf-8")).hexdigest()[:10]
    return f"name-{slug(name)[:32]}-{digest}"


_TRANSLIT = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "eh",
    "ю": "yu",
    "я": "ya",
}


def slug(word: str) -> str:
    """A file-name-safe ASCII name for a word: "двадцать" -> "dvadtsat", "twenty-three" -> "twenty-three"."""
    if word == wording_ru.PAUSE:
        return PAUSE_SLUG
    out = []
    for ch in word.lower():
        if ch in _TRANSLIT:
            out.append(_TRANSLIT[ch])
        elif ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.append("_")
    return "".join(out).strip("_") or "_"


def say(lang: str, kind: str, value: Any) -> tuple[str, ...]:
    """The tokens for a value of a placeholder kind, e.g. say("ru", "money", Decimal("1.21"))."""
    w = WORDING.get(lang)
    if w is None:
        raise ValueError(f"no wording for language {lang!r} (have: {', '.join(sorted(WORDING))})")
    if kind == "money":
        return tuple(w.money(value))
    if kind == "name":
        text = str(value).strip()
        return (NameToken(text),) if text else ()
    if kind == "date":
        return tuple(w.date(_as_date(value)))
    if kind == "phone":
        return tuple(w.phone(str(value)))
    if kind == "digits":
        return tuple(w.digits(str(value)))
    n = _as_int(value)
    if kind == "number":
        return tuple(w.number(n))
    if kind in ("megabytes", "gigabytes"):
        return tuple(w.megabytes(n * 1024 if kind == "gigabytes" else n))
    noun_key = {"points": "point", "minutes": "minute", "sms": "sms", "days": "day"}.get(kind)
    if noun_key is None:
        raise ValueError(f"unknown placeholder kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    return tuple(w.count(n, noun_key))


def say_text(lang: str, kind: str, value: Any) -> str:
    module = WORDING.get(lang, wording_ru)
    return str(module.join(say(lang, kind, value)))


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a bool is not a count")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        return int(value)
    return int(str(value).strip())


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip()[:10])


def vocabulary(lang: str) -> frozenset[str]:
    return frozenset(WORDING[lang].vocabulary())


@dataclass(frozen=True)
class Segment:
    """A piece of a text: static text (`static` set, `index` its file number, -1 if silent) or a
    placeholder (`name`, `kind`)."""

    static: str | None = None
    index: int = -1
    name: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Template:
    key: str
    text: str
    lang: str  # the language the text was found in (may be the default language)
    source: str  # the line name, or "common"
    segments: tuple[Segment, ...]
    # The sha1 of the person's recording played instead of the synthesis ("" for none); only ever set for
    # a text without placeholders.
    recording: str = ""

    @property
    def has_placeholders(self) -> bool:
        return any(s.static is None for s in self.segments)

    def static_pieces(self) -> list[tuple[str, str]]:
        """(file stem, text) for each spoken static piece: ("balance_is.0", "Ваш баланс"). A recorded text
        is one piece even when it has nothing to say as text (a recorded jingle for "...")."""
        if not self.has_placeholders:
            speaks = self.recording or _SPEAKABLE.search(self.text)
            return [(self.key, self.text.strip())] if speaks else []
        return [
            (f"{self.key}.{s.index}", s.static.strip())
            for s in self.segments
            if s.static is not None and s.index >= 0
        ]


def parse_template(key: str, text: str, lang: str, source: str, recording: str | None = None) -> Template:
    """`recording`: the digest of the text's recording, if it has one; ignored for a text with
    placeholders (the tree check refuses such a recording: ivr/trees/texts.py `recording_problems`)."""
    segments: list[Segment] = []
    pos = 0
    n = 0

    def add_static(piece: str) -> None:
        nonlocal n
        if not piece:
            return
        if _SPEAKABLE.search(piece):
            segments.append(Segment(static=piece, index=n))
            n += 1
        else:
            segments.append(Segment(static=piece, index=-1))

    for match in _PLACEHOLDER.finditer(text):
        add_static(text[pos : match.start()])
        segments.append(Segment(name=match.group(1), kind=match.group(2) or "name"))
        pos = match.end()
    add_static(text[pos:])
    static = all(s.static is not None for s in segments)
    return Template(
        key=key,
        text=text,
        lang=lang,
        source=source,
        segments=tuple(segments),
        recording=(recording or "") if static else "",
    )


def text_files(prompts_dir: Path) -> dict[tuple[str, str], Path]:
    """(source, lang) -> file, for every `prompts/texts/<source>.<lang>.yaml`."""
    out: dict[tuple[str, str], Path] = {}
    texts_dir = prompts_dir / "texts"
    if not texts_dir.is_dir():
        return out
    for path in sorted(texts_dir.glob("*.*.yaml")):
        source, lang = path.name[: -len(".yaml")].rsplit(".", 1)
        out[(source, lang)] = path
    return out


def load_text_file(path: Path) -> dict[str, str]:
    """key -> text of one catalogue file, read by the validator's reader so both agree on what it says."""
    return {key: entry.text for key, entry in read_text_file(path).items()}


# (source, language) -> key -> text: the texts a view speaks.
Texts = dict[tuple[str, str], dict[str, str]]


def catalog_texts(catalog: TextCatalog) -> Texts:
    """The texts of a line's set as a view reads them: each file as read, by (source, language)."""
    return {key: {k: e.text for k, e in entries.items()} for key, entries in catalog.by_source.items()}


def catalog_recordings(catalog: TextCatalog) -> Recordings:
    """The recordings of a line's set for the texts it has, (source, language, key) -> digest."""
    return {k: digest for k, digest in catalog.recordings.items() if k[:2] in catalog.by_source}


class VoiceView:
    """What the caller hears from one set of texts: the lookup, the text and the audio files of a prompt.

    `PromptVoice` speaks through a view of the texts it loaded (or was told to use); `voice.for_texts(
    catalog)` gives the view of one accepted set, which a call keeps from its first prompt to its last, so
    a new version published mid-call never changes what that call says or plays. A view's caches (parsed
    templates, file lists of static prompts) live as long as the view; views are shared by all calls on
    the same set. Reads are thread-safe (a race only parses a template twice)."""

    def __init__(
        self,
        voice: PromptVoice,
        texts: Texts,
        *,
        fallback: bool = False,
        recordings: Recordings | None = None,
        recordings_dir: Path | None = None,
    ) -> None:
        self.voice = voice
        self._texts = texts
        # (source, language, key) -> digest of the person's recording that replaces a text's synthesis.
        self._recordings: Recordings = recordings or {}
        self._recordings_dir = recordings_dir if recordings_dir is not None else voice.recordings_dir
        # A key none of these texts has is looked up in the voice's current texts: a driver's own prompt
        # (the apology, the queue's place and wait) that a tree's set may lack.
        self._fallback = fallback
        self._templates: dict[tuple[str, str, str], Template] = {}
        self._static_files: dict[tuple[str, str, str], list[Path]] = {}

    def raw_text(self, source: str, lang: str, key: str) -> str | None:
        return self._texts.get((source, lang), {}).get(key)

    def keys(self, source: str, lang: str) -> list[str]:
        return sorted(self._texts.get((source, lang), {}))

    def recording(self, source: str, lang: str, key: str) -> str | None:
        """The digest of the recording of that text in this set, None when it is synthesised."""
        return self._recordings.get((source, lang, key))

    def recording_path(self, source: str, lang: str, key: str) -> Path:
        """Where that recording is (prompts/recordings/<source>/<lang>/<key>.wav of this set)."""
        return recording_path(self._recordings_dir, source, lang, key)

    def template(self, line: str, lang: str, key: str) -> Template:
        cache_key = (line, lang, key)
        found = self._templates.get(cache_key)
        if found is not None:
            return found
        default = self.voice.default_language
        candidates = [(line, lang), (COMMON, lang)]
        if lang != default:
            candidates += [(line, default), (COMMON, default)]
        for source, text_lang in candidates:
            text = self._texts.get((source, text_lang), {}).get(key)
            if text is not None:
                if text_lang != lang:
                    log.warning("prompt %s/%s has no %s text; using %s", line, key, lang, text_lang)
                recording = self._recordings.get((source, text_lang, key))
                found = parse_template(key, text, text_lang, source, recording)
                self._templates[cache_key] = found
                return found
        if self._fallback:
            return self.voice.template(line, lang, key)
        raise PromptNotFound(
            f"no text for prompt {key!r} of line {line!r} in {lang!r}, in common texts, "
            f"or in the default language {default!r}"
        )

    def has(self, line: str, lang: str, key: str) -> bool:
        try:
            self.template(line, lang, key)
        except PromptNotFound:
            return False
        return True

    def text(self, line: str, lang: str, ref: PromptRef) -> str:
        template = self.template(line, lang, ref.key)
        if not template.has_placeholders:
            return template.text.strip()
        module = WORDING.get(template.lang, wording_ru)
        out = []
        for seg in template.segments:
            if seg.static is not None:
                out.append(seg.static)
                continue
            words = self._value_words(line, template, seg, ref.values)
            out.append(module.join(words) if words else "")
        said = re.sub(r"\s+", " ", "".join(out)).strip()
        return re.sub(r"\s+([.,!?;:])", r"\1", said)  # a skipped value leaves no gap before punctuation

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]:
        cache_key = (line, lang, ref.key)
        static = self._static_files.get(cache_key)
        if static is not None:
            return list(static)
        template = self.template(line, lang, ref.key)
        voice = self.voice
        if not template.has_placeholders:
            result = [voice.static_path(template, stem, piece) for stem, piece in template.static_pieces()]
            self._static_files[cache_key] = result
            return list(result)
        out: list[Path] = []
        for seg in template.segments:
            if seg.static is not None:
                if seg.index >= 0:
                    out.append(voice.static_path(template, f"{template.key}.{seg.index}", seg.static.strip()))
                continue
            for word in self._value_words(line, template, seg, ref.values):
                path = voice.word_path(template.lang, word)
                if isinstance(word, NameToken) and not os.path.exists(path):
                    # Never fail a call for a name rendered late: skip it (the text still has it).
                    log.warning("no audio for name %r (%s); skipped", str(word), path.name)
                    if voice.on_missing_name is not None:
                        voice.on_missing_name(str(word))
                    continue
                out.append(path)
        return out

    def stream_names(self, line: str, lang: str, ref: PromptRef) -> list[str]:
        """Absolute paths without extension, as Asterisk's STREAM FILE / Playback want them."""
        return [asterisk_name(p) for p in self.files(line, lang, ref)]

    def _value_words(
        self, line: str, template: Template, seg: Segment, values: Mapping[str, Any]
    ) -> tuple[str, ...]:
        if seg.name not in values or values[seg.name] is None:
            log.warning("prompt %s/%s: no value for {%s}; said without it", line, template.key, seg.name)
            return ()
        try:
            return say(template.lang, seg.kind, values[seg.name])
        except (ValueError, TypeError, ArithmeticError) as exc:
            # The exception's text may quote the value; values are not logged (a value could be private).
            log.warning(
                "prompt %s/%s: cannot say {%s:%s} (%s)",
                line,
                template.key,
                seg.name,
                seg.kind,
                type(exc).__name__,
            )
            return ()


class PromptVoice:
    """Texts and audio files for prompts; one per process, shared by all calls (thread-safe reads).

    Its own `text/files/stream_names/has` speak the texts it loaded from the files (or, in the server,
    the texts of the sets in service: `use_texts`). A call speaks through `for_texts(catalog)`, the view
    of the set it started with."""

    def __init__(self, settings: Settings, *, on_missing_name: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.default_language = settings.default_language
        self.sounds = settings.sounds.resolve()
        self.recordings_dir = settings.prompts / RECORDINGS_DIR
        self.on_missing_name = on_missing_name
        self._lock = threading.Lock()
        # line -> (the catalog, its view): the view of a line's newest set, made once per set.
        self._views: dict[str, tuple[TextCatalog, VoiceView]] = {}
        self.reload()

    # ----- loading -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read all text files (and the recordings of their texts) again, after an edit, and drop the
        caches."""
        files = text_files(self.settings.prompts)
        texts: Texts = {}
        recordings: Recordings = {}
        for (source, lang), path in files.items():
            texts[(source, lang)] = load_text_file(path)
            recordings.update(read_recordings(self.recordings_dir, source, lang))
        mtimes = self._file_times(files)
        word_paths: dict[str, dict[str, Path]] = {}
        for lang in WORDING:
            base = self.sounds / lang / WORDS_DIR
            word_paths[lang] = {w: base / f"{slug(w)}.wav" for w in vocabulary(lang)}
        with self._lock:
            self._texts = texts
            self._recordings = recordings
            self._view = VoiceView(self, texts, recordings=recordings)
            self._mtimes = mtimes
            self._word_paths = word_paths
        log.debug("prompt texts loaded: %d files", len(files))

    def use_texts(self, catalog: TextCatalog) -> None:
        """Serve a line's texts from its accepted set (the server's TreeStore checked them against the
        tree and the rendered audio) instead of from the files, which may hold an edit not taken yet.
        This is the voice's own texts (tools, the fallback of views); calls speak `for_texts`."""
        with self._lock:
            self._texts = {**self._texts, **catalog_texts(catalog)}
            # The set's recordings replace those the voice had for the same files of texts.
            kept = {k: v for k, v in self._recordings.items() if k[:2] not in catalog.by_source}
            self._recordings = {**kept, **catalog_recordings(catalog)}
            self._view = VoiceView(self, self._texts, recordings=self._recordings)

    def for_texts(self, catalog: TextCatalog, *, cache: bool = True) -> VoiceView:
        """The view of one line's set of texts (`TreeStore.texts(line)`): what a call that started on
        that set hears, to its end. One view per set (the catalog object): a call pays a dict lookup.
        `cache=False` makes a view of its own (checking a candidate set that may be refused)."""
        found = self._views.get(catalog.line)
        if found is not None and found[0] is catalog:
            return found[1]
        view = VoiceView(
            self,
            catalog_texts(catalog),
            fallback=True,
            recordings=catalog_recordings(catalog),
            recordings_dir=catalog.recordings_dir,
        )
        if cache:
            self._views[catalog.line] = (catalog, view)
        return view

    def _file_times(self, files: Mapping[tuple[str, str], Path]) -> dict[Path, float]:
        """The mtime of every text file and of the recordings of their texts."""
        out = {path: path.stat().st_mtime for path in files.values()}
        for source, lang in files:
            for path in recording_files(self.recordings_dir, source, lang):
                out[path] = path.stat().st_mtime
        return out

    def reload_if_changed(self) -> bool:
        """Reload when a text file or a recording was added, removed or replaced. A few stat() calls."""
        current = self._file_times(text_files(self.settings.prompts))
        if current != self._mtimes:
            self.reload()
            return True
        return False

    def lines(self) -> list[str]:
        return sorted({source for source, _lang in self._texts if source != COMMON})

    def languages(self, line: str | None = None) -> list[str]:
        return sorted({lang for source, lang in self._texts if line is None or source in (line, COMMON)})

    def keys(self, source: str, lang: str) -> list[str]:
        return self._view.keys(source, lang)

    def raw_text(self, source: str, lang: str, key: str) -> str | None:
        return self._view.raw_text(source, lang, key)

    def recording(self, source: str, lang: str, key: str) -> str | None:
        return self._view.recording(source, lang, key)

    def recording_path(self, source: str, lang: str, key: str) -> Path:
        return self._view.recording_path(source, lang, key)

    def recordings(self) -> Recordings:
        """(source, language, key) -> digest of every recording the voice's texts have."""
        return dict(self._recordings)

    # ----- lookup --------------------------------------------------------------------------------

    def template(self, line: str, lang: str, key: str) -> Template:
        return self._view.template(line, lang, key)

    def has(self, line: str, lang: str, key: str) -> bool:
        return self._view.has(line, lang, key)

    def static_path(self, template: Template, stem: str, text: str) -> Path:
        """The audio of one static piece of `template`: named by its text's hash (`piece_file`), and by its
        recording's when a person recorded it."""
        return self.sounds / template.lang / template.source / piece_file(stem, text, template.recording)

    def word_path(self, lang: str, word: str) -> Path:
        if isinstance(word, NameToken):
            return self.sounds / lang / WORDS_DIR / f"{name_slug(word)}.wav"
        path = self._word_paths.get(lang, {}).get(word)
        return path if path is not None else self.sounds / lang / WORDS_DIR / f"{slug(word)}.wav"

    # ----- what the caller hears ----------------------------------------------------------------

    def text(self, line: str, lang: str, ref: PromptRef) -> str:
        return self._view.text(line, lang, ref)

    def files(self, line: str, lang: str, ref: PromptRef) -> list[Path]:
        return self._view.files(line, lang, ref)

    def stream_names(self, line: str, lang: str, ref: PromptRef) -> list[str]:
        """Absolute paths without extension, as Asterisk's STREAM FILE / Playback want them."""
        return self._view.stream_names(line, lang, ref)


def asterisk_name(path: Path) -> str:
    """Asterisk wants a sound file by path without its extension; every driver uses this one form."""
    return str(path.with_suffix("")) if path.suffix == ".wav" else str(path)


def iter_names_tokens(names: Iterable[str]) -> list[NameToken]:
    return [NameToken(n.strip()) for n in names if n and n.strip()]
