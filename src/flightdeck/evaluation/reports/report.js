// flightdeck eval report: filter, sort and expand the per-question table.
// Every text from the report is put in the page with textContent (never innerHTML): it stays text.
(function () {
  "use strict";
  const source = document.getElementById("data");
  const data = source ? JSON.parse(source.textContent) : { questions: [] };
  const questions = data.questions || [];
  const table = document.getElementById("questions");
  if (!table) return;
  const bodies = Array.from(table.querySelectorAll("tbody[data-i]"));
  const columns = table.querySelectorAll("thead th").length;
  const hay = questions.map((q) => [q.id, q.question, q.answer].join("\n").toLowerCase());
  const FAILURES = ["error", "wrongly_answered", "wrongly_refused"];

  const filterBox = document.getElementById("filter");
  const outcomeBox = document.getElementById("outcome");
  const tagBox = document.getElementById("tag");
  const shown = document.getElementById("shown");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === "") continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmt = (v, digits = 3) => (typeof v === "number" ? v.toFixed(digits) : "—");

  // ------------------------------------------------------------------ filtering
  function apply() {
    const text = (filterBox ? filterBox.value : "").trim().toLowerCase();
    const outcome = outcomeBox ? outcomeBox.value : "";
    const tag = tagBox ? tagBox.value : "";
    let n = 0;
    for (const body of bodies) {
      const i = Number(body.dataset.i);
      const q = questions[i] || {};
      let ok = !text || hay[i].includes(text);
      if (ok && outcome) ok = outcome === "failures" ? FAILURES.includes(q.outcome) : q.outcome === outcome;
      if (ok && tag) ok = (q.tags || []).includes(tag);
      body.hidden = !ok;
      if (ok) n += 1;
    }
    if (shown) shown.textContent = n + " of " + bodies.length + " shown";
  }
  for (const box of [filterBox, outcomeBox, tagBox]) {
    if (box) box.addEventListener(box.tagName === "SELECT" ? "change" : "input", apply);
  }

  // ------------------------------------------------------------------ sorting
  const sorters = Array.from(table.querySelectorAll("button.sort"));
  function valueOf(q, key) {
    if (key === "latency") return q.latency;
    if (key === "first_rel") return q.first_rel;
    return q.scores ? q.scores[key] : undefined;
  }
  function reorder(compare) {
    const sorted = bodies.slice().sort(compare);
    for (const body of sorted) table.appendChild(body);
  }
  for (const button of sorters) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      const dir = button.dataset.dir === "asc" ? "desc" : "asc";
      for (const other of sorters) {
        other.removeAttribute("data-dir");
        other.closest("th").removeAttribute("aria-sort");
      }
      button.dataset.dir = dir;
      button.closest("th").setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
      const sign = dir === "asc" ? 1 : -1;
      reorder((a, b) => {
        const va = valueOf(questions[Number(a.dataset.i)], key);
        const vb = valueOf(questions[Number(b.dataset.i)], key);
        const ma = typeof va !== "number", mb = typeof vb !== "number";
        if (ma || mb) return ma === mb ? Number(a.dataset.order) - Number(b.dataset.order) : (ma ? 1 : -1);
        return va === vb ? Number(a.dataset.order) - Number(b.dataset.order) : sign * (va - vb);
      });
    });
  }
  const reset = document.getElementById("reset-order");
  if (reset) {
    reset.addEventListener("click", () => {
      for (const other of sorters) {
        other.removeAttribute("data-dir");
        other.closest("th").removeAttribute("aria-sort");
      }
      reorder((a, b) => Number(a.dataset.order) - Number(b.dataset.order));
    });
  }

  // ------------------------------------------------------------------ details
  function box(text, empty) {
    return text ? el("div", { class: "box" }, text) : el("div", { class: "box empty" }, empty);
  }

  function supportBar(value) {
    const bar = el("span", { class: "bar", "aria-hidden": "true" }, el("span"));
    if (typeof value === "number") bar.firstChild.style.width = Math.max(0, Math.min(1, value)) * 100 + "%";
    return bar;
  }

  function detail(q) {
    const parts = [];
    let answerHead = "Answer";
    if (q.found === false) answerHead = "Answer (refused: not found)";
    parts.push(el("div", { class: "pair" },
      el("div", {}, el("h3", {}, q.answerable === false ? "Reference answer (unanswerable question)" : "Reference answer"),
        box(q.ref, "no reference answer")),
      el("div", {}, el("h3", {}, answerHead), box(q.answer, "no answer"))));
    if (q.error) parts.push(el("h3", {}, "Error"), el("div", { class: "box error-box" }, q.error));

    parts.push(el("h3", {}, "Citations (" + (q.cit || []).length + ")"));
    if ((q.cit || []).length) {
      parts.push(el("ul", {}, q.cit.map((c) => el("li", {},
        "[" + c.n + "] ", el("strong", {}, c.title || c.doc || "untitled"),
        c.heading ? " — " + c.heading : "", " ", el("code", { class: "muted" }, c.doc)))));
    } else parts.push(el("p", { class: "muted" }, "none"));

    const hits = q.hits || [];
    parts.push(el("h3", {}, "Retrieved (" + hits.length + ")"));
    if (hits.length) {
      parts.push(el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "rank"), el("th", { class: "rel" }, "relevant"),
          el("th", { class: "num" }, "score"), el("th", {}, "title · heading"), el("th", {}, "text"))),
        el("tbody", {}, hits.map(([rank, rel, score, title, heading, doc, text]) => el("tr", { class: rel ? "relevant" : null },
          el("td", { class: "num" }, rank),
          el("td", { class: "rel", title: rel ? "a reference source" : "not a reference source" }, rel ? "✓" : ""),
          el("td", { class: "num" }, fmt(score)),
          el("td", { class: "title" }, el("strong", {}, title || "untitled"), heading ? el("div", {}, heading) : null,
            el("div", {}, el("code", { class: "muted" }, doc))),
          el("td", { class: "snippet" }, text !== null ? text : el("span", { class: "muted" }, "(text left out to keep the file small)"))))))));
    } else parts.push(el("p", { class: "muted" }, "none recorded (only answerable questions with references are searched)"));

    const sents = q.sents || [];
    if (sents.length) {
      const unsupported = sents.filter((s) => !s[2]).length;
      parts.push(el("h3", {}, "Answer sentences (" + sents.length + (unsupported ? ", " + unsupported + " unsupported" : "") + ")"));
      parts.push(el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "sentence"), el("th", { class: "num" }, "support"), el("th", { class: "num" }, ""),
          el("th", {}, "best evidence"))),
        el("tbody", {}, sents.map(([sentence, support, ok, chunk, evidence]) => el("tr", { class: ok ? null : "unsupported" },
          el("td", { class: "snippet" }, sentence),
          el("td", { class: "num" }, fmt(support), supportBar(support)),
          el("td", { class: "flag" }, ok ? "supported" : "⚠ unsupported"),
          el("td", { class: "snippet" }, evidence, chunk ? el("div", {}, el("code", { class: "muted" }, chunk)) : null)))))));
    }

    if ((q.flags || []).length) {
      parts.push(el("h3", {}, "Flags (" + q.flags.length + ")"));
      parts.push(el("ul", {}, q.flags.map((f) => el("li", {}, el("strong", {}, f.source || "?"),
        f.chunk ? [" ", el("code", { class: "muted" }, f.chunk)] : null, ": ", (f.reasons || []).join("; ")))));
    }
    if ((q.refsrc || []).length) {
      parts.push(el("h3", {}, "Reference sources"), el("ul", {}, q.refsrc.map((s) => el("li", {}, el("code", {}, s)))));
    }
    if (q.version) parts.push(el("p", { class: "muted" }, "index version ", el("code", {}, q.version)));
    return el("tr", { class: "detail" }, el("td", { colspan: columns }, el("div", { class: "detail-inner" }, parts)));
  }

  function toggle(body, open) {
    const row = body.querySelector("tr.row");
    const button = row.querySelector("button.toggle");
    let extra = body.querySelector("tr.detail");
    const want = open === undefined ? !extra || extra.hidden : open;
    if (want && !extra) {
      extra = detail(questions[Number(body.dataset.i)] || {});
      body.appendChild(extra);
    }
    if (extra) extra.hidden = !want;
    body.classList.toggle("open", want);
    if (button) {
      button.setAttribute("aria-expanded", String(want));
      button.textContent = want ? "▾" : "▸";
    }
  }
  table.addEventListener("click", (event) => {
    const row = event.target.closest("tr.row");
    if (!row || (window.getSelection && String(window.getSelection()).length)) return;
    toggle(row.parentElement);
  });
  const expandAll = document.getElementById("expand-all");
  if (expandAll) expandAll.addEventListener("click", () => bodies.filter((b) => !b.hidden).forEach((b) => toggle(b, true)));
  const collapseAll = document.getElementById("collapse-all");
  if (collapseAll) collapseAll.addEventListener("click", () => bodies.forEach((b) => toggle(b, false)));

  apply();
})();
