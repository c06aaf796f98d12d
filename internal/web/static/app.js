// The kith console. Plain DOM: every string that a peer controls (names,
// topics, bodies) goes into the page as a text node, never as markup.
"use strict";
/* exported h, add, clear, call, stream, toast, fail, short, when, size */

var KEY = localStorage.getItem("kith-key") || "";
var session = null;      // GET /api/session: {self, features}
var current = null;      // the page shown: {refresh(topic), stop()}

// h makes an element: h("p", {class: "x", onclick: fn}, "text", child…).
// shown drops bidirectional controls and invisible format characters from
// text a peer may have written (a name, a topic, a body), as the terminal
// output does: a right-to-left override cannot reorder the page around it.
// Right-to-left scripts still show right to left: they need no controls.
var invisible = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;
function shown(s) { return String(s).replace(invisible, ""); }

function h(tag, attrs) {
  var el = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = shown(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
  }
  for (var i = 2; i < arguments.length; i++) addOne(el, arguments[i]);
  return el;
}
// add appends every argument after el: nodes, strings (as text), arrays.
function add(el) {
  for (var i = 1; i < arguments.length; i++) addOne(el, arguments[i]);
}
function addOne(el, kid) {
  if (kid === null || kid === undefined || kid === false) return;
  if (Array.isArray(kid)) { kid.forEach(function (k) { addOne(el, k); }); return; }
  el.appendChild(typeof kid === "object" ? kid : document.createTextNode(shown(kid)));
}
function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

// call sends a request to the agent with the page key; it resolves with
// the decoded answer, or rejects with the agent's message.
function call(method, path, body, type) {
  var opts = { method: method, headers: { "X-Kith-Key": KEY }, credentials: "same-origin" };
  if (body !== undefined) {
    if (type) { opts.body = body; opts.headers["Content-Type"] = type; }
    else { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  }
  return fetch(path, opts).then(function (r) {
    var ct = r.headers.get("Content-Type") || "";
    if (!ct.startsWith("application/json")) {
      if (!r.ok) return refused(r, ct);
      return r.blob();
    }
    return r.ok ? r.json() : refused(r, ct);
  });
}

// refused rejects with the agent's message for an answer that is not OK,
// and shows the login hint when the session is gone.
function refused(r, ct) {
  if (r.status === 401 || (r.status === 403 && !ct.startsWith("application/json"))) {
    loggedOut();
    return Promise.reject(new Error("not logged in"));
  }
  if (!ct.startsWith("application/json")) return Promise.reject(new Error(r.status + " " + r.statusText));
  return r.json().then(function (j) {
    if (r.status === 403 && j.kind === "refused") loggedOut();
    throw new Error(j.error || (r.status + " " + r.statusText));
  });
}

// stream reads an event-stream answer of the agent (GET, with the page
// key, which an EventSource cannot send), calling onEvent(name, data) for
// each event as it arrives; it resolves when the answer ends and rejects
// as call does, or with what onEvent throws. signal, if given, ends it.
function stream(path, onEvent, signal) {
  return fetch(path, { headers: { "X-Kith-Key": KEY }, credentials: "same-origin", signal: signal }).then(function (r) {
    var ct = r.headers.get("Content-Type") || "";
    if (!r.ok || !ct.startsWith("text/event-stream")) return refused(r, ct);
    var reader = r.body.getReader(), dec = new TextDecoder(), buf = "";
    function pump() {
      return reader.read().then(function (c) {
        if (c.value) buf += dec.decode(c.value, { stream: true });
        var i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          var name = "message", data = [];
          buf.slice(0, i).split("\n").forEach(function (l) {
            if (l.startsWith("event: ")) name = l.slice(7);
            else if (l.startsWith("data: ")) data.push(l.slice(6));
          });
          buf = buf.slice(i + 2);
          if (data.length) onEvent(name, JSON.parse(data.join("\n")));
        }
        if (!c.done) return pump();
      });
    }
    return pump();
  });
}

