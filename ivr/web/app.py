"""The staff console: a Starlette application with server-rendered pages (Jinja2) and a little
JavaScript for validation as you type, hearing prompts and trying calls. docs/staff-console.md describes
it for the people who use and run it.

Every page needs a login; every change needs the session's CSRF token and the right role. The database
keeps the accounts, the audit trail, the versions and the drafts; the files under prompts/ are the
published state that `ivr serve` reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import io
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ivr.app.actions import catalog
from ivr.config import Settings
from ivr.db.session import UowFactory, make_uow_factory
from ivr.engine.events import Digits, NoInput, Speech
from ivr.prompts.voice import PromptNotFound
from ivr.services import staff as staff_service
from ivr.services import tree_versions as versions
from ivr.services.reports import call_report, write_csv
from ivr.services.staff import ROLES, Staff, StaffError
from ivr.trees import TreeInvalid, load_tree
from ivr.trees.graph import tree_svg
from ivr.trees.yamlfile import compose_yaml
from ivr.web import audio, charts
from ivr.web.checks import Problem, check_line
from ivr.web.files import line_names, read_line, scratch_prompts
from ivr.web.publish import PublishError, publish_version
from ivr.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LoginThrottle,
    Refused,
    check_csrf,
    csrf_token,
    session_user,
    start_session,
)
from ivr.web.texts_edit import TextEditError, set_text, texts_of
from ivr.web.trycall import TryCalls

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """The console's state: settings, database, try calls, throttling."""

    def __init__(self, settings: Settings, uow: UowFactory) -> None:
        self.settings = settings
        self.uow = uow
        self.try_calls = TryCalls(settings)
        self.throttle = LoginThrottle()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.publish_lock = asyncio.Lock()

    # ---- versions seeded from the files ---------------------------------------------------------

    def sync_from_files(self) -> None:
        """Every line under prompts/ has its files as a published version (the seed, and edits made with a
        text editor and `ivr validate` beside the console)."""
        for line in line_names(self.settings.prompts):
            files = read_line(self.settings.prompts, line)
            with self.uow() as uow:  # a read first: no write lock unless the files really changed
                current = versions.live(uow, line)
                if current is not None and current.files == files:
                    continue
            with self.uow(write=True) as uow:
                if versions.import_files(uow, line, files) is not None:
                    log.info("console: %s imported from the files under prompts/", line)
                uow.commit()


def create_app(settings: Settings, *, uow: UowFactory | None = None) -> Starlette:
    factory = uow or make_uow_factory(settings.db_url)
    console = Console(settings, factory)
    secret = settings.console_secret
    if not secret:
        secret = secrets.token_hex(32)
        log.warning("console_secret is not set (var/secrets.toml): sessions end when the console restarts")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(console.sync_from_files)
        yield
        await console.try_calls.close()
        if uow is None:
            factory.dispose()

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/audit", audit_page, methods=["GET"]),
        Route("/report", report_page, methods=["GET"]),
        Route("/report.csv", report_csv, methods=["GET"]),
        Route("/staff", staff_page, methods=["GET"]),
        Route("/staff", staff_submit, methods=["POST"]),
        Route("/lines/{line}", line_page, methods=["GET"]),
        Route("/lines/{line}/graph.svg", graph_svg, methods=["GET"]),
        Route("/lines/{line}/edit", edit_page, methods=["GET"]),
        Route("/lines/{line}/draft", draft_save, methods=["POST"]),
        Route("/lines/{line}/text", text_save, methods=["POST"]),
        Route("/lines/{line}/check", draft_check, methods=["POST"]),
        Route("/lines/{line}/discard", draft_discard, methods=["POST"]),
        Route("/lines/{line}/save", version_save, methods=["POST"]),
        Route("/lines/{line}/upload", recording_upload, methods=["POST"]),
        Route("/lines/{line}/recording/remove", recording_remove, methods=["POST"]),
        Route("/lines/{line}/render", draft_render, methods=["POST"]),
        Route("/lines/{line}/audio/{lang}/{key}.wav", prompt_audio, methods=["GET"]),
        Route("/lines/{line}/publish", publish_page, methods=["GET"]),
        Route("/lines/{line}/publish", publish_submit, methods=["POST"]),
        Route("/lines/{line}/versions", versions_page, methods=["GET"]),
        Route("/lines/{line}/versions/{number:int}", version_page, methods=["GET"]),
        Route("/lines/{line}/rollback", rollback_submit, methods=["POST"]),
        Route("/lines/{line}/try", try_page, methods=["GET"]),
        Route("/lines/{line}/try", try_start, methods=["POST"]),
        Route("/try/{call_id}", try_input, methods=["POST"]),
        Route("/try/{call_id}/audio/{n:int}.wav", try_audio, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="ivr_console",
            max_age=settings.console_idle_minutes * 60,
            same_site="strict",
            https_only=False,  # loopback by default; behind a TLS proxy the proxy sets Secure
        )
    ]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={Refused: refused}
    )
    app.state.console = console
    return app


