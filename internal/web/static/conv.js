// Conversations: the list, the new-conversation form with its rule check,
// and a thread laid out by kind with the live tally, how far the rule is
// from true, vote buttons and the outcome. Peer text goes in as text nodes.
"use strict";
/* global h, add, clear, call, stream, toast, fail, short, when, size */

window.kithConv = function (main, args) {
  if (args[0] === "new") return newConv(main);
  if (args[0]) return thread(main, args[0]);
  return list(main);
};

function nameOf(v, user) {
  if (v.self === user) return (v.names && v.names[user]) ? v.names[user] + " (you)" : "you";
  return (v.names && v.names[user]) || short(user);
}

function list(main) {
  var box = h("div", { id: "conv-list" });
  add(main, h("div", { class: "row" }, h("h2", { text: "Conversations" }), h("a", { class: "button", href: "#/conv/new", id: "conv-new" }, "New conversation")), box);
  function load() {
    call("GET", "/api/conv").then(function (cs) {
      clear(box);
      if (!cs.length) { add(box, h("p", { text: "No conversations yet." })); return; }
      add(box, h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, ["Topic", "Pattern", "Status", "Members", "Updated"].map(function (c, i) {
          return h("th", { scope: "col", class: i === 4 ? "wide" : null, text: c });
        }))),
        h("tbody", null, cs.map(function (c) {
          return h("tr", { "data-conv": c.conversation_id },
            h("td", null, h("a", { href: "#/conv/" + c.conversation_id, text: c.topic || "(no topic)" })),
            h("td", { text: c.pattern }),
            h("td", null, h("span", { class: "status-pill " + c.status, text: c.status })),
            h("td", { text: String((c.members || []).length) }),
            h("td", { class: "wide", text: when(c.updated) }));
        })))));
    }).catch(fail);
  }
  load();
  return { refresh: function (t) { if (t === "conv" || t === "hello") load(); }, stop: function () {} };
}

function newConv(main) {
  var topic = h("input", { type: "text", id: "new-topic", maxlength: "500", required: true });
  var pattern = h("select", { id: "new-pattern" });
  var members = h("fieldset", { id: "new-members" }, h("legend", { text: "Members (friends you paired with)" }));
  var preset = h("select", { id: "new-preset" });
  var rule = h("textarea", { id: "new-rule", spellcheck: "false", autocomplete: "off", "aria-describedby": "rule-check" });
  var check = h("div", { id: "rule-check", "aria-live": "polite" });
  var about = h("p", { class: "hint", id: "preset-about" });
  var ruleBox = h("div", null, h("label", { for: "new-preset", text: "Rule" }), preset, about,
    h("label", { for: "new-rule", text: "Custom rule (checked as you type)" }), rule, check);
  var metaInfo = null, timer = null, seq = 0;
  add(main, h("h2", { text: "New conversation" }),
    h("form", { class: "card", id: "new-form", onsubmit: submit },
      h("label", { for: "new-topic", text: "Topic" }), topic,
      h("label", { for: "new-pattern", text: "Pattern" }), pattern,
      members, ruleBox,
      h("div", { class: "row" }, h("button", { type: "submit", id: "new-create" }, "Start the conversation"))));

  Promise.all([call("GET", "/api/conv/meta"), call("GET", "/api/friends")]).then(function (res) {
    metaInfo = res[0];
    metaInfo.patterns.forEach(function (p) { pattern.appendChild(h("option", { value: p.name, text: p.name })); });
    preset.appendChild(h("option", { value: "", text: "custom (below)" }));
    metaInfo.presets.forEach(function (p) { preset.appendChild(h("option", { value: p.name, text: p.name + ": " + p.rule })); });
    pattern.value = "debate";
    var friends = res[1].filter(function (f) { return f.status === "friend"; });
    if (!friends.length) add(members, h("p", { class: "hint", text: "No friends yet: pair first." }));
    friends.forEach(function (f) {
      var id = "m-" + f.user_id;
      add(members, h("div", null, h("input", { type: "checkbox", id: id, value: f.user_id, "data-name": f.name }), " ", h("label", { for: id, style: null, text: f.name, class: "inline" })));
    });
    onPattern();
    preset.value = metaInfo.presets.length ? metaInfo.presets[0].name : "";
    onPreset();
  }).catch(fail);
  pattern.addEventListener("change", onPattern);
  preset.addEventListener("change", onPreset);
  rule.addEventListener("input", function () {
    preset.value = "";
    about.textContent = "";
    clearTimeout(timer);
    timer = setTimeout(checkRule, 150);
  });

  function patternInfo() {
    return (metaInfo.patterns || []).filter(function (p) { return p.name === pattern.value; })[0] || {};
  }
  function onPattern() { ruleBox.hidden = !patternInfo().has_rule; }
  function onPreset() {
    var p = metaInfo.presets.filter(function (x) { return x.name === preset.value; })[0];
    if (p) { rule.value = p.rule; about.textContent = p.about; checkRule(); }
  }
  function checkRule() {
    var mine = ++seq, src = rule.value;
    call("POST", "/api/rule/check", { rule: src }).then(function (r) {
      if (mine !== seq) return;
      clear(check);
      if (r.ok) {
        add(check, h("p", { class: "rule-ok", id: "rule-ok", text: "✓ The rule compiles" + (r.uses_elapsed ? " (it reads the time since the start)" : "") + "." }));
        return;
      }
      var kids = [h("p", { class: "rule-error", id: "rule-error", text: r.error })];
      if (r.line) {
        var line = src.split("\n")[r.line - 1] || "";
        var caret = new Array(Math.max(0, r.column - 1) + 1).join(" ") + "^";
        kids.push(h("pre", { class: "rule-error", id: "rule-caret", "aria-label": "line " + r.line + ", column " + r.column, text: line + "\n" + caret }));
      }
      add(check, kids);
    }).catch(fail);
  }
  function submit(ev) {
    ev.preventDefault();
    var with_ = Array.prototype.map.call(members.querySelectorAll("input:checked"), function (i) { return i.value; });
    var req = { topic: topic.value, pattern: pattern.value, with: with_ };
    if (patternInfo().has_rule) {
      if (preset.value) req.preset = preset.value; else req.rule = rule.value;
    }
    call("POST", "/api/conv/new", req).then(function (r) {
      location.hash = "#/conv/" + r.conversation_id;
    }).catch(fail);
  }
  return { refresh: function () {}, stop: function () { clearTimeout(timer); } };
}

