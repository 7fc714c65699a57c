package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// 'bourse ui --open' hands the browser a link that logs in once and never
// carries the API token; the session it gives reads the API but cannot
// write through it.
func TestUILinkLogsInOnceWithoutTheTokenAndItsSessionCannotWrite(t *testing.T) {
	envv := daemon(t, richBackend())
	var out, errb bytes.Buffer
	var opened string
	code := Run(context.Background(), []string{"bourse", "ui", "--open"}, Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv:  func(k string) string { return envv[k] },
		OpenURL: func(_ context.Context, u string) error { opened = u; return nil },
	})
	if code != 0 {
		t.Fatalf("bourse ui: exit %d: %s", code, errb.String())
	}
	link := strings.Fields(out.String())[0]
	if opened != link {
		t.Fatalf("opened %q, printed %q", opened, link)
	}
	if strings.Contains(link, testToken) || !strings.HasPrefix(link, envv["BOURSE_API"]+"/ui/login?code=") {
		t.Fatalf("link %q: want /ui/login?code=... without the token", link)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login: %s to %q, want 303 to /ui/", resp.Status, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie %+v: want one HttpOnly SameSite=Strict cookie", cookies)
	}
	get := func(method, path string) int {
		req, _ := http.NewRequest(method, envv["BOURSE_API"]+path, strings.NewReader("{}"))
		req.AddCookie(cookies[0])
		r, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if c := get("GET", "/v1/status"); c != 200 {
		t.Fatalf("GET /v1/status with the session: %d", c)
	}
	if c := get("GET", "/ui/"); c != 200 {
		t.Fatalf("GET /ui/ with the session: %d", c)
	}
	if c := get("POST", "/v1/jobs/j1/cancel"); c != http.StatusUnauthorized {
		t.Fatalf("POST with only the session cookie: %d, want 401", c)
	}
	if c := get("GET", "/metrics"); c != http.StatusUnauthorized {
		t.Fatalf("GET /metrics with only the session cookie: %d, want 401", c)
	}
	// Spent: the same link again is refused.
	resp, err = hc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("second use of the link: %s, cookies %v; want 401 and none", resp.Status, resp.Cookies())
	}
	if _, err := url.Parse(link); err != nil {
		t.Fatal(err)
	}
}
