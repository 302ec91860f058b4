// The console's few scripts: validation as you type, hearing prompts, trying a call. No framework, no
// build step, nothing fetched from outside the console.
"use strict";
const Console = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf()},
      body: JSON.stringify(body || {}),
    });
    const data = await res.json().catch(() => ({error: res.statusText}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  let player = null;
  function play(src) {
    if (player) player.pause();
    player = new Audio(src);
    window.consolePlayer = player;
    player.play().catch(() => {});
    document.body.dataset.lastPlayed = src;
    return player;
  }
  document.addEventListener("click", (e) => {
    const b = e.target.closest("button.play");
    if (b) play(b.dataset.src + (b.dataset.src.includes("?") ? "&" : "?") + "t=" + Date.now());
  });

  function showProblems(problems) {
    const status = document.getElementById("check-status");
    const list = document.getElementById("problems");
    if (!status || !list) return;
    status.textContent = problems.length ? `${problems.length} error(s)` : "No errors";
    status.className = problems.length ? "bad" : "good";
    list.innerHTML = "";
    document.querySelectorAll("textarea.text.error").forEach((t) => t.classList.remove("error"));
    for (const p of problems) {
      // "texts/operator.ru.yaml: main_menu: ..." marks that text's field too
      const m = /texts\/[a-z0-9_]+\.([a-z]{2})\.yaml: ([a-z0-9_]+):/.exec(p.text || "");
      const field = m && document.getElementById(`text-${m[1]}-${m[2]}`);
      if (field) field.classList.add("error");
      const li = document.createElement("li");
      li.dataset.file = p.file;
      li.dataset.line = p.lineno;
      li.textContent = (p.node ? p.node + " · " : "") + p.text;
      li.addEventListener("click", () => jumpTo(p.file, p.lineno));
      list.appendChild(li);
    }
  }

  function jumpTo(file, lineno) {
    const area = document.querySelector(`textarea.yaml[data-path="${file}"]`);
    if (!area) return;
    area.closest("details").open = true;
    const lines = area.value.split("\n");
    const start = lines.slice(0, lineno - 1).join("\n").length + (lineno > 1 ? 1 : 0);
    area.focus();
    area.setSelectionRange(start, start + (lines[lineno - 1] || "").length);
  }

  function yamlFiles() {
    const files = {};
    document.querySelectorAll("textarea.yaml").forEach((t) => { files[t.dataset.path] = t.value; });
    return files;
  }

  function editor() {
    const root = document.querySelector(".editor");
    const line = root.dataset.line;
    let timer = null;
    document.querySelectorAll("textarea.yaml").forEach((area) => {
      area.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(async () => {
          try { showProblems((await post(`/lines/${line}/draft`, {files: yamlFiles()})).problems); }
          catch (err) { showProblems([{text: String(err.message), file: "", lineno: 0}]); }
        }, 500);
      });
    });
    document.querySelectorAll("textarea.text").forEach((area) => {
      area.addEventListener("change", async () => {
        area.classList.add("saving");
        try {
          const r = await post(`/lines/${line}/text`, {lang: area.dataset.lang, key: area.dataset.key, text: area.value});
          const yaml = document.querySelector(`textarea.yaml[data-path="${r.file}"]`);
          if (yaml) yaml.value = r.source;
          showProblems(r.problems);
          area.classList.remove("saving");
          area.classList.add("saved");
          area.title = r.recorded ? "This text has a recording: callers hear the recording until you remove it or upload a new one" : "";
          area.classList.toggle("recorded-stale", !!r.recorded);
        } catch (err) {
          area.classList.remove("saving");
          showProblems([{text: String(err.message), file: "", lineno: 0}]);
        }
      });
    });
    document.querySelectorAll("#problems li").forEach((li) => li.addEventListener("click", () => jumpTo(li.dataset.file, +li.dataset.line)));
    const render = document.getElementById("render");
    render.addEventListener("click", async () => {
      const out = document.getElementById("render-status");
      out.textContent = "Rendering…";
      try {
        const r = await post(`/lines/${line}/render`, {});
        out.textContent = `Rendered ${r.rendered}, unchanged ${r.skipped}` + (r.failed.length ? `, failed: ${r.failed.join(", ")}` : "");
      } catch (err) { out.textContent = String(err.message); }
    });
  }

  function markPath(path, current) {
    document.querySelectorAll("#graph g.node").forEach((g) => g.classList.remove("visited", "current"));
    for (const id of path) {
      const g = document.getElementById("node-" + id);
      if (g) g.classList.add("visited");
    }
    const now = document.getElementById("node-" + current);
    if (now) {
      now.classList.add("current");
      now.scrollIntoView({block: "center", inline: "center"});
    }
  }

  function tryCall() {
    const root = document.querySelector(".try");
    const line = root.dataset.line;
    let callId = null;
    const transcript = document.getElementById("transcript");
    const state = document.getElementById("try-state");
    const queue = [];
    let playing = false;

    function playNext() {
      if (playing || !queue.length) return;
      playing = true;
      const a = play(queue.shift());
      const next = () => { playing = false; playNext(); };
      a.addEventListener("ended", next);
      a.addEventListener("error", next);
    }

    function show(view) {
      callId = view.id;
      for (const h of view.heard) {
        const li = document.createElement("li");
        li.className = "heard";
        li.dataset.key = h.key;
        const src = `/try/${view.id}/audio/${h.n}.wav`;
        li.innerHTML = `<button type="button" class="play" data-src="${src}">▶</button> <code></code> <span></span>`;
        li.querySelector("code").textContent = h.key;
        li.querySelector("span").textContent = h.text;
        transcript.appendChild(li);
        queue.push(src);
      }
      playNext();
      markPath(view.path, view.node);
      root.dataset.node = view.node;
      root.dataset.path = view.path.join(" ");
      if (view.ended) {
        state.textContent = "Call ended: " + view.ended;
        root.dataset.ended = view.ended;
      } else if (view.waiting) {
        const w = view.waiting;
        state.textContent = `At ${view.node}: waiting for ` + (w.max_digits > 1 ? `up to ${w.max_digits} keys` : "a key") + (w.secret ? " (secret)" : "") + (w.phrases.length ? ` or a phrase: ${w.phrases.join(", ")}` : "");
        root.dataset.ended = "";
      }
    }

    async function send(kind, value) {
      if (!callId) return;
      const li = document.createElement("li");
      li.className = "caller";
      li.textContent = kind === "keys" ? `☎ pressed ${value}` : kind === "say" ? `☎ said “${value}”` : `☎ ${kind}`;
      transcript.appendChild(li);
      try { show(await post(`/try/${callId}`, {kind, value})); }
      catch (err) { state.textContent = String(err.message); }
    }

    document.getElementById("try-start").addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      transcript.innerHTML = "";
      state.textContent = "Calling…";
      try {
        show(await post(`/lines/${line}/try`, {from: root.dataset.from, did: f.get("did"), caller: f.get("caller"), language: f.get("language")}));
      } catch (err) { state.textContent = String(err.message); }
    });
    document.querySelectorAll("#keypad .key").forEach((b) => b.addEventListener("click", () => send("keys", b.dataset.key)));
    document.getElementById("try-keys").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = document.getElementById("keys").value.trim();
      document.getElementById("keys").value = "";
      if (v) send("keys", v);
    });
    document.getElementById("try-say").addEventListener("submit", (e) => {
      e.preventDefault();
      const v = document.getElementById("phrase").value.trim();
      document.getElementById("phrase").value = "";
      if (v) send("say", v);
    });
    document.getElementById("silence").addEventListener("click", () => send("silence", ""));
    document.getElementById("hangup").addEventListener("click", () => send("hangup", ""));
  }

  // Graphs: fit to the width, or actual size; a click on a node shows its row in the table below.
  document.querySelectorAll(".graph").forEach((graph) => {
    const tools = document.createElement("div");
    tools.className = "graph-tools";
    const zoom = document.createElement("button");
    zoom.type = "button";
    zoom.textContent = "Actual size";
    zoom.addEventListener("click", () => {
      graph.classList.toggle("zoomed");
      zoom.textContent = graph.classList.contains("zoomed") ? "Fit to width" : "Actual size";
    });
    tools.appendChild(zoom);
    graph.before(tools);
    graph.addEventListener("click", (e) => {
      const node = e.target.closest("g.node");
      const row = node && document.getElementById("row-" + node.id.replace(/^node-/, ""));
      if (!row) return;
      document.querySelectorAll("tr.picked").forEach((r) => r.classList.remove("picked"));
      row.classList.add("picked");
      row.scrollIntoView({block: "center"});
    });
  });

  // Diffs: added lines green, removed red (built as text nodes: a diff is never parsed as HTML).
  document.querySelectorAll("pre.diff").forEach((pre) => {
    const lines = pre.textContent.split("\n");
    pre.textContent = "";
    for (const line of lines) {
      const span = document.createElement("span");
      span.textContent = line + "\n";
      if (line.startsWith("+") && !line.startsWith("+++")) span.className = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) span.className = "del";
      else if (line.startsWith("@@")) span.className = "hunk";
      pre.appendChild(span);
    }
  });

  return {editor, tryCall, play, post};
})();