function toast(msg) {
  var t = document.getElementById("toast");
  t.textContent = shown(msg);
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(function () { t.hidden = true; }, 6000);
}
function fail(err) { toast(String(err && err.message ? err.message : err)); }

function loggedOut() {
  var main = document.getElementById("main");
  clear(main);
  add(main, h("div", { class: "card" },
    h("h2", { text: "Not logged in" }),
    h("p", null, "Run ", h("code", { text: "kith web" }), " on this device and open the address it prints. A login link works once.")));
  document.getElementById("live").textContent = "";
}

function short(id) { return id ? String(id).slice(0, 12) : ""; }
function ms(v) { return v === null || v === undefined ? "—" : (Math.round(v * 10) / 10) + " ms"; }
function when(t) {
  if (!t) return "—";
  var d = new Date(t);
  return isNaN(d) ? "—" : d.toLocaleString();
}
// size spells a byte count: 512 B, 1.5 KiB.
function size(n) {
  var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
}
function onlineCell(on) { return h("td", { class: on ? "on" : "off", text: on ? "online" : "offline" }); }

// ---- Pages ---------------------------------------------------------------

var pages = {};

// Pairing: this device's invite as a QR code, the camera, a photo, a code.
pages.pair = function (main) {
  var qr = h("img", { class: "qr", id: "invite-qr", alt: "QR code of this device's invite" });
  var expires = h("p", { class: "hint", id: "invite-expires" });
  var codeText = h("p", { class: "mono", id: "invite-code" });
  var video = h("video", { class: "camera", id: "camera", muted: true, playsinline: true, autoplay: true, hidden: true, "aria-label": "Camera view" });
  var camStatus = h("p", { class: "hint", id: "camera-status", role: "status" });
  var camButton = h("button", { id: "camera-start", type: "button", onclick: toggleCamera }, "Start camera");
  var fileIn = h("input", { type: "file", id: "photo", accept: "image/*", capture: "environment", onchange: onPhoto });
  var paste = h("textarea", { id: "paste-code", placeholder: "KITH2:…", autocomplete: "off", spellcheck: "false" });
  var result = h("div", { class: "card", id: "pair-result", "aria-live": "polite", hidden: true });
  var refreshTimer = null, stream = null, camTimer = null, busy = false, stopped = false, objURL = null;

  add(main, h("h2", { text: "Pair by camera" }),
    h("p", { class: "hint" }, "Meet in person. Each of you shows this page's code to the other's camera; then compare the six-digit check code out loud."),
    h("div", { class: "cards" },
      h("section", { class: "card", "aria-labelledby": "show-h" },
        h("h3", { id: "show-h", text: "This device's code" }), qr, expires,
        h("details", null, h("summary", { text: "Show it as text" }), codeText)),
      h("section", { class: "card", "aria-labelledby": "scan-h" },
        h("h3", { id: "scan-h", text: "Scan the other device's code" }),
        h("div", { class: "row" }, camButton), video, camStatus,
        h("label", { for: "photo", text: "Or upload a photo of their code" }), fileIn,
        h("label", { for: "paste-code", text: "Or paste their code" }), paste,
        h("div", { class: "row" }, h("button", { type: "button", id: "paste-pair", onclick: function () { scan(paste.value); } }, "Pair with this code")))),
    result);

  function showInvite() {
    call("POST", "/api/pair/show").then(function (inv) {
      codeText.textContent = inv.code;
      var exp = new Date(inv.expires_at);
      expires.textContent = "Valid until " + exp.toLocaleTimeString() + "; a new one comes before then.";
      return call("GET", "/api/pair/qr.png").then(function (blob) {
        if (objURL) URL.revokeObjectURL(objURL);
        objURL = URL.createObjectURL(blob);
        qr.src = objURL;
        qr.dataset.code = inv.code;
        var left = exp - Date.now();
        clearTimeout(refreshTimer);
        if (!stopped) refreshTimer = setTimeout(showInvite, Math.max(5000, Math.min(left - 60000, left * 0.8)));
      });
    }).catch(fail);
  }

  function toggleCamera() {
    if (stream) { stopCamera(); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      camStatus.textContent = "This browser gives no camera here (the console needs http://127.0.0.1 or localhost for it). Upload a photo or paste the code instead.";
      return;
    }
    camStatus.textContent = "Asking for the camera…";
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }).then(function (s) {
      if (stopped) { s.getTracks().forEach(function (t) { t.stop(); }); return; }
      stream = s;
      video.srcObject = s;
      video.hidden = false;
      camButton.textContent = "Stop camera";
      camStatus.textContent = "Point the camera at the other device's code.";
      camTimer = setInterval(sendFrame, 400);
    }).catch(function (e) {
      camStatus.textContent = "No camera: " + e.message + ". Upload a photo or paste the code instead.";
    });
  }
  function stopCamera() {
    clearInterval(camTimer);
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    video.srcObject = null;
    video.hidden = true;
    camButton.textContent = "Start camera";
  }
  function sendFrame() {
    if (busy || !stream || !video.videoWidth) return;
    busy = true;
    var scale = Math.min(1, 960 / Math.max(video.videoWidth, video.videoHeight));
    var c = document.createElement("canvas");
    c.width = Math.round(video.videoWidth * scale);
    c.height = Math.round(video.videoHeight * scale);
    c.getContext("2d").drawImage(video, 0, 0, c.width, c.height);
    c.toBlob(function (blob) {
      if (!blob) { busy = false; return; }
      call("POST", "/api/pair/frame", blob, "image/jpeg").then(function (r) {
        busy = false;
        if (r.found && stream) {
          stopCamera();
          camStatus.textContent = "Read their code.";
          scan(r.code);
        }
      }).catch(function (e) { busy = false; camStatus.textContent = e.message; });
    }, "image/jpeg", 0.9);
  }
  function onPhoto() {
    var f = fileIn.files[0];
    if (!f) return;
    camStatus.textContent = "Reading the photo…";
    call("POST", "/api/pair/frame?photo=1", f, f.type || "application/octet-stream").then(function (r) {
      camStatus.textContent = "Read their code.";
      scan(r.code);
    }).catch(function (e) { camStatus.textContent = e.message; });
  }

  function showResult(r, state) {
    clear(result);
    result.hidden = false;
    var kind = r.kind === "own" ? "your own device" : "a friend";
    add(result,
      h("h3", { text: state === "paired" ? "Paired" : "Compare this code out loud" }),
      h("p", { class: "peer-name", id: "peer-name", text: r.name || "(the other device)" }),
      h("p", { class: "hint" }, "The other screen must show the same six digits:"),
      h("p", { class: "sas", id: "sas", text: r.sas || "" }),
      h("p", { id: "pair-status", "data-status": state, class: state === "paired" ? "on" : "" },
        state === "paired" ? "Paired with " + kind + "." :
          state === "failed" ? "" : "Waiting for them to scan this device's code…"),
      r.unreachable ? h("p", { class: "hint", text: "Not reached yet: " + r.unreachable }) : null);
    result.scrollIntoView({ block: "nearest" });
  }
  function scan(code) {
    code = (code || "").trim();
    if (!code) { toast("Paste the other device's code first."); return; }
    call("POST", "/api/pair/scan", { code: code }).then(function (r) {
      showResult(r, r.status);
      if (r.status === "waiting") {
        return call("POST", "/api/pair/wait", { code: code }).then(function (w) { showResult(w, "paired"); });
      }
    }).catch(function (e) {
      fail(e);
      camStatus.textContent = "Could not pair: " + e.message;
    });
  }

  showInvite();
  return {
    refresh: function () {},
    stop: function () { stopped = true; clearTimeout(refreshTimer); stopCamera(); if (objURL) URL.revokeObjectURL(objURL); }
  };
};