# ---- helpers ---------------------------------------------------------------------------------------


def snap(row: Any) -> Any:
    """A row's column values, to use after its unit of work has ended (a read unit rolls back, which
    expires ORM objects)."""
    if row is None:
        return None
    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


def C(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def whoami(request: Request) -> Staff | None:
    console = C(request)
    name = session_user(
        request, console.settings.console_idle_minutes * 60, console.settings.console_session_hours * 3600
    )
    if name is None:
        return None
    with console.uow() as uow:
        return staff_service.current(uow, name)


def need(request: Request, role: str = "viewer") -> Staff:
    staff = whoami(request)
    if staff is None:
        raise Refused(401, "log in first")
    if not staff.can(role):
        raise Refused(403, f"this needs the {role} role; you are {staff.role}")
    return staff


async def need_change(request: Request, role: str) -> tuple[Staff, Mapping[str, Any]]:
    """A change: the role, and the CSRF token from the form or the X-CSRF-Token header. Returns the form
    (or the JSON body) too."""
    staff = need(request, role)
    body: Mapping[str, Any]
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        if not isinstance(body, dict):
            raise Refused(400, "a JSON object is expected")
        sent = request.headers.get(CSRF_HEADER)
    else:
        body = await request.form(max_files=1, max_fields=2000)
        sent = str(body.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    check_csrf(request, sent)
    return staff, body


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    wants_json = "application/json" in request.headers.get("accept", "") or request.headers.get(
        "content-type", ""
    ).startswith("application/json")
    if exc.status == 401 and not wants_json and request.method == "GET":
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if wants_json:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return page(request, "message.html", {"title": "Refused", "message": exc.message}, status=exc.status)


def page(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    console = C(request)
    staff = context.get("staff")
    if staff is None and "user" in request.session:
        staff = whoami(request)
    base = {"staff": staff, "csrf": csrf_token(request), "roles": ROLES}
    return console.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def known_line(request: Request) -> str:
    line = str(request.path_params["line"])
    if line not in line_names(C(request).settings.prompts):
        raise Refused(404, f"no line {line}")
    return line


def files_of(body: Mapping[str, Any]) -> dict[str, str]:
    files = body.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise Refused(400, "files: an object of path -> text is expected")
    return dict(files)


def node_lines(tree_source: str) -> list[tuple[int, str]]:
    """(first line, node id) of every node of a tree file's text, in order: an error's line -> its node."""
    try:
        root, loader = compose_yaml(tree_source, "tree")
        loader.dispose()
    except Exception:
        return []
    out: list[tuple[int, str]] = []
    if root is None or not hasattr(root, "value"):
        return out
    for key, value in root.value:
        if getattr(key, "value", None) == "nodes" and hasattr(value, "value"):
            for node_key, _node in value.value:
                out.append((node_key.start_mark.line + 1, str(node_key.value)))
    return out


def problems_view(line: str, files: Mapping[str, str], problems: list[Problem]) -> list[dict[str, Any]]:
    starts = node_lines(files.get(f"{line}.yaml", ""))
    out = []
    for p in problems:
        node = ""
        if p.file == f"{line}.yaml":
            for start, nid in starts:
                if start <= p.lineno:
                    node = nid
        out.append({**p.as_dict(), "node": node, "text": str(p)})
    return out


async def checked(console: Console, line: str, files: Mapping[str, str]) -> list[dict[str, Any]]:
    problems = await asyncio.to_thread(check_line, console.settings.prompts, line, files)
    return problems_view(line, files, problems)


def client(request: Request) -> str:
    return request.client.host if request.client else "-"


# ---- login -----------------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return page(request, "login.html", {"next": request.query_params.get("next", "/"), "error": ""})


async def login_submit(request: Request) -> Response:
    console = C(request)
    form = await request.form()
    # The login form has a CSRF token of its own (login CSRF): the session cookie must have come first.
    check_csrf(request, str(form.get(CSRF_FIELD, "")))
    address = client(request)
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if not console.throttle.allowed(address):
        return page(
            request,
            "login.html",
            {"next": target, "error": "Too many failed logins: wait a few minutes."},
            status=429,
        )
    username = str(form.get("username", "")).strip().lower()
    password = str(form.get("password", ""))

    def attempt() -> Staff | None:
        with console.uow(write=True) as uow:
            found = staff_service.login(uow, username, password)
            uow.commit()
            return found

    staff = await asyncio.to_thread(attempt)
    if staff is None:
        console.throttle.failed(address)
        log.info("console: failed login for %r from %s", username[:64], address)
        return page(
            request,
            "login.html",
            {"next": target, "error": "Wrong user name or password, or the account is locked."},
            status=401,
        )
    console.throttle.succeeded(address)
    start_session(request, staff)
    log.info("console: %s logged in from %s", staff.username, address)
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD, "")))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# ---- pages -------------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    staff = need(request)
    console = C(request)
    await asyncio.to_thread(console.sync_from_files)  # an edit made with a text editor shows as a version
    rows = []
    with console.uow() as uow:
        for line in line_names(console.settings.prompts):
            current, top = snap(versions.live(uow, line)), snap(versions.latest(uow, line))
            draft = snap(versions.draft(uow, line, staff.username))
            rows.append({"line": line, "live": current, "latest": top, "draft": draft})
    return page(request, "lines.html", {"rows": rows, "staff": staff})