// thread shows one conversation. Its first load goes through
// /api/conv/{id}/open, which streams the progress of an archived
// conversation's blobs as they arrive, shown as a bar, before the view.
// An archived conversation does not change, so events do not load it
// again (each load would fetch its blobs anew); a live one loads again on
// every conversation event.
function thread(main, id) {
  var box = h("div", { id: "thread" });
  var bar = h("progress", { class: "bar", id: "restore-bar", max: "1", value: "0", "aria-describedby": "restore-text" });
  var barLabel = h("label", { for: "restore-bar", id: "restore-label", text: "Fetching this conversation from the archive" });
  var barText = h("p", { class: "hint", id: "restore-text" });
  var restore = h("section", { class: "card", id: "restore", "aria-label": "Restore progress", hidden: true }, barLabel, bar, barText);
  add(main, restore, box);
  var draft = { kind: "", body: "" }, loaded = false, last = "", opening = true, archived = false, stopped = false, missed = false;
  var abort = new AbortController();
  function showProgress(done, total, complete) {
    restore.hidden = false;
    var max = Math.max(total, 1);
    bar.max = max;
    bar.value = complete ? max : Math.min(done, max);
    barText.textContent = size(complete ? total : Math.min(done, total)) + " of " + size(total) + (complete ? ": restored" : "");
    if (complete) barLabel.textContent = "Fetched this conversation from the archive";
  }
  function missing(e) {
    clear(box);
    add(box, h("p", { id: "conv-missing", text: "This conversation is not on this device yet (" + e.message + "); it appears here as soon as it arrives." }));
  }
  function openThread() {
    var total = -1;
    stream("/api/conv/" + encodeURIComponent(id) + "/open", function (ev, d) {
      if (stopped) return;
      if (ev === "progress") {
        total = d.total;
        bar.dataset.events = String(Number(bar.dataset.events || 0) + 1);
        showProgress(d.done, d.total, false);
      }
      else if (ev === "view") {
        if (total >= 0) showProgress(total, total, true);
        show(d);
      } else if (ev === "error") throw new Error(d.error || "the agent could not open the conversation");
    }, abort.signal).then(function () {
      opening = false;
      if (stopped) return;
      if (!loaded) throw new Error("the agent ended the answer without the conversation");
      // A live conversation that changed while it was being opened.
      if (missed && !archived) load();
    }).catch(function (e) {
      opening = false;
      if (stopped) return;
      if (total >= 0) { barLabel.textContent = "Fetching from the archive failed"; barText.textContent = shown(e.message); }
      if (loaded) fail(e); else missing(e);
    });
  }
  function load() {
    call("GET", "/api/conv/" + encodeURIComponent(id)).then(show).catch(function (e) {
      if (loaded) { fail(e); return; }
      missing(e);
    });
  }
  function show(v) {
    // An event about another conversation changes nothing here: keep
    // the page as it is, buttons and all.
    var j = JSON.stringify(v);
    if (j === last) return;
    last = j;
    archived = v.status === "archived";
    // Keep what is being typed across a live reload.
    var ta = document.getElementById("post-body"), ks = document.getElementById("post-kind");
    var focused = document.activeElement && document.activeElement.id;
    if (ta) draft.body = ta.value;
    if (ks) draft.kind = ks.value;
    clear(box);
    render(v);
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    loaded = true;
  }
  function render(v) {
    var open = v.status === "open";
    add(box, h("h2", { id: "conv-topic", text: v.topic || "(no topic)" }),
      h("p", null, h("span", { class: "status-pill " + v.status, id: "conv-status", text: v.status }), " ",
        h("span", { class: "hint" }, v.pattern + " · started by " + nameOf(v, v.creator) + " · " + when(v.created_at))),
      h("p", { class: "hint" }, "Members: ", v.members.map(function (m) { return nameOf(v, m); }).join(", ")),
      v.rule ? h("p", null, "Rule: ", h("code", { id: "conv-rule", text: v.rule })) : null,
      v.rule_error ? h("p", { class: "rule-error", id: "conv-rule-error", role: "status", text: "The rule cannot be evaluated: " + v.rule_error + ". It cannot decide until the messages change." }) : null);
    if (v.outcome) {
      var o = v.outcome;
      add(box, h("section", { class: "outcome", id: "outcome", "aria-label": "Outcome" },
        h("p", null, "Decided: ", h("span", { class: "result", id: "outcome-result", text: o.result })),
        h("p", { text: "Tally: " + tallyText(o.tally) }),
        h("p", { class: "hint" }, "Evaluated " + when(o.evaluated_at) + " by " + nameOf(v, o.decided_by) + " · signed · message set " + short(o.message_set))));
    }
    var side = h("aside", { class: "card", "aria-label": "Tally" });
    if (v.choices && v.choices.length) {
      add(side, h("h3", { text: "Tally" }), h("table", { class: "tally", id: "tally" },
        h("tbody", null, v.choices.map(function (c) {
          return h("tr", { "data-choice": c }, h("th", { scope: "row", text: c }), h("td", { text: String((v.tally && v.tally[c]) || 0) }));
        }))));
      var p = v.progress;
      if (p) {
        var lines = h("ul", { id: "progress" });
        (p.choices || []).forEach(function (c) {
          var t = c.more === 0 ? "the rule holds" :
            c.more > 0 ? c.more + " more " + c.choice + " vote" + (c.more > 1 ? "s" : "") + " make" + (c.more > 1 ? "" : "s") + " the rule true" :
              "no number of " + c.choice + " votes alone makes the rule true now";
          add(lines, h("li", { "data-choice": c.choice, text: t }));
        });
        add(side, h("p", { class: "hint", text: p.voted + " of " + p.members + " members voted." }), lines, p.note ? h("p", { class: "hint", text: p.note }) : null);
      }
      if (open) {
        add(side, h("h3", { text: "Your vote" }), h("div", { class: "row", role: "group", "aria-label": "Vote" }, v.choices.map(function (c) {
          return h("button", { type: "button", id: "vote-" + c, onclick: function () { vote(v, c); } }, c);
        })));
      }
    }
    var th = h("div", { class: "thread", id: "messages" });
    v.messages.forEach(function (m) {
      th.appendChild(h("article", { class: "msg kind-" + m.kind, "data-kind": m.kind },
        h("div", { class: "meta" }, h("span", { class: "kind-label", text: m.kind }), nameOf(v, m.by) + " · " + when(m.at)),
        h("div", { class: "body", text: m.body })));
    });
    if (!v.messages.length) add(th, h("p", { class: "hint", text: "No messages yet." }));
    var postKinds = (v.kinds || []).filter(function (k) { return k !== "vote" && k !== "rsvp"; });
    var form = null;
    if (open && postKinds.length) {
      var kind = h("select", { id: "post-kind" }, postKinds.map(function (k) { return h("option", { value: k, text: k }); }));
      if (draft.kind && postKinds.indexOf(draft.kind) >= 0) kind.value = draft.kind;
      var body = h("textarea", { id: "post-body", maxlength: "10000" });
      body.value = draft.body;
      form = h("form", { class: "card", id: "post-form", onsubmit: function (ev) {
        ev.preventDefault();
        call("POST", "/api/conv/post", { conversation_id: v.conversation_id, kind: kind.value, body: body.value }).then(function () {
          draft.body = "";
          body.value = "";
          load();
        }).catch(fail);
      } }, h("label", { for: "post-kind", text: "Kind" }), kind, h("label", { for: "post-body", text: "Message" }), body,
        h("div", { class: "row" }, h("button", { type: "submit", id: "post-send" }, "Post")));
    }
    add(box, h("div", { class: "split" }, h("div", null, h("h3", { text: "Thread" }), th, form), side));
  }
  function vote(v, c) {
    call("POST", "/api/conv/vote", { conversation_id: v.conversation_id, choice: c }).then(function () {
      toast("You voted " + c + ".");
      load();
    }).catch(fail);
  }
  function tallyText(t) {
    return Object.keys(t || {}).sort().map(function (k) { return k + " " + t[k]; }).join(", ") || "no votes";
  }
  openThread();
  return {
    refresh: function (t) {
      if (opening) { missed = missed || t === "conv"; return; }
      if (archived) return;
      if (t === "conv" || (t === "hello" && loaded)) load();
    },
    stop: function () { stopped = true; abort.abort(); }
  };
}