// Devices: this device's status and the user's devices.
pages.devices = function (main) {
  var box = h("div", { id: "devices" });
  add(main, h("h2", { text: "This device and your devices" }), box);
  function load() {
    Promise.all([call("GET", "/api/status"), call("GET", "/api/devices")]).then(function (res) {
      var st = res[0], ds = res[1];
      var peers = {};
      (st.peers || []).forEach(function (p) { peers[p.device_id] = p; });
      clear(box);
      var cl = st.cluster || {};
      add(box, h("div", { class: "card" },
        st.revoked ? h("p", { class: "bad", text: st.revoked_message || "This device was revoked." }) : null,
        h("table", null, h("tbody", null,
          row("Name", st.name), row("User", h("span", { class: "mono", text: st.user_id })),
          row("Device", h("span", { class: "mono", text: st.device_id })),
          row("Listening on", st.listen), row("Public addresses", (st.public_addrs || []).join(", ") || "none known"),
          row("NAT", st.nat), row("Up for", st.uptime),
          row("Own cluster", (cl.state || "—") + (cl.leader ? ", leader " + short(cl.leader) : "") + ", term " + (cl.term || 0) +
            ", " + (cl.voters || []).length + " voters")))));
      var rows = ds.map(function (d) {
        var p = peers[d.device_id] || {};
        return h("tr", { "data-device": d.device_id },
          h("td", null, d.name, d.self ? h("span", { class: "hint", text: " (this device)" }) : null),
          h("td", { text: String(d.device_index) }),
          h("td", { text: (d.roles || []).join(", ") || "—" }),
          h("td", { class: "mono", text: d.addr || "—" }),
          d.self ? h("td", { class: "on", text: "this device" }) : onlineCell(d.online),
          h("td", { class: "wide", text: d.self ? "—" : ms(p.rtt_ms) }),
          h("td", { class: "wide", text: d.self ? "—" : ms(p.clock_offset_ms) }),
          h("td", { class: d.revoked ? "bad" : "", text: d.revoked ? "revoked" : "no" }));
      });
      add(box, h("h3", { text: "Your devices" }), h("div", { class: "table-wrap" }, h("table", { id: "devices-table" },
        h("thead", null, h("tr", null, ["Name", "Index", "Roles", "Address", "Online", "RTT", "Clock offset", "Revoked"].map(function (c, i) {
          return h("th", { scope: "col", class: i === 5 || i === 6 ? "wide" : null, text: c });
        }))),
        h("tbody", null, rows))),
        h("p", { class: "hint" }, "Revoking a device needs the seed phrase: use ", h("code", { text: "kith devices revoke I" }), " in a terminal."));
    }).catch(fail);
  }
  function row(k, v) { return h("tr", null, h("th", { scope: "row", text: k }), h("td", null, v)); }
  load();
  return { refresh: function (t) { if (t === "peers" || t === "friends" || t === "hello") load(); }, stop: function () {} };
};