def _tree_or_none(prompts: Path, line: str, files: Mapping[str, str]) -> Any:
    with scratch_prompts(prompts, line, files) as root:
        try:
            return load_tree(root / f"{line}.yaml", catalog())
        except (TreeInvalid, OSError):
            return None


def which_files(
    request: Request, staff: Staff, line: str, want: str | None = None
) -> tuple[str, dict[str, str]]:
    """The files a page shows: ?from=draft (the user's draft, else live), live, or a version number."""
    want = want or request.query_params.get("from", "draft")
    console = C(request)
    with console.uow() as uow:
        if want == "draft":
            found = versions.draft(uow, line, staff.username)
            if found is not None:
                return "draft", dict(found.files)
            want = "live"
        if want == "live":
            current = versions.live(uow, line)
            if current is not None:
                return f"live (version {current.number})", dict(current.files)
            return "files", read_line(console.settings.prompts, line)
        if want.isdigit():
            version = versions.get(uow, line, int(want))
            if version is not None:
                return f"version {version.number}", dict(version.files)
    raise Refused(404, f"no {want} of {line}")


def texts_table(line: str, files: Mapping[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Languages and rows (key -> text per language) of the line's own texts."""
    langs: list[str] = []
    by_lang: dict[str, dict[str, str]] = {}
    for path in sorted(files):
        if path.startswith("texts/") and path.endswith(".yaml"):
            lang = path.split(".")[-2]
            langs.append(lang)
            try:
                by_lang[lang] = texts_of(files[path], path)
            except TextEditError:
                by_lang[lang] = {}
    keys = sorted({k for texts in by_lang.values() for k in texts})
    recorded = {(p.split("/")[2], Path(p).stem) for p in files if p.startswith("recordings/")}
    rows = [
        {
            "key": k,
            "texts": {lang: by_lang[lang].get(k, "") for lang in langs},
            "recorded": [lang for lang in langs if (lang, k) in recorded],
        }
        for k in keys
    ]
    return langs, rows


async def line_page(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    console = C(request)
    label, files = which_files(request, staff, line)
    tree = await asyncio.to_thread(_tree_or_none, console.settings.prompts, line, files)
    svg = await asyncio.to_thread(tree_svg, tree) if tree is not None else ""
    langs, rows = texts_table(line, files)
    nodes = []
    if tree is not None:
        for node in tree.nodes.values():
            keys = sorted(prompt_keys_of(node))
            nodes.append({"id": node.id, "kind": type(node).__name__.removesuffix("Node"), "keys": keys})
    problems = [] if tree is not None else await checked(console, line, files)
    return page(
        request,
        "line.html",
        {
            "line": line,
            "label": label,
            "svg": svg,
            "langs": langs,
            "rows": rows,
            "nodes": nodes,
            "problems": problems,
            "staff": staff,
            "source": request.query_params.get("from", "draft"),
        },
    )


def prompt_keys_of(node: Any) -> set[str]:
    """The prompt keys a node says (every PromptRef-like attribute holding a key)."""
    keys: set[str] = set()

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        key = getattr(value, "key", None)
        if isinstance(key, str) and hasattr(value, "values"):
            keys.add(key)
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name), depth + 1)

    walk(node)
    return keys


async def graph_svg(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    _label, files = which_files(request, staff, line)
    tree = await asyncio.to_thread(_tree_or_none, C(request).settings.prompts, line, files)
    if tree is None:
        raise Refused(409, "the tree has errors: no graph")
    return Response(await asyncio.to_thread(tree_svg, tree), media_type="image/svg+xml")


async def edit_page(request: Request) -> Response:
    staff = need(request, "editor")
    line = known_line(request)
    console = C(request)
    with console.uow(write=True) as uow:
        draft = versions.open_draft(uow, line, staff.username)
        files, base = dict(draft.files), draft.base
        top = versions.latest(uow, line)
        uow.commit()
    langs, rows = texts_table(line, files)
    problems = await checked(console, line, files)
    yaml_files = {p: t for p, t in sorted(files.items()) if p.endswith(".yaml")}
    return page(
        request,
        "edit.html",
        {
            "line": line,
            "files": yaml_files,
            "base": base,
            "latest": top.number if top else 0,
            "langs": langs,
            "rows": rows,
            "problems": problems,
            "staff": staff,
        },
    )


async def draft_check(request: Request) -> Response:
    _staff, body = await need_change(request, "viewer")
    line = known_line(request)
    files = files_of(body)
    return JSONResponse({"problems": await checked(C(request), line, files)})


def _keep_recordings(old: Mapping[str, str], new: dict[str, str]) -> dict[str, str]:
    """The YAML editor sends only text files; the draft's recordings stay."""
    for path, content in old.items():
        if path.startswith("recordings/") and path not in new:
            new[path] = content
    return new


async def draft_save(request: Request) -> Response:
    staff, body = await need_change(request, "editor")
    line = known_line(request)
    console = C(request)
    files = files_of(body)
    with console.uow(write=True) as uow:
        draft = versions.open_draft(uow, line, staff.username)
        merged = _keep_recordings(draft.files, files)
        versions.update_draft(uow, line, staff.username, merged)
        uow.commit()
    return JSONResponse({"saved": True, "problems": await checked(console, line, merged)})


async def text_save(request: Request) -> Response:
    """The structured form: one text of one language set in the draft's texts file."""
    staff, body = await need_change(request, "editor")
    line = known_line(request)
    console = C(request)
    lang, key, text = str(body.get("lang", "")), str(body.get("key", "")), str(body.get("text", ""))
    path = f"texts/{line}.{lang}.yaml"
    with console.uow(write=True) as uow:
        draft = versions.open_draft(uow, line, staff.username)
        files = dict(draft.files)
        if path not in files:
            raise Refused(400, f"{line} has no {lang} texts")
        try:
            files[path] = set_text(files[path], key, text, path)
        except TextEditError as exc:
            raise Refused(400, str(exc)) from exc
        versions.update_draft(uow, line, staff.username, files)
        uow.commit()
    recorded = f"recordings/{line}/{lang}/{key}.wav" in files
    return JSONResponse(
        {
            "saved": True,
            "file": path,
            "source": files[path],
            "recorded": recorded,
            "problems": await checked(console, line, files),
        }
    )


async def draft_discard(request: Request) -> Response:
    staff, _body = await need_change(request, "editor")
    line = known_line(request)
    with C(request).uow(write=True) as uow:
        versions.discard_draft(uow, line, staff.username)
        uow.commit()
    return RedirectResponse(f"/lines/{line}", status_code=303)


async def version_save(request: Request) -> Response:
    staff, body = await need_change(request, "editor")
    line = known_line(request)
    console = C(request)
    with console.uow() as uow:
        draft = versions.draft(uow, line, staff.username)
        files = dict(draft.files) if draft else {}
    problems = await checked(console, line, files) if files else []
    if problems:
        return page(
            request,
            "message.html",
            {"title": "Not saved", "message": "The draft has errors; fix them first.", "problems": problems},
            status=422,
        )
    try:
        with console.uow(write=True) as uow:
            version = versions.save_version(uow, line, staff.username, str(body.get("comment", "")))
            number = version.number
            uow.commit()
    except versions.VersionConflict as exc:
        return page(
            request,
            "conflict.html",
            {
                "line": line,
                "base": exc.base,
                "latest": exc.latest_number,
                "author": exc.latest_author,
                "diff": exc.diff,
            },
            status=409,
        )
    except (LookupError, ValueError) as exc:
        raise Refused(409, str(exc)) from exc
    return RedirectResponse(f"/lines/{line}/versions/{number}?saved=1", status_code=303)


async def recording_upload(request: Request) -> Response:
    staff, form = await need_change(request, "editor")
    line = known_line(request)
    console = C(request)
    lang, key = str(form.get("lang", "")), str(form.get("key", ""))
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise Refused(400, "choose a file to upload")
    try:
        data = await upload.read(audio.MAX_UPLOAD_BYTES + 1)
    finally:
        await upload.close()  # the spooled temporary file of the upload
    try:
        wav = await asyncio.to_thread(audio.recording_from_upload, str(upload.filename or ""), data)
    except audio.UploadError as exc:
        raise Refused(400, str(exc)) from exc
    path = f"recordings/{line}/{lang}/{key}.wav"
    with console.uow(write=True) as uow:
        draft = versions.open_draft(uow, line, staff.username)
        files = dict(draft.files)
        if f"texts/{line}.{lang}.yaml" not in files or key not in texts_of(
            files[f"texts/{line}.{lang}.yaml"]
        ):
            raise Refused(400, f"{key} has no {lang} text in {line}: a recording replaces a text's synthesis")
        files[path] = base64.b64encode(wav).decode()
        versions.update_draft(uow, line, staff.username, files)
        staff_service.audit(uow, staff.username, "upload", line=line, detail=f"{path} ({len(wav)} bytes)")
        uow.commit()
    return RedirectResponse(f"/lines/{line}/edit#texts", status_code=303)


async def recording_remove(request: Request) -> Response:
    staff, form = await need_change(request, "editor")
    line = known_line(request)
    lang, key = str(form.get("lang", "")), str(form.get("key", ""))
    path = f"recordings/{line}/{lang}/{key}.wav"
    with C(request).uow(write=True) as uow:
        draft = versions.open_draft(uow, line, staff.username)
        files = dict(draft.files)
        if files.pop(path, None) is None:
            raise Refused(404, f"the draft has no recording {path}")
        versions.update_draft(uow, line, staff.username, files)
        staff_service.audit(uow, staff.username, "recording_removed", line=line, detail=path)
        uow.commit()
    return RedirectResponse(f"/lines/{line}/edit#texts", status_code=303)


async def draft_render(request: Request) -> Response:
    staff, _body = await need_change(request, "editor")
    line = known_line(request)
    console = C(request)
    with console.uow() as uow:
        draft = versions.draft(uow, line, staff.username)
        files = dict(draft.files) if draft else read_line(console.settings.prompts, line)
    report = await asyncio.to_thread(audio.render_prompts, console.settings, line, files)
    return JSONResponse(
        {"rendered": report.rendered, "skipped": report.skipped, "failed": [f for f, _e in report.failed]}
    )


async def prompt_audio(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    lang, key = str(request.path_params["lang"]), str(request.path_params["key"])
    _label, files = which_files(request, staff, line)
    try:
        data, text = await asyncio.to_thread(audio.prompt_wav, C(request).settings, line, files, lang, key)
    except PromptNotFound as exc:
        raise Refused(404, str(exc)) from exc
    return Response(
        data,
        media_type="audio/wav",
        headers={"Cache-Control": "no-store", "X-Prompt-Text": text.encode("utf-8").hex()},
    )


# ---- publish, versions, rollback ---------------------------------------------------------------------


async def publish_page(request: Request) -> Response:
    staff = need(request, "viewer")
    line = known_line(request)
    console = C(request)
    with console.uow() as uow:
        top, current = snap(versions.latest(uow, line)), snap(versions.live(uow, line))
        if top is None:
            raise Refused(404, f"{line} has no version")
        diff = versions.files_diff(
            current.files if current else {},
            top.files,
            old_label=f"v{current.number if current else 0}",
            new_label=f"v{top.number}",
        )
        files = dict(top.files)
    problems = await checked(console, line, files)
    return page(
        request,
        "publish.html",
        {"line": line, "top": top, "live": current, "diff": diff, "problems": problems, "staff": staff},
    )


def form_number(form: Mapping[str, Any]) -> int:
    text = str(form.get("number", ""))
    if not text.isdigit():
        raise Refused(400, "a version number is expected")
    return int(text)


async def publish_or_refuse(
    request: Request, line: str, number: int, staff: Staff, *, action: str, refused_title: str
) -> Response:
    """Publish version `number` (the caller holds the publish lock); the versions page, or why not."""
    console = C(request)
    try:
        await asyncio.to_thread(
            publish_version, console.settings, console.uow, line, number, staff.username, action=action
        )
    except PublishError as exc:
        problems = [{"text": str(p)} for p in exc.problems]
        context = {"title": refused_title, "message": str(exc), "problems": problems}
        return page(request, "message.html", context, status=409)
    return RedirectResponse(f"/lines/{line}/versions?published={number}", status_code=303)


async def publish_submit(request: Request) -> Response:
    staff, form = await need_change(request, "publisher")
    line = known_line(request)
    number = form_number(form)
    async with C(request).publish_lock:
        return await publish_or_refuse(
            request, line, number, staff, action="publish", refused_title="Not published"
        )


async def rollback_submit(request: Request) -> Response:
    staff, form = await need_change(request, "publisher")
    line = known_line(request)
    console = C(request)
    number = form_number(form)
    async with console.publish_lock:
        try:
            with console.uow(write=True) as uow:
                new = versions.rollback_version(uow, line, number, staff.username).number
                uow.commit()
        except LookupError as exc:
            raise Refused(404, str(exc)) from exc
        return await publish_or_refuse(
            request, line, new, staff, action="rollback", refused_title="Not rolled back"
        )


async def versions_page(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    with C(request).uow() as uow:
        rows = [snap(v) for v in versions.history(uow, line)]
        current = snap(versions.live(uow, line))
    return page(request, "versions.html", {"line": line, "rows": rows, "live": current, "staff": staff})


async def version_page(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    number = int(request.path_params["number"])
    with C(request).uow() as uow:
        version = snap(versions.get(uow, line, number))
        if version is None:
            raise Refused(404, f"{line} has no version {number}")
        before = snap(versions.get(uow, line, version.base)) if version.base else None
        diff = versions.files_diff(
            before.files if before else {},
            version.files,
            old_label=f"v{before.number if before else 0}",
            new_label=f"v{number}",
        )
    return page(request, "version.html", {"line": line, "version": version, "diff": diff, "staff": staff})


# ---- try a call --------------------------------------------------------------------------------------


async def try_page(request: Request) -> Response:
    staff = need(request)
    line = known_line(request)
    console = C(request)
    label, files = which_files(request, staff, line)
    tree = await asyncio.to_thread(_tree_or_none, console.settings.prompts, line, files)
    svg = await asyncio.to_thread(tree_svg, tree) if tree is not None else ""
    numbers = await asyncio.to_thread(console.try_calls.service_numbers, line)
    langs = [p.split(".")[-2] for p in sorted(files) if p.startswith("texts/")]
    default = console.settings.default_language
    langs.sort(key=lambda lang: (lang != default, lang))  # the line's first language is the default
    from ivr.testbed.demo_data import DEMO

    callers = [(n.msisdn, f"{n.name}: {n.situation}") for a in DEMO for n in a.numbers][:16]
    return page(
        request,
        "try.html",
        {
            "line": line,
            "label": label,
            "svg": svg,
            "numbers": numbers,
            "langs": langs,
            "callers": callers,
            "source": request.query_params.get("from", "draft"),
            "staff": staff,
        },
    )


async def try_start(request: Request) -> Response:
    staff, body = await need_change(request, "viewer")
    line = known_line(request)
    console = C(request)
    _label, files = which_files(request, staff, line, str(body.get("from") or "draft"))
    try:
        tc = await console.try_calls.start(
            line,
            staff.username,
            files,
            caller=str(body.get("caller") or "") or None,
            did=str(body.get("did") or ""),
            language=str(body.get("language") or console.settings.default_language),
        )
    except RuntimeError as exc:
        raise Refused(409, str(exc)) from exc
    return JSONResponse(console.try_calls.view(tc))


async def try_input(request: Request) -> Response:
    staff, body = await need_change(request, "viewer")
    console = C(request)
    tc = console.try_calls.get(str(request.path_params["call_id"]), staff.username)
    if tc is None:
        raise Refused(404, "this try call has ended")
    kind = str(body.get("kind", ""))
    value = str(body.get("value", ""))
    event: Digits | Speech | NoInput | None
    if kind == "keys" and value and set(value) <= set("0123456789*#"):
        event = Digits(value)
    elif kind == "say" and value.strip():
        event = Speech(value.strip())
    elif kind == "silence":
        event = NoInput()
    elif kind == "hangup":
        event = None
    else:
        raise Refused(400, "send keys (0-9 * #), a phrase, silence or hangup")
    await console.try_calls.send(tc, event)
    return JSONResponse(console.try_calls.view(tc))


async def try_audio(request: Request) -> Response:
    staff = need(request)
    console = C(request)
    tc = console.try_calls.get(str(request.path_params["call_id"]), staff.username)
    n = int(request.path_params["n"])
    if tc is None or not 0 <= n < len(tc.channel.heard):
        raise Refused(404, "no such prompt")
    heard = tc.channel.heard[n]

    def build() -> bytes:
        voice = tc.app.voice
        try:
            paths = [p for p in voice.files(tc.line, heard.language, heard.ref) if p.is_file()]
        except Exception:
            paths = []
        return audio.join_wavs(paths)

    return Response(
        await asyncio.to_thread(build), media_type="audio/wav", headers={"Cache-Control": "no-store"}
    )


# ---- the call report ---------------------------------------------------------------------------------


def report_period(request: Request) -> tuple[dt.date, dt.date, str | None]:
    today = dt.datetime.now(dt.UTC).date()
    try:
        first = dt.date.fromisoformat(request.query_params.get("since") or str(today - dt.timedelta(days=7)))
        last = dt.date.fromisoformat(request.query_params.get("until") or str(today))
    except ValueError as exc:
        raise Refused(400, "dates are YYYY-MM-DD") from exc
    if last < first or (last - first).days > 366:
        raise Refused(400, "the period is from a day to at most a year, the first day first")
    return first, last, request.query_params.get("line") or None


def load_report(console: Console, first: dt.date, last: dt.date, line: str | None) -> list[Any]:
    since = dt.datetime.combine(first, dt.time())
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    with console.uow() as uow:
        return call_report(uow, since, until, line=line)


def report_charts(r: Any) -> dict[str, str]:
    outcomes = [
        ("contained", r.contained),
        ("self-served, called again", r.self_served - r.contained),
        ("transferred", r.transferred),
        ("abandoned", r.abandoned),
        ("failed", r.failed),
    ]
    nodes = sorted(r.nodes.items(), key=lambda item: (-item[1].visits, item[0]))[:15]
    return {
        "outcomes": charts.stacked(outcomes, title="How the calls ended"),
        "reasons": charts.bars(r.transfer_reasons.most_common(), title="Transfers by reason"),
        "visits": charts.bars([(n, f.visits) for n, f in nodes], title="Visits per node (the 15 busiest)"),
        "drop_off": charts.bars(
            [(n, round(100 * f.rate(f.drop_off), 1)) for n, f in nodes if f.drop_off],
            title="Drop-off per node (% of its visits)",
            unit=" %",
            colour="#d98e04",
        ),
        "no_input": charts.bars(
            [
                (n, round(100 * f.rate(f.no_input + f.no_match), 1))
                for n, f in nodes
                if f.no_input + f.no_match
            ],
            title="No-input and no-match per node (% of its visits)",
            unit=" %",
            colour="#b3261e",
        ),
    }


async def report_page(request: Request) -> Response:
    staff = need(request)
    console = C(request)
    first, last, line = report_period(request)
    reports = await asyncio.to_thread(load_report, console, first, last, line)
    rows = [{"r": r, "charts": report_charts(r)} for r in reports]
    return page(
        request,
        "report.html",
        {
            "rows": rows,
            "first": first,
            "last": last,
            "line": line or "",
            "lines": line_names(console.settings.prompts),
            "staff": staff,
        },
    )


async def report_csv(request: Request) -> Response:
    need(request)
    first, last, line = report_period(request)
    reports = await asyncio.to_thread(load_report, C(request), first, last, line)
    out = io.StringIO()
    write_csv(reports, out)
    name = f"ivr-report-{first}-{last}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---- audit and staff -----------------------------------------------------------------------------------


async def audit_page(request: Request) -> Response:
    staff = need(request)
    line = request.query_params.get("line") or None
    with C(request).uow() as uow:
        rows = [snap(a) for a in staff_service.audit_trail(uow, line=line)]
    return page(request, "audit.html", {"rows": rows, "line": line or "", "staff": staff})


async def staff_page(request: Request) -> Response:
    staff = need(request, "admin")
    with C(request).uow() as uow:
        rows = [snap(u) for u in staff_service.list_staff(uow)]
    return page(request, "staff.html", {"rows": rows, "staff": staff, "error": ""})


async def staff_submit(request: Request) -> Response:
    staff, form = await need_change(request, "admin")
    console = C(request)
    op = str(form.get("op", ""))
    username = str(form.get("username", "")).strip().lower()
    try:
        with console.uow(write=True) as uow:
            if op == "add":
                staff_service.add_staff(
                    uow,
                    username,
                    str(form.get("password", "")),
                    str(form.get("role", "viewer")),
                    by=staff.username,
                )
            elif op == "role":
                staff_service.set_role(uow, username, str(form.get("role", "")), by=staff.username)
            elif op in ("disable", "enable"):
                if username == staff.username:
                    raise StaffError("you cannot disable yourself")
                staff_service.set_disabled(uow, username, op == "disable", by=staff.username)
            elif op == "password":
                staff_service.set_password(uow, username, str(form.get("password", "")), by=staff.username)
            else:
                raise StaffError("unknown operation")
            uow.commit()
    except StaffError as exc:
        with console.uow() as uow:
            rows = [snap(u) for u in staff_service.list_staff(uow)]
        return page(request, "staff.html", {"rows": rows, "staff": staff, "error": str(exc)}, status=400)
    return RedirectResponse("/staff", status_code=303)
