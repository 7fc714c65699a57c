package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/ui"
	"github.com/chromedp/chromedp"
)

// findBrowser returns a Chromium or Chrome to drive, or "".
func findBrowser() string {
	if p := os.Getenv("BOURSE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInHeadlessChromium logs into the dashboard of a client node
// of a four-node network through a one-time link, in a real headless
// Chromium, and watches it: the pages load without a console error or an
// uncaught exception, the height rises live over the event stream, a job
// submitted through the API appears and reaches its final state, its match
// shows where it landed, and every chart has data. Screenshots go to the
// test's temp dir, and to $BOURSE_UI_SCREENSHOT when set (docs/dashboard.png
// for the README).
func TestDashboardInHeadlessChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes and a browser")
	}
	if raceBuild {
		t.Skip("runs without -race (make test runs it so): four nodes and a browser under -race exceed the time budget")
	}
	browser := findBrowser()
	if browser == "" {
		t.Skip("no Chromium found (apt-get install chromium, or set BOURSE_CHROMIUM): the dashboard's browser test cannot run")
	}
	payload := hello(t)
	tn := providerNet(t)
	c := tn.client(0)
	tok, err := ReadAPIToken(tn.homes[0])
	if err != nil {
		t.Fatal(err)
	}
	code, err := ui.LoginCode(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + tn.nodes[0].APIAddr()

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Skipf("cannot start %s: %v", browser, err)
	}

	// Every console error, uncaught exception and browser-log error (a
	// failed load, a CSP violation) until the checks end.
	var mu sync.Mutex
	var problems []string
	watchCtx, stopWatch := context.WithCancel(bctx)
	var wg sync.WaitGroup
	messages := chromedp.Console(watchCtx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	defer func() { stopWatch(); wg.Wait() }()

	step := func(what string, within time.Duration, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, within)
		defer cancel()
		if err := chromedp.Do(ctx, a); err != nil {
			shot(t, bctx, "failed.png")
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	}

	step("open the login link", 15*time.Second, chromedp.Navigate(base+"/ui/login?code="+code))
	if loc := eval(`location.pathname + location.search`); loc != "/ui/" {
		t.Fatalf("after login the page is at %q, want /ui/ (the code dropped)", loc)
	}
	step("event stream connects", 15*time.Second, poll(`document.querySelector('#live').textContent === 'live'`))
	step("height shown", 15*time.Second, poll(`Number(document.querySelector('#height').textContent) > 0`))
	h0, _ := strconv.Atoi(eval(`document.querySelector('#height').textContent`))
	step("height rises live", 20*time.Second, poll(fmt.Sprintf(`Number(document.querySelector('#height').textContent) >= %d`, h0+2)))
	step("offers listed", 15*time.Second, poll(`document.querySelectorAll('#offers tbody tr').length === 3`))

	job, err := c.SubmitJob(context.Background(), helloSpec(), bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	step("the job appears", 15*time.Second, poll(fmt.Sprintf(`document.querySelector('tr[data-job=%q]') !== null`, job.ID)))
	step("the job reaches its final state", 60*time.Second, poll(fmt.Sprintf(`document.querySelector('tr[data-job=%q]')?.dataset.state === 'paid'`, job.ID)))
	final, err := c.Job(context.Background(), job.ID)
	if err != nil || final.State != api.StatePaid {
		t.Fatalf("job through the API: %+v, %v", final, err)
	}
	step("the match shows where the job landed", 15*time.Second, poll(fmt.Sprintf(
		`[...document.querySelectorAll('#matches tbody tr')].some(r => r.dataset.bid === %q && r.cells[2].title === %q)`, final.BidID, final.Provider)))
	charts := []string{"chart-interval", "chart-stake", "chart-load", "chart-share", "chart-fairness", "chart-earned", "chart-states", "chart-latency"}
	for _, id := range charts {
		step("chart "+id+" has data", 15*time.Second, poll(fmt.Sprintf(`Number(document.querySelector('#%s svg')?.dataset.points) > 0`, id)))
	}

	png := shot(t, bctx, "dashboard.png")
	if out := os.Getenv("BOURSE_UI_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stopWatch()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the dashboard logged %d errors:\n%s", len(problems), problems)
	}
}

// shot saves a full-page screenshot into the test's temp dir.
func shot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	return png
}