// Friends: who they are, their devices, block, unblock and remove.
pages.friends = function (main) {
  var box = h("div", { id: "friends" });
  add(main, h("h2", { text: "Friends" }), box);
  function load() {
    Promise.all([call("GET", "/api/friends"), call("GET", "/api/status")]).then(function (res) {
      var fs = res[0], peers = {};
      (res[1].peers || []).forEach(function (p) { peers[p.device_id] = p; });
      clear(box);
      if (!fs.length) {
        add(box, h("p", null, "No friends yet: ", h("a", { href: "#/pair", text: "pair with someone" }), "."));
        return;
      }
      fs.forEach(function (f) {
        var actions = h("div", { class: "row" });
        if (f.status === "blocked") actions.appendChild(h("button", { type: "button", class: "secondary", "data-action": "unblock", onclick: function () { act("unblock", f); } }, "Unblock " + f.name));
        else actions.appendChild(h("button", { type: "button", class: "secondary", "data-action": "block", onclick: function () { act("block", f); } }, "Block " + f.name));
        var rm = h("button", { type: "button", class: "danger", "data-action": "remove" }, "Remove " + f.name);
        rm.addEventListener("click", function () {
          if (rm.dataset.armed) { act("remove", f); return; }
          rm.dataset.armed = "1";
          rm.textContent = "Press again to forget " + f.name;
          setTimeout(function () { delete rm.dataset.armed; rm.textContent = "Remove " + f.name; }, 5000);
        });
        actions.appendChild(rm);
        add(box, h("section", { class: "card", "data-user": f.user_id, "aria-label": "Friend " + f.name },
          h("h3", null, f.name || "(no name)", " ", h("span", { class: "status-pill" + (f.status === "blocked" ? " bad" : ""), "data-status": f.status, text: f.status })),
          h("p", { class: "hint" }, "User ", h("span", { class: "mono", text: f.user_id }), f.paired_at ? " · paired " + when(f.paired_at) : "", f.sas ? " · check code " + f.sas : ""),
          h("div", { class: "table-wrap" }, h("table", null,
            h("thead", null, h("tr", null, ["Device", "Address", "Online", "RTT", "Clock offset"].map(function (c, i) {
              return h("th", { scope: "col", class: i > 2 ? "wide" : null, text: c });
            }))),
            h("tbody", null, (f.devices || []).map(function (d) {
              var p = peers[d.device_id] || {};
              return h("tr", null, h("td", null, d.name || short(d.device_id)), h("td", { class: "mono", text: d.addr || "—" }), onlineCell(d.online),
                h("td", { class: "wide", text: ms(p.rtt_ms) }), h("td", { class: "wide", text: ms(p.clock_offset_ms) }));
            })))),
          actions));
      });
    }).catch(fail);
  }
  function act(action, f) {
    call("POST", "/api/friends/" + action, { user_id: f.user_id }).then(function (r) {
      toast(f.name + ": " + r.status);
      load();
    }).catch(fail);
  }
  load();
  return { refresh: function (t) { if (t === "peers" || t === "friends" || t === "hello") load(); }, stop: function () {} };
};

