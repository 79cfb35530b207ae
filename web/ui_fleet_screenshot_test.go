package web_test

import (
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserUIFleetScreenshot rewrites docs/ui.png when
// HEALPROXY_UPDATE_FLEET_SCREENSHOT=1 (skipped otherwise): the test fleet
// filtered to its problems, one entry's timeline open after a fault
// injection and a trip.
func TestBrowserUIFleetScreenshot(t *testing.T) {
	if os.Getenv("HEALPROXY_UPDATE_FLEET_SCREENSHOT") != "1" {
		t.Skip("set HEALPROXY_UPDATE_FLEET_SCREENSHOT=1 to rewrite docs/ui.png")
	}
	f := startTestFleet(t)
	f.admin(t, "/api/admin/providers/p117/drain", `{"reason":"rate-limit investigation","ttl":"1h"}`)
	p := openPage(t, f.url+"/?status=problems")
	p.Viewport(1100, 1500)
	p.Click(`article[data-key="p010"] details.explain > summary`)
	f.admin(t, "/api/admin/fault?provider=p010", `{"kind":"error","status":503,"ttl":"5m","reason":"game day"}`)
	f.send(t, "p010")
	f.send(t, "p010")
	p.WaitJS("p010's timeline shows its trip and the fault", `document.querySelector('article[data-key="p010"] .tl-marker[data-markers~="trip"]') &&
		document.querySelector('article[data-key="p010"] .tl-events').textContent.includes('game day') &&
		document.querySelector('article[data-key="p010"] .tl-chart svg.sparkline')`, 15*time.Second)
	// and the server's marks of it, which tell its changes before the page opened
	p.WaitJS("p010's marks are read", `document.querySelector('article[data-key="p010"] .tl-events').textContent.includes('→ degraded')`, 15*time.Second)
	p.Do(chromedp.Focus(chromedp.CSS(`#filter`)))
	png := p.Screenshot()
	if err := os.WriteFile("../docs/ui.png", png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("wrote docs/ui.png")
}
