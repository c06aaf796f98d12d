package web

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// attackerPage is a page of another origin that tries to read the console
// and to change something in it, with the victim's browser logged in. It
// writes what happened into window.results; window.done is set when every
// attempt has settled.
const attackerPage = `<!doctype html><html><body><h1>attacker</h1>
<iframe id="frame" src="CONSOLE/"></iframe>
<form id="form" method="POST" action="CONSOLE/api/friends/block" enctype="text/plain" target="sink">
<input name='{"user_id":"VICTIM","x":"' value='"}'></form>
<iframe name="sink"></iframe>
<script>
var C = "CONSOLE", results = {}, pending = 5;
function settle(k, v) { results[k] = v; if (--pending === 0) window.done = true; }
fetch(C + "/api/status", {credentials: "include"}).then(function (r) { return r.text(); })
  .then(function (t) { settle("read", "READ " + t); }, function () { settle("read", "blocked"); });
fetch(C + "/api/friends/block", {method: "POST", mode: "no-cors", credentials: "include",
  headers: {"Content-Type": "text/plain"}, body: JSON.stringify({user_id: "VICTIM"})})
  .then(function (r) { settle("post", "sent, opaque " + r.type); }, function () { settle("post", "error"); });
fetch(C + "/api/friends/block", {method: "POST", credentials: "include",
  headers: {"Content-Type": "application/json", "X-Kith-Key": "guess"}, body: JSON.stringify({user_id: "VICTIM"})})
  .then(function (r) { return r.text().then(function (t) { settle("preflighted", "READ " + r.status + " " + t); }); },
        function () { settle("preflighted", "blocked"); });
var img = new Image();
img.onload = function () { settle("img", "loaded " + img.width); };
img.onerror = function () { settle("img", "blocked"); };
img.src = C + "/api/pair/qr.png";
var es = new EventSource(C + "/api/events", {withCredentials: true});
es.onopen = function () { settle("events", "open"); es.close(); };
es.onerror = function () { settle("events", "blocked"); es.close(); };
document.getElementById("form").submit();
</script></body></html>`

// serveAttacker serves attackerPage on host (port chosen freely) and
// returns its origin.
func serveAttacker(t *testing.T, host, console, victim string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	page := strings.NewReplacer("CONSOLE", console, "VICTIM", victim).Replace(attackerPage)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// A page of another origin, in a browser logged in to the console, can
// neither read anything nor change anything: not from another port of
// 127.0.0.1 (the same site, so the SameSite cookie goes along and the
// origin checks refuse) nor from 127.0.0.2 (another site, so it does
// not). Meanwhile the console's own page still works.
func TestOtherOriginsRefused(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	alice := newPerson(t, "alice", "127.0.0.2")
	b := newBrowser(t, "")
	b.login(alice, "#/friends")
	b.waitText("#friends", "No friends yet")
	origin := alice.agentOrigin(t)
	const victim = "1111111111111111111111111111111111111111111111111111111111111111"
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		attacker := serveAttacker(t, host, origin, victim)
		b.do("opening the attacker's page on "+host, chromedp.Navigate(attacker+"/"))
		b.waitJS("its attempts settle", `window.done === true`)
		res := eval[map[string]string](b, `results`)
		t.Logf("attacker page on %s: %v", host, res)
		for k, v := range res {
			if strings.HasPrefix(v, "READ") || v == "open" || strings.HasPrefix(v, "loaded") {
				t.Errorf("from %s, %s got through: %s", host, k, v)
			}
		}
		// The framed console shows nothing: frame-ancestors 'none'.
		if framed := eval[bool](b, `(function(){try{return !!frames[0].document.body.innerText}catch(e){return false}})()`); framed {
			t.Errorf("from %s, the console rendered in a frame readable by the attacker", host)
		}
	}
	var fs []struct {
		UserID string `json:"user_id"`
		Status string `json:"status"`
	}
	alice.dev.JSON(&fs, "", "friends")
	if len(fs) != 0 {
		t.Fatalf("the attacker's requests changed alice's friends: %+v", fs)
	}
	// The requests did arrive, and the console refused them: the same-site
	// page's with its cookie, the other site's without one.
	for _, want := range []string{"web: refused a request from another site", "web: refused a request without a session"} {
		if !alice.agent.Contains(want) {
			t.Errorf("the agent's log lacks %q", want)
		}
	}
	// The console's own page still works in the same browser.
	b.do("back to the console", chromedp.Navigate(origin+"/#/devices"))
	b.waitText("#devices-table", "this device")
}