// Archives: replication at a glance, and the friends' quota on this device.
pages.archives = function (main) {
  add(main, h("h2", { text: "Archives" }));
  if (!has("archive")) {
    add(main, h("div", { class: "card", id: "archives-missing" },
      h("p", null, "This agent keeps no archives, so the console cannot show them.")));
    return { refresh: function () {}, stop: function () {} };
  }
  var box = h("div", { id: "archives" });
  var now = h("button", { type: "button", id: "archive-now", class: "secondary", onclick: archiveNow }, "Archive eligible conversations now");
  add(main, h("p", { class: "hint" }, "Decided conversations, and open ones idle for long, are sealed twice and kept by your other devices (and friends, within their quota)."),
    h("div", { class: "row" }, now), box);
  function bar(label, part, whole, id) {
    return h("div", null, h("label", { for: id, id: id + "-label", text: label }),
      h("progress", { class: "bar", id: id, max: String(Math.max(whole, 1)), value: String(Math.min(part, Math.max(whole, 1))) }));
  }
  function load() {
    Promise.all([call("GET", "/api/archive"), call("GET", "/api/devices"), call("GET", "/api/friends")]).then(function (res) {
      var v = res[0], names = {};
      res[1].forEach(function (d) { names[d.device_id] = d.name + (d.self ? " (this device)" : ""); });
      res[2].forEach(function (f) { (f.devices || []).forEach(function (d) { names[d.device_id] = (d.name || f.name) + " (" + f.name + ")"; }); });
      var st = v.status, ok = st.blobs - st.under_replicated;
      clear(box);
      add(box, h("div", { class: "cards" },
        h("section", { class: "card", "aria-label": "Replication" },
          h("h3", { text: "Replication" }),
          h("p", { id: "archive-summary", text: st.blobs + " blobs, " + size(st.bytes) + "; each wants " + st.min_replicas + " holders." }),
          bar(ok + " of " + st.blobs + " blobs have enough holders" + (st.under_replicated ? "; " + st.under_replicated + " under-replicated" : ""), ok, st.blobs, "archive-replicated")),
        h("section", { class: "card", "aria-label": "Quota" },
          h("h3", { text: "Friends' use of this device" }),
          bar(size(v.quota.used_bytes) + " of " + size(v.quota.quota_bytes) + " used", v.quota.used_bytes, v.quota.quota_bytes, "archive-quota"),
          h("p", { class: "hint" }, "Change it with ", h("code", { text: "kith archive quota SIZE" }), "."))));
      if (!v.blobs.length) { add(box, h("p", { id: "archive-empty", text: "Nothing archived yet." })); }
      else add(box, h("h3", { text: "Blobs" }), h("div", { class: "table-wrap" }, h("table", { id: "archive-table" },
        h("thead", null, h("tr", null, ["Blob", "Size", "Holders"].map(function (c) { return h("th", { scope: "col", text: c }); }))),
        h("tbody", null, v.blobs.map(function (b) {
          var few = (b.holders || []).length < st.min_replicas;
          return h("tr", { "data-blob": b.blob },
            h("td", { class: "mono", text: short(b.blob) }), h("td", { text: size(b.bytes) }),
            h("td", { class: few ? "bad" : "" }, (b.holders || []).map(function (d) { return names[d] || short(d); }).join(", ") || "none", few ? " (under-replicated)" : ""));
        })))));
      add(box, h("p", { class: "hint" }, "Opening an archived conversation (status archived in ", h("a", { href: "#/conv", text: "Conversations" }), ") fetches its blobs, with a bar of their progress."));
    }).catch(fail);
  }
  function archiveNow() {
    now.disabled = true;
    call("POST", "/api/archive/now").then(function (r) {
      toast((r.archived || []).length + " conversation(s) archived.");
      now.disabled = false;
      load();
    }).catch(function (e) { now.disabled = false; fail(e); });
  }
  load();
  return { refresh: function (t) { if (t === "archive" || t === "conv" || t === "peers" || t === "hello") load(); }, stop: function () {} };
};

