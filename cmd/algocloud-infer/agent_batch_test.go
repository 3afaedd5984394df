package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
)

// TestBatchJournalTornTail: a record a killed agent left half written is cut
// off at open, the whole ones before it are read back, and appends go on
// after them.
func TestBatchJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, recs, err := openBatchJournal(path)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open new: %v %v", recs, err)
	}
	for i := range 3 {
		if _, err := j.append(commands.BatchResult{Index: i, HTTPStatus: 200, ContentType: "image/png", Body: []byte{byte(i), 1, 2}}); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	whole, _ := os.ReadFile(path)
	torn := commands.AppendBatchRecord(nil, commands.BatchResult{Index: 3, HTTPStatus: 500, Error: "x", Body: bytes.Repeat([]byte("y"), 100)})
	if err := os.WriteFile(path, append(append([]byte{}, whole...), torn[:len(torn)-7]...), 0o600); err != nil {
		t.Fatal(err)
	}
	j, recs, err = openBatchJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].Index != 2 || string(recs[1].Body) != "\x01\x01\x02" || recs[0].ContentType != "image/png" {
		t.Fatalf("read back %+v", recs)
	}
	if fi, _ := os.Stat(path); fi.Size() != int64(len(whole)) {
		t.Fatalf("torn tail not cut: %d bytes, want %d", fi.Size(), len(whole))
	}
	if _, err := j.append(commands.BatchResult{Index: 3, Error: "no answer"}); err != nil {
		t.Fatal(err)
	}
	j.close()
	// A damaged byte inside the last record (not only a short one) is torn too.
	b, _ := os.ReadFile(path)
	b[len(b)-5] ^= 0xff
	os.WriteFile(path, b, 0o600)
	_, recs, err = openBatchJournal(path)
	if err != nil || len(recs) != 3 {
		t.Fatalf("damaged tail: %d records, %v", len(recs), err)
	}
}

// TestBatchPartsCut: a part ends at the item or byte bound; the cuts are
// kept beside the journal (a torn line or a cut past the journal's records
// dropped), and parts decode back.
func TestBatchPartsCut(t *testing.T) {
	ends := []int64{10, 20, 30, 100, 110, 120, 130}
	if got := []int{nextCut(ends, 0, 3, 50), nextCut(ends, 3, 3, 50), nextCut(ends, 4, 3, 50), nextCut(ends, 4, 5, 50)}; fmt.Sprint(got) != "[3 4 7 -1]" {
		t.Fatalf("cuts %v", got)
	}
	path := filepath.Join(t.TempDir(), "parts")
	c, err := openPartCuts(path, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 4, 7} {
		if err := c.add(n); err != nil {
			t.Fatal(err)
		}
	}
	c.close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("1") // torn
	f.Close()
	c, err = openPartCuts(path, 5) // the journal lost records 6 and 7
	if err != nil || fmt.Sprint(c.ends) != "[3 4]" {
		t.Fatalf("reopened cuts %v %v", c.ends, err)
	}
	c.add(5)
	c.close()
	if b, _ := os.ReadFile(path); string(b) != "3\n4\n5\n" {
		t.Fatalf("cuts file %q", b)
	}
	var part []byte
	for i := range 4 {
		part = commands.AppendBatchRecord(part, commands.BatchResult{Index: 10 + i, HTTPStatus: 200 + i, Body: []byte{byte(i)}})
	}
	rs, err := commands.ReadBatchPart(part)
	if err != nil || len(rs) != 4 || rs[3].Index != 13 || rs[3].HTTPStatus != 203 {
		t.Fatalf("decode %+v %v", rs, err)
	}
	if _, err := commands.ReadBatchPart(part[:len(part)-1]); !errors.Is(err, commands.ErrTornRecord) {
		t.Fatalf("a cut part decoded: %v", err)
	}
}

// memIO is the platform side of a chunk in memory: the input object and the
// uploaded parts.
type memIO struct {
	input    []byte
	checkErr error
	mu       sync.Mutex
	parts    map[string][]byte
}

func (m *memIO) Input(context.Context) ([]byte, error) { return m.input, nil }
func (m *memIO) Check(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkErr
}
func (m *memIO) Upload(_ context.Context, name string, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parts == nil {
		m.parts = map[string][]byte{}
	}
	m.parts[name] = append([]byte(nil), b...)
	return nil
}

// results decodes parts 0..n-1.
func (m *memIO) results(t *testing.T, n int) map[int]commands.BatchResult {
	t.Helper()
	out := map[int]commands.BatchResult{}
	for p := range n {
		rs, err := commands.ReadBatchPart(m.parts[commands.BatchPartName(p)])
		if err != nil {
			t.Fatalf("part %d: %v", p, err)
		}
		for _, r := range rs {
			if _, dup := out[r.Index]; dup {
				t.Fatalf("item %d in two parts", r.Index)
			}
			out[r.Index] = r
		}
	}
	return out
}

