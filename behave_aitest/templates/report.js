"use strict";
// behave-aitest report: draws a scenario's steps and conversation from the embedded
// document when it is opened (so large runs stay light), and filters the rows.
// Every piece of data goes into the page as text (textContent), never as markup.
(function () {
  var DOC = JSON.parse(document.getElementById("aitest-data").textContent);
  var ICON = {passed: "\u2713", failed: "\u2717", error: "\u26a0", skipped: "\u23ed", untested: "\u25cb"};
  var LONG = 400;

  function el(tag, cls, children) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === "") return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function money(v) {
    if (!v) return "$0";
    return v < 0.01 ? "$" + v.toFixed(6).replace(/0+$/, "") : "$" + v.toFixed(4);
  }
  function cost(s) {
    var unknown = s.unknown_cost_calls || 0, calls = s.model_calls || 0;
    if (!unknown) return calls ? money(s.cost_usd || 0) : "\u2013";
    if (unknown >= calls) return "unknown (" + unknown + " call" + (unknown === 1 ? "" : "s") + ")";
    return "\u2265 " + money(s.cost_usd || 0) + " + " + unknown + " unknown";
  }
  function secs(v) {
    v = v || 0;
    return v < 1 ? Math.round(v * 1000) + " ms" : v.toFixed(1) + " s";
  }
  function num(n) { return (n || 0).toLocaleString("en-US"); }
  function pretty(value) {
    if (typeof value === "string") return value;
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }
  // Long text folds into a <details> whose summary shows its first line.
  function block(label, text, cls) {
    text = text === null || text === undefined ? "" : String(text);
    var pre = el("pre", cls, [text]);
    if (text.length <= LONG && text.split("\n").length <= 8) return el("div", "kv", [el("span", "k", [label]), pre]);
    var first = text.split("\n")[0].slice(0, 90);
    var d = el("details", "kv long", [el("summary", null, [el("span", "k", [label]), " ", el("span", "dim", [first + " \u2026 (" + num(text.length) + " chars)"])]), pre]);
    return d;
  }
  function scenarioOf(ref) {
    var p = ref.split(".");
    return DOC.features[+p[0]].scenarios[+p[1]];
  }

  // ------------------------------------------------------------------ conversation
  function toolCall(call) {
    var head = el("div", "tool-head", [
      el("span", "tool-icon", ["\ud83d\udd27"]), " ", el("strong", null, [call.name || "(unknown tool)"]),
      call.server ? el("span", "dim", [" \u00b7 " + call.server]) : null,
      el("span", "dim", [" \u00b7 " + secs(call.duration_s)]),
      call.is_error ? el("span", "err-badge", ["error"]) : null,
      doubleBadges(call)
    ]);
    var args = call.arguments === null || call.arguments === undefined ? (call.raw_arguments || "") : pretty(call.arguments);
    return el("div", "msg tool" + (call.is_error ? " is-error" : ""), [
      head, block("arguments", args, "args"), block(call.is_error ? "error" : "result", call.result, call.is_error ? "result err" : "result")
    ]);
  }
  // tool doubles (docs/tool-doubles.md): a doubled call never reached the server (a delay did, late);
  // a call "by the test" was made by a When step, not by the model, and is not in its history
  function doubleBadges(call) {
    var kinds = {returns: "doubled: returned by the test", fails: "doubled: failed by the test", delay: "doubled: delayed"};
    return el("span", null, [
      call.doubled ? el("span", "tag doubled", [kinds[call.doubled] || "doubled"]) : null,
      call.by_test ? el("span", "tag by-test", ["called by the test"]) : null
    ]);
  }
  function judge(j) {
    var items = (j.verdicts || []).map(function (v) {
      return el("li", v.passed ? "c-passed" : "c-failed", [(v.passed ? "\u2713 " : "\u2717 ") + (v.criterion || "") + (v.reason ? " \u2014 " + v.reason : "")]);
    });
    return el("div", "judge", [
      el("div", "tool-head", ["\u2696 judge (" + (j.kind || "") + ", " + (j.model || "") + ")", j.score !== null && j.score !== undefined ? " score " + j.score : "", j.error ? el("span", "err-badge", [j.error]) : null]),
      items.length ? el("ul", null, items) : null
    ]);
  }
  function turn(t) {
    var s = t.stats || {};
    var head = el("div", "turn-head", [
      el("strong", null, ["Turn " + (t.index + 1)]),
      el("span", null, [t.model ? " \u00b7 " + t.model : ""]),
      el("span", "dim", [" \u00b7 \u21b3 " + t.history_before + " messages before"]),
      el("span", null, [" \u00b7 " + s.model_calls + " LLM call" + (s.model_calls === 1 ? "" : "s") + (s.retries ? " (" + s.retries + " retries)" : "")]),
      el("span", null, [" \u00b7 " + num(s.input_tokens) + " in / " + num(s.output_tokens) + " out tokens"]),
      el("span", s.unknown_cost_calls ? "flag" : null, [" \u00b7 " + cost(s)]),
      el("span", null, [" \u00b7 latency " + secs(s.latency_s) + " / " + secs(t.duration_s)]),
      s.replayed_calls ? el("span", "tag", ["replayed"]) : null
    ]);
    var chat = el("div", "chat");
    (t.timeline || []).forEach(function (item) {
      if (item.kind === "user") chat.appendChild(el("div", "msg user", [el("div", "who", ["User"]), el("div", "bubble", [item.text])]));
      else if (item.kind === "assistant") chat.appendChild(el("div", "msg assistant", [el("div", "who", ["Assistant"]), el("div", "bubble", [item.text])]));
      else if (item.kind === "tool" && t.tool_calls[item.tool_call]) chat.appendChild(toolCall(t.tool_calls[item.tool_call]));
    });
    var body = [head, chat];
    if (t.error) body.push(el("div", "alert bad", [el("pre", null, [t.error])]));
    (t.judge_calls || []).forEach(function (j) { body.push(judge(j)); });
    return el("div", "turn" + (t.error ? " has-error" : ""), body);
  }

  // ------------------------------------------------------------------ scenario body
  function table(tbl) {
    var head = el("tr", null, tbl.headings.map(function (h) { return el("th", null, [h]); }));
    var rows = tbl.rows.map(function (r) { return el("tr", null, r.map(function (c) { return el("td", null, [c]); })); });
    return el("table", "step-table", [el("thead", null, [head]), el("tbody", null, rows)]);
  }
  function body(s) {
    var out = document.createDocumentFragment();
    var meta = [el("span", "loc", [s.location])];
    if (s.agent) meta.push(el("span", null, ["agent " + s.agent]));
    if (s.model) meta.push(el("code", "model", [s.model]));
    if (s.history_at_start) meta.push(el("span", "carry-in", ["\u21b3 " + s.history_at_start + " messages carried in from earlier scenarios"]));
    if (s.cassette) meta.push(el("span", "tag", ["cassette " + (s.cassette.mode || "") + " " + (s.cassette.file || "")]));
    if (s.repeat) meta.push(el("span", "tag", [s.repeat.passed + "/" + s.repeat.runs + " runs passed" + (s.repeat.flaky ? " (flaky)" : "")]));
    out.appendChild(el("div", "scn-meta", meta));
    s.warnings.forEach(function (w) { out.appendChild(el("div", "alert warn", ["\u26a0 " + w])); });
    if (s.hook_error) out.appendChild(el("div", "alert bad", [el("pre", null, [s.hook_error])]));
    var shown = {};
    var steps = el("ol", "steps");
    s.steps.forEach(function (st) {
      var li = el("li", "step st-" + st.status + (st.background ? " bg" : ""), [
        el("span", "icon", [ICON[st.status] || ""]),
        el("span", "kw", [st.keyword]), " ", el("span", "step-name", [st.name]),
        el("span", "dim step-time", [secs(st.duration_s)])
      ]);
      if (st.text) li.appendChild(el("pre", "docstring", [st.text]));
      if (st.table) li.appendChild(table(st.table));
      if (st.direct_call !== null && st.direct_call !== undefined && (s.direct_calls || [])[st.direct_call]) li.appendChild(toolCall(s.direct_calls[st.direct_call]));
      if (st.error) li.appendChild(el("pre", "fail-msg", [st.error]));
      if (st.turn !== null && st.turn !== undefined && s.turns[st.turn]) {
        shown[st.turn] = true;
        li.appendChild(turn(s.turns[st.turn]));
      }
      steps.appendChild(li);
    });
    out.appendChild(steps);
    s.turns.forEach(function (t, i) { if (!shown[i]) out.appendChild(turn(t)); });
    return out;
  }

  // ------------------------------------------------------------------ open / close
  function setOpen(article, open) {
    var head = article.querySelector(".scn-head"), box = article.querySelector(".scn-body");
    if (open && !box.hasChildNodes()) box.appendChild(body(scenarioOf(article.getAttribute("data-ref"))));
    box.hidden = !open;
    head.setAttribute("aria-expanded", open ? "true" : "false");
    article.classList.toggle("open", open);
  }
  var main = document.getElementById("features");
  main.addEventListener("click", function (e) {
    var head = e.target.closest(".scn-head");
    if (head) setOpen(head.parentNode, head.getAttribute("aria-expanded") !== "true");
  });
  main.addEventListener("keydown", function (e) {
    var head = e.target.closest(".scn-head");
    if (head && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); head.click(); }
  });
  function reveal(ref) {
    var article = document.getElementById("s-" + ref.replace(".", "-"));
    if (!article) return;
    if (article.hidden) { resetFilters(); }
    setOpen(article, true);
    article.scrollIntoView({block: "start"});
  }
  document.addEventListener("click", function (e) {
    var link = e.target.closest("a[data-ref]");
    if (link) { e.preventDefault(); reveal(link.getAttribute("data-ref")); }
  });
  if (/^#s-\d+-\d+$/.test(location.hash)) reveal(location.hash.slice(3).replace("-", "."));

  // ------------------------------------------------------------------ filters
  var rows = Array.prototype.slice.call(document.querySelectorAll("article.scn"));
  var features = Array.prototype.slice.call(document.querySelectorAll("section.feature"));
  var state = {status: "all", tag: "", model: "", text: ""};
  var haystack = null;
  function searchText(s, f) {
    var parts = [f.name, s.name, s.location, (s.tags || []).join(" "), (f.tags || []).join(" "), s.model || ""];
    s.steps.forEach(function (st) { parts.push(st.keyword + " " + st.name, st.error || ""); });
    s.turns.forEach(function (t) {
      parts.push(t.user_text, t.response, t.error || "");
      t.tool_calls.forEach(function (c) { parts.push(c.name, c.result); });
    });
    (s.direct_calls || []).forEach(function (c) { parts.push(c.name, c.result); });
    return parts.join("\n").toLowerCase();
  }
  function matches(article) {
    var ref = article.getAttribute("data-ref"), s = scenarioOf(ref), f = DOC.features[+ref.split(".")[0]];
    var st = s.status;
    if (state.status === "failed" && st !== "failed" && st !== "error") return false;
    if (state.status === "passed" && st !== "passed") return false;
    if (state.status === "skipped" && st !== "skipped" && st !== "untested") return false;
    if (state.model && s.model !== state.model) return false;
    if (state.tag && s.tags.indexOf(state.tag) < 0 && f.tags.indexOf(state.tag) < 0) return false;
    if (state.text) {
      if (!haystack) haystack = {};
      if (!(ref in haystack)) haystack[ref] = searchText(s, f);
      if (haystack[ref].indexOf(state.text) < 0) return false;
    }
    return true;
  }
  function apply() {
    var shown = 0;
    rows.forEach(function (a) { var ok = matches(a); a.hidden = !ok; if (ok) shown++; });
    features.forEach(function (f) { f.hidden = !f.querySelector("article.scn:not([hidden])") && rows.length > 0; });
    document.querySelectorAll(".group").forEach(function (g) { g.hidden = !g.querySelector("section.feature:not([hidden])"); });
    document.getElementById("count").textContent = shown + " of " + rows.length + " scenarios";
    document.getElementById("empty").hidden = shown > 0 || rows.length === 0;
  }
  function resetFilters() {
    state = {status: "all", tag: "", model: "", text: ""};
    document.querySelectorAll("[data-filter]").forEach(function (b) { b.classList.toggle("on", b.getAttribute("data-filter") === "all"); });
    ["f-tag", "f-model", "f-search"].forEach(function (id) { var n = document.getElementById(id); if (n) n.value = ""; });
    apply();
  }
  document.querySelectorAll("[data-filter]").forEach(function (b) {
    b.addEventListener("click", function () {
      state.status = b.getAttribute("data-filter");
      document.querySelectorAll("[data-filter]").forEach(function (x) { x.classList.toggle("on", x === b); });
      apply();
    });
  });
  var tag = document.getElementById("f-tag"), model = document.getElementById("f-model"), search = document.getElementById("f-search");
  if (tag) tag.addEventListener("change", function () { state.tag = tag.value; apply(); });
  if (model) model.addEventListener("change", function () { state.model = model.value; apply(); });
  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.text = search.value.trim().toLowerCase(); apply(); }, 150);
  });
  document.getElementById("expand-failed").addEventListener("click", function () {
    rows.forEach(function (a) { var st = a.getAttribute("data-status"); if (!a.hidden && (st === "failed" || st === "error")) setOpen(a, true); });
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    rows.forEach(function (a) { if (a.classList.contains("open")) setOpen(a, false); });
  });
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
