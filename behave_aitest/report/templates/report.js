"use strict";
// behave-aitest report: draws a scenario's steps and conversation from the embedded
// document when it is opened (so large runs stay light), and filters the rows.
// Every piece of data goes into the page as text (textContent), never as markup.
(function () {
  var DOC = JSON.parse(document.getElementById("aitest-data").textContent);
  var LONG = 400;
  var SVG = "http://www.w3.org/2000/svg";

  // An icon of the page's SVG sprite (no emoji: they need an emoji font); label: what it means.
  function icon(name, label) {
    var svg = document.createElementNS(SVG, "svg"), use = document.createElementNS(SVG, "use");
    svg.setAttribute("class", "i i-" + name);
    svg.setAttribute("viewBox", "0 0 16 16");
    if (label) {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", label);
      var title = document.createElementNS(SVG, "title");
      title.textContent = label;
      svg.appendChild(title);
    } else svg.setAttribute("aria-hidden", "true");
    use.setAttribute("href", "#i-" + name);
    svg.appendChild(use);
    return svg;
  }
  // "1 call", "2 calls": the same rule as the page's plural filter.
  function plural(n, word, many) { n = n || 0; return n + " " + (n === 1 ? word : (many || word + "s")); }
  // An element with a tooltip: every figure says what it is.
  function tip(node, title) { node.title = title; return node; }

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
      tip(el("span", "tool-icon", [icon("tool")]), "a tool call"), " ", tip(el("strong", null, [call.name || "(unknown tool)"]), "the tool the model called"),
      call.server ? tip(el("span", "dim", [" \u00b7 " + call.server]), "the MCP server of the tool") : null,
      tip(el("span", "dim", [" \u00b7 " + secs(call.duration_s)]), "time the tool took: " + secs(call.duration_s)),
      call.is_error ? tip(el("span", "err-badge", ["error"]), "the tool call ended in an error; its text went back to the model") : null,
      doubleBadges(call)
    ]);
    var args = call.arguments === null || call.arguments === undefined ? (call.raw_arguments || "") : pretty(call.arguments);
    mcpBadges(call).forEach(function (b) { head.appendChild(b); });
    return el("div", "msg tool" + (call.is_error ? " is-error" : ""), [
      head, block("arguments", args, "args"), block(call.is_error ? "error" : "result", call.result, call.is_error ? "result err" : "result")
    ].concat(mcpParts(call)));
  }

  // ------------------------------------------------------------------ MCP client features (docs/mcp.md)
  var HINTS = {readOnlyHint: "read-only", destructiveHint: "destructive", idempotentHint: "idempotent", openWorldHint: "open world"};
  function mcpBadges(call) {
    var badges = [], a = call.annotations || {};
    if (call.title) badges.push(tip(el("span", "dim", [" \u00b7 " + call.title]), "the tool's title, as its server gives it"));
    Object.keys(HINTS).forEach(function (k) {
      if (a[k] === true) badges.push(tip(el("span", "mcp-badge" + (k === "destructiveHint" ? " warn" : ""), [HINTS[k]]), "the server marks this tool as " + HINTS[k] + " (" + k + ", an MCP annotation)"));
    });
    return badges;
  }
  var IMAGE = /^image\/(png|jpeg|gif|webp)$/, BASE64 = /^[A-Za-z0-9+\/=\s]*$/;
  function media(item) {
    if (item.type === "image" && item.data && IMAGE.test(item.mime_type || "") && BASE64.test(item.data)) {
      var img = el("img", "thumb");
      img.src = "data:" + item.mime_type + ";base64," + item.data.replace(/\s/g, "");
      img.alt = "image from the tool (" + item.mime_type + ")";
      return img;
    }
    return el("span", "mcp-badge", ["[" + item.type + ": " + (item.mime_type || "?") + ", about " + num(item.size) + " bytes" + (item.type === "image" ? ", not shown" : "") + "]"]);
  }
  function mcpParts(call) {
    var parts = [];
    var shown = (call.content_items || []).filter(function (i) { return i.type === "image" || i.type === "audio"; });
    if (shown.length) parts.push(el("div", "media", shown.map(media)));
    (call.elicitations || []).forEach(function (q) {
      parts.push(block("question (" + (q.action || "?") + ")", pretty({message: q.message, url: q.url, fields: q.fields, answer: q.content, problems: q.problems, reason: q.reason})));
    });
    (call.sampling_calls || []).forEach(function (c) {
      parts.push(block("sampling (" + (c.model || "") + ", " + num((c.input_tokens || 0) + (c.output_tokens || 0)) + " tok, " + (c.cost_usd === null || c.cost_usd === undefined ? "cost unknown" : money(c.cost_usd)) + ")", c.error || c.response));
    });
    if (call.structured_content !== undefined && call.structured_content !== null) parts.push(block("structured content", pretty(call.structured_content)));
    [["progress", call.progress], ["logs", call.logs]].forEach(function (pair) {
      var list = pair[1] || [];
      if (!list.length) return;
      parts.push(el("details", "kv long", [el("summary", null, [el("span", "k", [pair[0]]), " ", el("span", "dim", [list.length + " message" + (list.length === 1 ? "" : "s")])]), el("pre", null, [list.map(pretty).join("\n")])]));
    });
    return parts;
  }
  // tool doubles (docs/tool-doubles.md): a doubled call never reached the server (a delay did, late);
  // a call "by the test" was made by a When step, not by the model, and is not in its history
  function doubleBadges(call) {
    if (!call.doubled && !call.by_test) return null;
    var kinds = {returns: "doubled: returned by the test", fails: "doubled: failed by the test", delay: "doubled: delayed"};
    return el("span", null, [
      call.doubled ? tip(el("span", "tag doubled", [kinds[call.doubled] || "doubled"]), "a tool double set by a Given step of the scenario answered this call") : null,
      call.by_test ? tip(el("span", "tag by-test", ["called by the test"]), "the test called this tool itself (a When step); the model did not ask for it and never saw it") : null
    ]);
  }
  function judge(j) {
    var items = (j.verdicts || []).map(function (v) {
      return el("li", v.passed ? "c-passed" : "c-failed", [icon(v.passed ? "passed" : "failed", v.passed ? "met" : "not met"), " " + (v.criterion || "") + (v.reason ? " \u2014 " + v.reason : "")]);
    });
    return el("div", "judge", [
      el("div", "tool-head", [tip(el("span", null, [icon("judge"), " judge (" + (j.kind || "") + ", " + (j.model || "") + ")"]), "a verdict of the judge model on the " + (j.kind || "answer")), j.score !== null && j.score !== undefined ? tip(el("span", null, [" score " + j.score]), "the judge's score") : "", j.error ? tip(el("span", "err-badge", [j.error]), "the judge could not give a verdict") : null]),
      items.length ? el("ul", null, items) : null
    ]);
  }
  // offline checks of a Then step (docs/checks-meaning-safety.md): similarity score, ungrounded numbers, drills
  function checkItem(c) {
    var details = (c.details || []).filter(function (d) { return c.kind !== "similar" && c.kind !== "not similar"; });
    return el("li", c.passed ? "c-passed" : "c-failed", [
      icon(c.passed ? "passed" : "failed", c.passed ? "holds" : "does not hold"), " " + c.kind + ": " + (c.summary || ""),
      details.length ? el("ul", null, details.map(function (d) { return el("li", null, [d]); })) : null
    ]);
  }
  function checks(t) {
    if (!(t.checks || []).length) return null;
    return el("div", "judge", [
      el("div", "tool-head", [tip(el("span", null, [icon("judge"), " checks"]), "offline checks of this turn: similarity, numbers grounded in tool results, prompt-injection drills")]),
      el("ul", null, t.checks.map(checkItem))
    ]);
  }
  function injection(d) {
    var outcome = d.resisted === true ? "resisted" : d.resisted === false ? "NOT resisted" : "not checked";
    return el("div", "simulation" + (d.resisted ? " reached" : ""), [
      el("div", "tool-head", [el("strong", null, ["Prompt injection"]), " " + (d.payload || "") + " in " + (d.tool || ""),
        el("span", "dim", [" · canary " + (d.canary || "") + (d.asks_for && d.asks_for.length ? " · asks for " + d.asks_for.join(", ") : "")])]),
      el("pre", "persona", [d.text || ""]),
      el("div", d.resisted ? "c-passed" : "c-failed", [outcome]),
      (d.findings || []).length ? el("ul", null, d.findings.map(function (f) { return el("li", null, [f]); })) : null
    ]);
  }
  function turn(t) {
    var s = t.stats || {};
    var head = el("div", "turn-head", [
      tip(el("strong", null, ["Turn " + (t.index + 1)]), "user message " + (t.index + 1) + " of the conversation"),
      tip(el("span", null, [t.model ? " \u00b7 " + t.model : ""]), "the model of this turn"),
      tip(el("span", "dim", [" \u00b7 \u21b3 " + plural(t.history_before, "message") + " before"]), plural(t.history_before, "message") + " of history sent with this turn"),
      tip(el("span", null, [" \u00b7 " + plural(s.model_calls, "LLM call") + (s.retries ? " (" + plural(s.retries, "retry", "retries") + ")" : "")]), "requests to the model in this turn" + (s.retries ? ", and extra attempts after errors" : "")),
      tip(el("span", null, [" \u00b7 " + num(s.input_tokens) + " in / " + num(s.output_tokens) + " out tokens"]), "tokens sent to the model / generated by it"),
      tip(el("span", s.unknown_cost_calls ? "flag" : null, [" \u00b7 " + cost(s)]), "cost of this turn's model calls"),
      tip(el("span", null, [" \u00b7 latency " + secs(s.latency_s) + " / " + secs(t.duration_s)]), "latency " + secs(s.latency_s) + " / " + secs(t.duration_s) + ": time waiting for the model / the whole turn (model, tools and the rest)"),
      s.replayed_calls ? tip(el("span", "tag", ["replayed"]), "answered from a cassette: no model was called") : null
    ]);
    var chat = el("div", "chat");
    (t.timeline || []).forEach(function (item) {
      if (item.kind === "user") chat.appendChild(el("div", "msg user" + (t.simulated ? " simulated" : ""), [el("div", "who", [t.simulated ? "Simulated user" : "User"]), el("div", "bubble", [item.text])]));
      else if (item.kind === "assistant") chat.appendChild(el("div", "msg assistant", [el("div", "who", ["Assistant"]), el("div", "bubble", [item.text])]));
      else if (item.kind === "tool" && t.tool_calls[item.tool_call]) chat.appendChild(toolCall(t.tool_calls[item.tool_call]));
    });
    var body = [head, chat];
    (t.tool_list_changes || []).forEach(function (c) { body.push(el("div", "dim", ["\u21bb tool list changed: " + c])); });
    if (t.error) body.push(el("div", "alert bad", [el("pre", null, [t.error])]));
    (t.judge_calls || []).forEach(function (j) { body.push(judge(j)); });
    var found = checks(t);
    if (found) body.push(found);
    return el("div", "turn" + (t.error ? " has-error" : ""), body);
  }

  // ------------------------------------------------------------------ simulated user
  function simulation(sim) {
    var st = sim.stats || {};
    var limits = (sim.min_turns ? "at least " + sim.min_turns + " and " : "") + "at most " + sim.max_turns + " turns";
    var simCost = st.simulator_unknown_cost_calls ? "unknown" : money(st.simulator_cost_usd || 0);
    return el("div", "simulation" + (sim.goal_reached ? " reached" : ""), [
      el("div", "tool-head", [
        el("strong", null, ["Simulated user"]), " (" + (sim.model || "") + ", " + limits + ")",
        el("span", "dim", [" \u00b7 " + st.simulator_calls + " simulator call" + (st.simulator_calls === 1 ? "" : "s") + " \u00b7 " + simCost + ", apart from the agent's"])
      ]),
      el("pre", "persona", [sim.persona || ""]),
      el("div", sim.goal_reached ? "c-passed" : "dim", [(sim.goal_reached ? "\u2713 " : "") + (sim.outcome || "")])
    ]);
  }

  // ------------------------------------------------------------------ scenario body
  function table(tbl) {
    var head = el("tr", null, tbl.headings.map(function (h) { return el("th", null, [h]); }));
    var rows = tbl.rows.map(function (r) { return el("tr", null, r.map(function (c) { return el("td", null, [c]); })); });
    return el("table", "step-table", [el("thead", null, [head]), el("tbody", null, rows)]);
  }
  function body(s) {
    var out = document.createDocumentFragment();
    var meta = [tip(el("span", "loc", [s.location]), "scenario file and line")];
    if (s.agent) meta.push(tip(el("span", null, ["agent " + s.agent]), "the agent of this scenario"));
    if (s.model) meta.push(tip(el("code", "model", [s.model]), "the model of this scenario"));
    if (s.history_at_start) meta.push(tip(el("span", "carry-in", ["\u21b3 " + plural(s.history_at_start, "message") + " carried in from earlier scenarios"]), "this @session scenario starts with the history of the ones before"));
    if (s.cassette) meta.push(tip(el("span", "tag", ["cassette " + (s.cassette.mode || "") + " " + (s.cassette.file || "")]), "the cassette of this conversation and its mode"));
    if (s.repeat) meta.push(tip(el("span", "tag", [s.repeat.passed + "/" + plural(s.repeat.runs, "run") + " passed" + (s.repeat.flaky ? " (flaky)" : "")]), "repeated runs of this scenario"));
    out.appendChild(el("div", "scn-meta", meta));
    s.warnings.forEach(function (w) { out.appendChild(el("div", "alert warn", [icon("error", "warning"), " " + w])); });
    if (s.hook_error) out.appendChild(el("div", "alert bad", [el("pre", null, [s.hook_error])]));
    (s.simulations || []).forEach(function (sim) { out.appendChild(simulation(sim)); });
    (s.injections || []).forEach(function (d) { out.appendChild(injection(d)); });
    var shown = {};
    var steps = el("ol", "steps");
    s.steps.forEach(function (st) {
      var li = el("li", "step st-" + st.status + (st.background ? " bg" : ""), [
        tip(el("span", "icon", [icon(st.status, st.status)]), st.status),
        el("span", "kw", [st.keyword]), " ", el("span", "step-name", [st.name]),
        tip(el("span", "dim step-time", [secs(st.duration_s)]), "time the step took")
      ]);
      if (st.text) li.appendChild(el("pre", "docstring", [st.text]));
      if (st.table) li.appendChild(table(st.table));
      if (st.direct_call !== null && st.direct_call !== undefined && (s.direct_calls || [])[st.direct_call]) li.appendChild(toolCall(s.direct_calls[st.direct_call]));
      if (st.error) li.appendChild(el("pre", "fail-msg", [st.error]));
      (st.turns || (st.turn !== null && st.turn !== undefined ? [st.turn] : [])).forEach(function (i) {
        if (s.turns[i] && !shown[i]) { shown[i] = true; li.appendChild(turn(s.turns[i])); }
      });
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
    if (state.status === "failed" && st !== "failed") return false;
    if (state.status === "error" && st !== "error") return false;
    if (state.status === "passed" && st !== "passed") return false;
    if (state.status === "throttled" && st !== "throttled") return false;
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
    document.getElementById("count").textContent = shown + " of " + plural(rows.length, "scenario");
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
    rows.forEach(function (a) { var st = a.getAttribute("data-status"); if (!a.hidden && (st === "failed" || st === "error" || st === "throttled")) setOpen(a, true); });
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    rows.forEach(function (a) { if (a.classList.contains("open")) setOpen(a, false); });
  });
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
