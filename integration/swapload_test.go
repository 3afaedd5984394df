package integration

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// swapLoad is clients calling an endpoint in a loop through a revision
// swap: each answer is the old revision's (oldBody) or the new one's, and a
// client that saw the new one never sees the old one again (backToOld).
// The agent fault tests (local and EC2) use it to check the old revision
// serves until the new one takes over, with no failed request.
type swapLoad struct {
	// What the clients send, and the old revision's answer to it.
	hc                                          *http.Client
	endpoint, token                             string
	img, oldBody                                []byte
	stop                                        atomic.Bool
	wg                                          sync.WaitGroup
	failed, answeredOld, answeredNew, backToOld atomic.Int64
}

// startSwapLoad starts n clients posting img to endpoint's /predict with
// token through hc; wait stops them.
func startSwapLoad(t *testing.T, hc *http.Client, endpoint, token string, img, oldBody []byte, n int) *swapLoad {
	l := &swapLoad{hc: hc, endpoint: endpoint, token: token, img: img, oldBody: oldBody}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			seenNew := false
			for !l.stop.Load() {
				req, _ := http.NewRequest(http.MethodPost, endpoint+"/predict", bytes.NewReader(img))
				req.Header.Set("Content-Type", "image/png")
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := hc.Do(req)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(res.Body)
					res.Body.Close()
				}
				if err != nil || res.StatusCode != http.StatusOK {
					l.failed.Add(1)
					t.Logf("failed request: %v %v", err, statusOf(res))
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if bytes.Equal(body, oldBody) {
					l.answeredOld.Add(1)
					if seenNew {
						l.backToOld.Add(1)
					}
				} else {
					l.answeredNew.Add(1)
					seenNew = true
				}
			}
		}()
	}
	return l
}

// wait stops the clients and waits for them.
func (l *swapLoad) wait() {
	l.stop.Store(true)
	l.wg.Wait()
}
