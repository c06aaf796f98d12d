package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Lifetimes and bounds of logins and sessions.
const (
	// LoginTTL is how long a login token from "kith web" stays valid.
	LoginTTL = 2 * time.Minute
	// SessionTTL is how long a session lasts after its login.
	SessionTTL = 12 * time.Hour
	// maxLogins and maxSessions bound what is kept; the oldest goes first.
	maxLogins   = 8
	maxSessions = 32
)

// secret is a random 256-bit value in base64url, without padding.
func secret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// digest is the key a secret is kept under: a lookup by hash reveals
// nothing about the secret through timing.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// session is one logged-in browser.
type session struct {
	key     string // the page key, which is also the CSRF token
	expires time.Time
	created time.Time
}

// auth keeps the login tokens and the sessions. Safe for concurrent use.
type auth struct {
	now func() time.Time

	mu       sync.Mutex
	logins   map[[32]byte]time.Time // guarded by mu: token digest → expiry
	sessions map[[32]byte]*session  // guarded by mu: cookie digest → session
}

func newAuth(now func() time.Time) *auth {
	return &auth{now: now, logins: map[[32]byte]time.Time{}, sessions: map[[32]byte]*session{}}
}

// newLogin mints a one-time login token.
func (a *auth) newLogin() string {
	tok := secret()
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.logins {
		if !now.Before(exp) {
			delete(a.logins, k)
		}
	}
	for len(a.logins) >= maxLogins {
		var oldest [32]byte
		var at time.Time
		for k, exp := range a.logins {
			if at.IsZero() || exp.Before(at) {
				oldest, at = k, exp
			}
		}
		delete(a.logins, oldest)
	}
	a.logins[digest(tok)] = now.Add(LoginTTL)
	return tok
}

// login spends a login token: if it is valid it is gone, and a new
// session's cookie value and page key are returned.
func (a *auth) login(tok string) (cookie, key string, ok bool) {
	now := a.now()
	d := digest(tok)
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, found := a.logins[d]
	if !found {
		return "", "", false
	}
	delete(a.logins, d)
	if !now.Before(exp) {
		return "", "", false
	}
	for k, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
	for len(a.sessions) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, s := range a.sessions {
			if at.IsZero() || s.created.Before(at) {
				oldest, at = k, s.created
			}
		}
		delete(a.sessions, oldest)
	}
	cookie, key = secret(), secret()
	a.sessions[digest(cookie)] = &session{key: key, created: now, expires: now.Add(SessionTTL)}
	return cookie, key, true
}

// session returns the live session of a cookie value.
func (a *auth) session(cookie string) (*session, bool) {
	if cookie == "" {
		return nil, false
	}
	d := digest(cookie)
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[d]
	if !ok {
		return nil, false
	}
	if !a.now().Before(s.expires) {
		delete(a.sessions, d)
		return nil, false
	}
	return s, true
}

// keyMatches compares a page key in constant time.
func (s *session) keyMatches(key string) bool {
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.key)) == 1
}