// Conversations: conv.js fills this in.
pages.conv = function (main, args) {
  if (!has("conv") || !window.kithConv) {
    add(main, h("h2", { text: "Conversations" }), h("div", { class: "card" }, h("p", { text: "This agent keeps no conversations yet." })));
    return { refresh: function () {}, stop: function () {} };
  }
  return window.kithConv(main, args);
};

function has(f) { return session && (session.features || []).indexOf(f) >= 0; }

// ---- Routing and live updates -------------------------------------------

function route() {
  if (current) current.stop();
  var parts = (location.hash || "#/pair").slice(2).split("/");
  var name = parts[0] || "pair";
  if (!pages[name]) name = "pair";
  document.querySelectorAll("nav a").forEach(function (a) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  var main = document.getElementById("main");
  clear(main);
  current = pages[name](main, parts.slice(1));
}

function live() {
  var es = new EventSource("/api/events");
  var status = document.getElementById("live");
  es.addEventListener("open", function () { status.textContent = "live"; });
  es.addEventListener("error", function () {
    status.textContent = "reconnecting…";
    // The agent restarted, or the session ended: stop retrying if so.
    clearTimeout(live.probe);
    live.probe = setTimeout(function () {
      call("GET", "/api/session").catch(function (e) { if (e.message === "not logged in") es.close(); });
    }, 3000);
  });
  ["hello", "peers", "friends", "pair", "conv", "archive"].forEach(function (t) {
    es.addEventListener(t, function () { if (current) current.refresh(t); });
  });
}

function start() {
  if (!KEY) { loggedOut(); return; }
  call("GET", "/api/session").then(function (s) {
    session = s;
    document.getElementById("who").textContent = s.self.name + " · " + short(s.self.device_id);
    document.title = "kith · " + s.self.name;
    window.addEventListener("hashchange", route);
    route();
    live();
  }).catch(function (e) { if (e.message !== "not logged in") fail(e); });
}

document.addEventListener("DOMContentLoaded", start);
