// The flightdeck playground: ask (streamed over server-sent events), read the citations, search.
// Every text that comes from the documents, the model or the server is untrusted: it only ever reaches the
// page through textContent / text nodes, never as HTML.
"use strict";

(function () {
  const KEY_STORAGE = "flightdeck.apiKey";

  const $ = (id) => {
    const el = document.getElementById(id);
    if (!el) throw new Error("playground: no element #" + id);
    return el;
  };

  const el = {
    ready: $("ready"),
    key: $("api-key"), keyClear: $("key-clear"),
    tabAsk: $("tab-ask"), tabSearch: $("tab-search"), panelAsk: $("panel-ask"), panelSearch: $("panel-search"),
    askForm: $("ask-form"), question: $("question"), ask: $("ask"), stop: $("stop"), askStatus: $("ask-status"),
    askError: $("ask-error"), result: $("result"), answer: $("answer"), notFound: $("not-found"),
    answerMeta: $("answer-meta"), citations: $("citations"), noCitations: $("no-citations"),
    detail: $("citation-detail"), detailNumber: $("detail-number"), detailQuote: $("detail-quote"),
    detailTitle: $("detail-title"), detailHeading: $("detail-heading"), detailDocument: $("detail-document"),
    detailSource: $("detail-source"), traceBox: $("trace-box"), trace: $("trace"),
    searchForm: $("search-form"), query: $("query"), k: $("k"), mode: $("mode"), where: $("where"),
    whereError: $("where-error"), search: $("search"), searchStatus: $("search-status"),
    searchError: $("search-error"), searchMeta: $("search-meta"), hits: $("hits"),
    hitTemplate: $("hit-template"),
  };

  // --- the key: this tab's session storage only ---------------------------------------------------------
  function storage() {
    try { return window.sessionStorage; } catch (_) { return null; }  // storage can be disabled
  }
  const store = storage();
  if (store) el.key.value = store.getItem(KEY_STORAGE) || "";
  el.key.addEventListener("input", () => {
    if (!store) return;
    const key = el.key.value.trim();
    if (key) store.setItem(KEY_STORAGE, key); else store.removeItem(KEY_STORAGE);
  });
  el.keyClear.addEventListener("click", () => {
    el.key.value = "";
    if (store) store.removeItem(KEY_STORAGE);
    el.key.focus();
  });

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    const key = el.key.value.trim();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  // --- errors -------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, detail) {
      super(message);
      this.status = detail.status || 0;
      this.type = detail.type || "";
      this.requestId = detail.requestId || "";
    }
  }

  // The API's error shape is {"error": {"type", "message", "request_id"}}; anything else (a proxy's page)
  // is reported by its status.
  async function errorFrom(response) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const err = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
    const message = typeof err.message === "string" && err.message
      ? err.message : "the server answered " + response.status + " " + response.statusText;
    return new ApiError(message, {
      status: response.status, type: typeof err.type === "string" ? err.type : "",
      requestId: typeof err.request_id === "string" && err.request_id
        ? err.request_id : (response.headers.get("X-Request-ID") || ""),
    });
  }

  function showError(box, error) {
    box.replaceChildren();
    const title = document.createElement("strong");
    if (error instanceof ApiError) {
      title.textContent = (error.status ? error.status + " " : "") + (error.type || "error");
      box.append(title, document.createTextNode(": " + error.message));
      if (error.requestId) {
        const id = document.createElement("div");
        id.className = "small";
        id.append(document.createTextNode("request id "));
        const code = document.createElement("code");
        code.textContent = error.requestId;
        id.append(code);
        box.append(id);
      }
    } else {
      title.textContent = "error";
      box.append(title, document.createTextNode(": " + describe(error)));
    }
    box.hidden = false;
  }

  function describe(error) {
    if (error && error.name === "TypeError" && /header/i.test(String(error.message))) {
      return "the API key holds characters an HTTP header cannot carry";
    }
    if (error && error.name === "TypeError") return "could not reach the server (" + error.message + ")";
    return error && error.message ? error.message : String(error);
  }

  async function call(method, path, body, signal) {
    let response;
    try {
      response = await fetch(path, {
        method, headers: headers(body !== undefined), signal, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new Error(describe(error));
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  // --- tabs ---------------------------------------------------------------------------------------------
  const tabs = [[el.tabAsk, el.panelAsk], [el.tabSearch, el.panelSearch]];
  function select(tab) {
    for (const [t, panel] of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
  }
  for (const [tab] of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const i = tabs.findIndex(([t]) => t === tab);
      const next = tabs[(i + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length][0];
      select(next);
      next.focus();
    });
  }

  // --- readiness ----------------------------------------------------------------------------------------
  fetch("/ready", { cache: "no-store" }).then((r) => r.json()).then((state) => {
    el.ready.textContent = state && state.ready && typeof state.index_version === "string"
      ? "index " + state.index_version.slice(0, 12)
      : "no index yet: run `flightdeck run` on the server";
  }).catch(() => { el.ready.textContent = "the server's /ready did not answer"; });

  // --- server-sent events over fetch (EventSource cannot POST) ------------------------------------------
  // Yields {event, data} for each event of the body; data is the joined data lines, parsed as JSON.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        buffer = buffer.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const parsed = parseEvent(block);
          if (parsed) yield parsed;
        }
        if (done) break;
      }
      const last = parseEvent(buffer);
      if (last) yield last;
    } finally {
      reader.releaseLock();
    }
  }

  function parseEvent(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    const text = data.join("\n");
    try {
      return { event, data: JSON.parse(text) };
    } catch (_) {
      throw new Error("the server sent an event that is not JSON: " + text.slice(0, 200));
    }
  }

  // --- ask ----------------------------------------------------------------------------------------------
  let controller = null;
  let traceId = "";
  let traceLoaded = "";

  function text(tag, content, className) {
    const node = document.createElement(tag);
    node.textContent = content == null ? "" : String(content);
    if (className) node.className = className;
    return node;
  }

  function resetAnswer() {
    el.askError.hidden = true;
    el.askError.replaceChildren();
    el.result.hidden = true;
    el.answer.replaceChildren();
    el.answer.classList.remove("streaming");
    el.notFound.hidden = true;
    el.answerMeta.replaceChildren();
    el.citations.replaceChildren();
    el.noCitations.hidden = true;
    el.detail.hidden = true;
    el.traceBox.open = false;
    el.traceBox.hidden = true;
    el.trace.textContent = "";
    traceId = "";
    traceLoaded = "";
  }

  function busy(on) {
    el.ask.disabled = on;
    el.stop.hidden = !on;
  }

  el.stop.addEventListener("click", () => { if (controller) controller.abort(); });

  el.askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = el.question.value.trim();
    if (!question) { el.question.focus(); return; }
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    resetAnswer();
    busy(true);
    el.askStatus.textContent = "retrieving…";
    try {
      const response = await call("POST", "/v1/query", { question, stream: true }, mine.signal);
      for await (const { event: kind, data } of events(response)) {
        if (kind === "sources") onSources(data);
        else if (kind === "token") onToken(data);
        else if (kind === "answer") onAnswer(data.answer);
        else if (kind === "error") {
          const err = data && data.error ? data.error : {};
          throw new ApiError(String(err.message || "the answer failed"),
                             { type: String(err.type || "error"), requestId: String(err.request_id || "") });
        }
      }
      el.askStatus.textContent = "";
    } catch (error) {
      if (error && error.name === "AbortError") {
        el.askStatus.textContent = "stopped";
      } else {
        el.askStatus.textContent = "";
        showError(el.askError, error);
      }
    } finally {
      el.answer.classList.remove("streaming");
      if (controller === mine) { controller = null; busy(false); }
    }
  });

  function onSources(data) {
    const n = Array.isArray(data.hits) ? data.hits.length : 0;
    el.askStatus.textContent = "retrieved " + n + " chunk" + (n === 1 ? "" : "s") + "; writing…";
    el.result.hidden = false;
    el.answer.classList.add("streaming");
    setMeta(data.index_version, data.trace_id, null);
  }

  function onToken(data) {
    el.result.hidden = false;
    el.answer.append(document.createTextNode(String(data.text == null ? "" : data.text)));
  }

  function onAnswer(answer) {
    el.result.hidden = false;
    el.answer.classList.remove("streaming");
    const citations = Array.isArray(answer.citations) ? answer.citations : [];
    const byNumber = new Map(citations.map((c) => [String(c.number), c]));
    renderAnswer(String(answer.answer == null ? "" : answer.answer), byNumber);
    el.notFound.hidden = answer.found !== false;
    el.citations.replaceChildren();
    for (const c of citations) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "citation";
      button.dataset.number = String(c.number);
      button.append(text("span", "[" + c.number + "]", "num"), text("span", c.title || c.document_id, "title"));
      if (c.heading && c.heading !== c.title) button.append(text("span", c.heading, "heading muted"));
      button.addEventListener("click", () => showCitation(c));
      item.append(button);
      el.citations.append(item);
    }
    el.noCitations.hidden = citations.length > 0;
    const timings = answer.timings_ms && typeof answer.timings_ms === "object" ? answer.timings_ms : {};
    setMeta(answer.index_version, answer.trace_id, typeof timings.total === "number" ? timings.total : null);
  }

  // The answer's text with each [n] that names a citation made a button; the rest stays plain text.
  function renderAnswer(answerText, byNumber) {
    el.answer.replaceChildren();
    const marker = /\[(\d+)\]/g;
    let at = 0;
    let match;
    while ((match = marker.exec(answerText)) !== null) {
      const citation = byNumber.get(match[1]);
      if (!citation) continue;
      if (match.index > at) el.answer.append(document.createTextNode(answerText.slice(at, match.index)));
      const button = text("button", "[" + match[1] + "]", "marker");
      button.type = "button";
      button.dataset.number = match[1];
      button.setAttribute("aria-label", "citation " + match[1]);
      button.addEventListener("click", () => showCitation(citation));
      el.answer.append(button);
      at = match.index + match[0].length;
    }
    if (at < answerText.length) el.answer.append(document.createTextNode(answerText.slice(at)));
  }

  function showCitation(c) {
    el.detailNumber.textContent = "Citation [" + c.number + "]";
    el.detailQuote.textContent = c.quote || "";
    el.detailTitle.textContent = c.title || "—";
    el.detailHeading.textContent = c.heading || "—";
    el.detailDocument.textContent = c.document_id || "—";
    el.detailSource.textContent = c.source_uri || "—";
    el.detail.hidden = false;
    for (const b of document.querySelectorAll("#answer .marker, #citations .citation")) {
      b.setAttribute("aria-pressed", String(b.dataset.number === String(c.number)));
    }
  }

  function setMeta(indexVersion, trace, totalMs) {
    el.answerMeta.replaceChildren();
    const parts = [];
    if (indexVersion) parts.push(["index", String(indexVersion)]);
    if (trace) parts.push(["trace", String(trace)]);
    for (const [label, value] of parts) {
      const span = document.createElement("span");
      const code = text("code", label === "index" ? value.slice(0, 12) : value);
      code.title = value;  // the index version in full (a sha256); the trace shows it too
      span.append(document.createTextNode(label + " "), code);
      el.answerMeta.append(span);
    }
    if (totalMs !== null) el.answerMeta.append(text("span", Math.round(totalMs) + " ms"));
    if (trace) {
      traceId = String(trace);
      el.traceBox.hidden = false;
    }
  }

  el.traceBox.addEventListener("toggle", async () => {
    if (!el.traceBox.open || !traceId || traceLoaded === traceId) return;
    const wanted = traceId;
    el.trace.textContent = "loading…";
    try {
      const response = await call("GET", "/v1/traces/" + encodeURIComponent(wanted));
      const trace = await response.json();
      if (wanted !== traceId) return;
      el.trace.textContent = JSON.stringify(trace, null, 2);
      traceLoaded = wanted;
    } catch (error) {
      el.trace.textContent = error instanceof ApiError
        ? error.message + (error.requestId ? " (request id " + error.requestId + ")" : "")
        : describe(error);
    }
  });

  // --- search -------------------------------------------------------------------------------------------
  // The filter as an object, or null when the box is empty; throws with a message that says what is wrong.
  function parseWhere() {
    const raw = el.where.value.trim();
    if (!raw) return null;
    let value;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      throw new Error("The filter is not valid JSON: " + error.message);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error('The filter must be a JSON object, e.g. {"document_id": "docs/guide.md"}.');
    }
    return value;
  }

  function whereProblem(message) {
    el.whereError.textContent = message || "";
    el.whereError.hidden = !message;
    if (message) el.where.setAttribute("aria-invalid", "true"); else el.where.removeAttribute("aria-invalid");
  }

  el.where.addEventListener("input", () => whereProblem(""));

  el.searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.searchError.hidden = true;
    const query = el.query.value.trim();
    if (!query) { el.query.focus(); return; }
    let where;
    try {
      where = parseWhere();
    } catch (error) {
      whereProblem(error.message);
      el.where.focus();
      return;
    }
    whereProblem("");
    const body = { query };
    if (el.k.value.trim()) body.k = Number(el.k.value);
    if (el.mode.value) body.mode = el.mode.value;
    if (where) body.where = where;
    el.search.disabled = true;
    el.searchStatus.textContent = "searching…";
    el.hits.replaceChildren();
    el.searchMeta.replaceChildren();
    try {
      const response = await call("POST", "/v1/search", body);
      renderHits(await response.json());
    } catch (error) {
      showError(el.searchError, error);
    } finally {
      el.search.disabled = false;
      el.searchStatus.textContent = "";
    }
  });

  function renderHits(result) {
    const hits = Array.isArray(result.hits) ? result.hits : [];
    const summary = hits.length + " hit" + (hits.length === 1 ? "" : "s") + " · " + (result.mode || "");
    el.searchMeta.append(text("span", summary));
    if (result.index_version) {
      const span = document.createElement("span");
      const code = text("code", String(result.index_version).slice(0, 12));
      code.title = String(result.index_version);
      span.append(document.createTextNode("index "), code);
      el.searchMeta.append(span);
    }
    for (const hit of hits) {
      const item = el.hitTemplate.content.firstElementChild.cloneNode(true);
      item.querySelector(".hit-title").textContent = hit.title || hit.document_id || "";
      item.querySelector(".hit-score").textContent =
        typeof hit.score === "number" ? "score " + hit.score.toFixed(4) : "";
      const heading = [hit.document_id, hit.heading && hit.heading !== hit.title ? hit.heading : ""]
        .filter(Boolean).join(" · ");
      item.querySelector(".hit-heading").textContent = heading;
      item.querySelector(".hit-text").textContent = hit.text || "";
      item.querySelector(".hit-source code").textContent = hit.source_uri || "";
      el.hits.append(item);
    }
    if (!hits.length) el.hits.append(text("li", "Nothing matched.", "muted"));
  }
})();