// TestBatchChunkKilledAndRerun runs a chunk against a real HTTP server on
// loopback that answers 429 now and then, fails one item and echoes the
// rest; the first run is stopped (the agent killed) after some answers and
// the same command runs again: every item ends in exactly one part, and the
// predicts sent twice are at most the ones that were in flight.
func TestBatchChunkKilledAndRerun(t *testing.T) {
	const n, conc = 120, 4
	var calls atomic.Int64
	var mu sync.Mutex
	answered := map[string]int{}
	var throttled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer local-tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 7 && throttled.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		answered[string(b)]++
		mu.Unlock()
		if string(b) == "item-13" {
			http.Error(w, `{"code":"predict_error"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(append([]byte("out-"), b...))
	}))
	defer srv.Close()
	target := func(context.Context) (string, string, *http.Client, error) {
		return srv.URL, "local-tok", srv.Client(), nil
	}
	in := commands.Batch{Concurrency: conc, PartItems: 25}
	var input []byte
	for i := range n {
		body := fmt.Sprintf("item-%d", i)
		in.Items = append(in.Items, commands.BatchItem{Index: 500 + i, ContentType: "text/plain", Length: int64(len(body))})
		input = append(input, body...)
	}
	in.InputBytes = int64(len(input))
	folder := batchFolder(t.TempDir(), "batch-bat_x-500-620")
	bio := &memIO{input: input}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			mu.Lock()
			k := len(answered)
			mu.Unlock()
			if k >= 50 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := runBatchChunk(ctx, folder, in, bio, target, func(...string) {}); err == nil {
		t.Fatal("the killed run answered")
	}
	mu.Lock()
	first := len(answered)
	mu.Unlock()
	var lines []string
	out, err := runBatchChunk(context.Background(), folder, in, bio, target, func(l ...string) { lines = append(lines, l...) })
	if err != nil {
		t.Fatal(err)
	}
	if out.Items != n || out.Succeeded != n-1 || out.Failed != 1 || out.Parts < 5 {
		t.Fatalf("output %+v", out)
	}
	res := bio.results(t, out.Parts)
	if len(res) != n {
		t.Fatalf("%d items in the parts, want %d", len(res), n)
	}
	if r := res[513]; r.HTTPStatus != 500 || !bytes.Contains(r.Body, []byte("predict_error")) {
		t.Fatalf("failed item %+v", r)
	}
	if r := res[600]; r.HTTPStatus != 200 || string(r.Body) != "out-item-100" || r.ContentType != "text/plain" {
		t.Fatalf("item 600: %+v", r)
	}
	twice := 0
	mu.Lock()
	for _, c := range answered {
		twice += c - 1
	}
	mu.Unlock()
	if twice > conc {
		t.Fatalf("%d predicts answered twice across the kill (first run answered %d), want at most the %d in flight", twice, first, conc)
	}
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no progress lines")
	}
	t.Logf("first run answered %d, sent again %d, progress %q", first, twice, lines[len(lines)-1])

	// A third run of the finished command sends nothing and uploads the same parts.
	before := calls.Load()
	again, err := runBatchChunk(context.Background(), folder, in, &memIO{}, target, func(...string) {})
	if err != nil || again != out || calls.Load() != before {
		t.Fatalf("re-run of a finished chunk: %+v %v, %d calls", again, err, calls.Load()-before)
	}
}

// TestBatchChunkUnreachable: a target that refuses connections is retried
// until RetryForSeconds, then the item fails with no answer; a restart
// within the window is waited for.
func TestBatchChunkUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	addr := srv.URL
	srv.Close() // refused from now on
	target := func(context.Context) (string, string, *http.Client, error) { return addr, "t", http.DefaultClient, nil }
	in := commands.Batch{Concurrency: 1, RetryForSeconds: 1, Items: []commands.BatchItem{{Index: 0, ContentType: "text/plain", Length: 1}}, InputBytes: 1}
	bio := &memIO{input: []byte("a")}
	out, err := runBatchChunk(context.Background(), t.TempDir(), in, bio, target, func(...string) {})
	if err != nil || out.Failed != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	r := bio.results(t, 1)[0]
	if r.HTTPStatus != 0 || r.Error == "" {
		t.Fatalf("unreachable item %+v", r)
	}
}

// TestBatchChunkCanceled: once the platform ends the command (its batch was
// canceled), the chunk stops within about a second and sends nothing more.
func TestBatchChunkCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	// Sends are counted as the chunk makes them, not as the server reads
	// them: under load a request written just before the cancel can reach
	// the handler after runBatchChunk returned, which is no send after it.
	calls := &countingTransport{next: srv.Client().Transport}
	client := &http.Client{Transport: calls}
	target := func(context.Context) (string, string, *http.Client, error) { return srv.URL, "t", client, nil }
	in := commands.Batch{Concurrency: 2}
	for i := range 1000 {
		in.Items = append(in.Items, commands.BatchItem{Index: i, ContentType: "text/plain", Length: 1})
	}
	in.InputBytes = 1000
	bio := &memIO{input: bytes.Repeat([]byte("a"), 1000)}
	time.AfterFunc(300*time.Millisecond, func() {
		bio.mu.Lock()
		bio.checkErr = fmt.Errorf("refused: %w", protocol.ErrCommandDone)
		bio.mu.Unlock()
	})
	start := time.Now()
	_, err := runBatchChunk(context.Background(), t.TempDir(), in, bio, target, func(...string) {})
	if !errors.Is(err, protocol.ErrCommandDone) {
		t.Fatalf("canceled chunk: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopped after %s", d)
	}
	n := calls.Load()
	time.Sleep(100 * time.Millisecond)
	if calls.Load() != n || n >= 1000 {
		t.Fatalf("%d predicts, still sending after the cancel", n)
	}
}

// countingTransport counts the requests a client starts.
type countingTransport struct {
	next http.RoundTripper
	atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.Add(1)
	return c.next.RoundTrip(r)
}

// TestPruneBatchFolders: chunk folders untouched for longer than the age
// go; a recent one and the running chunk's stay, however old.
func TestPruneBatchFolders(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	mk := func(name string, age time.Duration) string {
		f := filepath.Join(dir, name)
		j := filepath.Join(f, "journal")
		at := now.Add(-age)
		if err := os.MkdirAll(f, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(j, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(j, at, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, at, at); err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := mk("old", 7*time.Hour)
	recent := mk("recent", time.Hour)
	running := mk("running", 9*time.Hour)
	pruneBatchFolders(dir, running, batchKeep, now)
	for f, want := range map[string]bool{old: false, recent: true, running: true} {
		if _, err := os.Stat(f); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v (%v)", filepath.Base(f), err == nil, want, err)
		}
	}
}

// TestLiveTargetKeepsItsClient: the live revision's client (and with it its
// kept-alive TLS connections) is the same while the revision, its port and
// its certificate's bytes stay; a renewed certificate or another revision
// gets a new one.
func TestLiveTargetKeepsItsClient(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "cert.pem")
	write := func(der string) {
		t.Helper()
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(der)})
		if err := os.WriteFile(cert, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	var lt liveTarget
	next := func(id string) *http.Client {
		t.Helper()
		url, c, err := lt.clientFor(id, "8443", cert)
		if err != nil {
			t.Fatal(err)
		}
		if url != "https://127.0.0.1:8443" {
			t.Fatalf("url %q", url)
		}
		lt.url, lt.client = url, c
		return c
	}
	c1 := next("r1")
	if c := next("r1"); c != c1 {
		t.Fatal("a new client for the same revision and certificate")
	}
	write("renewed")
	c2 := next("r1")
	if c2 == c1 {
		t.Fatal("the same client after the certificate changed")
	}
	if c := next("r2"); c == c2 {
		t.Fatal("the same client for another revision")
	}
}

// TestLiveTargetSocketClient: the client for a revision's agent socket
// speaks plain HTTP over that socket (a real server on it answers), is kept
// while the revision and path stay, and a dial that fails (the revision
// drained: its socket is gone) makes the next call look the live revision
// up again at once instead of two seconds later.
func TestLiveTargetSocketClient(t *testing.T) {
	a := &agentRuntime{dir: t.TempDir()}
	path, err := a.revisionSocket("r1")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the sockets' folder: %v %v", fi, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Authorization"))
	}))
	srv.Listener = ln
	srv.Start()
	lt := liveTarget{a: a, token: "tok"}
	url, c := lt.socketClient("r1", path)
	lt.url, lt.client, lt.at = url, c, time.Now()
	req, _ := http.NewRequest(http.MethodPost, url+"/predict", nil)
	req.Header.Set("Authorization", "Bearer tok")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "/predict Bearer tok" {
		t.Fatalf("answer %q", b)
	}
	if _, c2 := lt.socketClient("r1", path); c2 != c {
		t.Fatal("a new client for the same revision and socket")
	}
	srv.Close() // the revision drained: its socket is closed and unlinked
	c.CloseIdleConnections()
	if _, err := c.Get(url + "/predict"); err == nil {
		t.Fatal("a request reached a closed socket")
	}
	lt.mu.Lock()
	at := lt.at
	lt.mu.Unlock()
	if !at.IsZero() {
		t.Fatal("a failed dial left the resolved revision cached")
	}
	other, err := a.revisionSocket("r2")
	if err != nil || other == path {
		t.Fatalf("another revision's socket %q (%v)", other, err)
	}
	if _, c3 := lt.socketClient("r2", other); c3 == c {
		t.Fatal("the same client for another revision")
	}
}
