package batch

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/store"
)

// Temporal is what the Service needs of a Temporal client; client.Client
// implements it.
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	CancelWorkflow(ctx context.Context, workflowID, runID string) error
}

// Service creates, reads and cancels batches for the API. Safe for
// concurrent use once built.
type Service struct {
	Store     Store
	Blobs     blobs.Store
	Temporal  Temporal
	TaskQueue string
	Limits    Limits
	// MaxActive is how many queued or running batches a user may have; 0
	// is DefaultMaxActive.
	MaxActive int
	// URLPolicy decides which URL items are accepted (their hosts are
	// resolved and checked at create; the worker checks again when it
	// dials). Its zero value allows public addresses only.
	URLPolicy netpolicy.Policy
	// S3 lists an S3 input prefix and checks an output prefix at create
	// (package batchs3); nil refuses S3 batches.
	S3 S3
	// CredentialsKey seals the user's S3 credentials into the batch's row
	// (the platform key, as for webhook secrets); the worker opens them.
	CredentialsKey []byte
	// FirstChunk, when set, issues an archive batch's first chunk on its
	// deployment's server agent while the workflow starts (firstchunk.go);
	// nil leaves it to the workflow.
	FirstChunk FirstChunk
	// Log gets what goes wrong on the way that the request does not answer
	// for (the first chunk not issued early); nil logs nothing.
	Log *slog.Logger
}

// DefaultMaxActive bounds a user's queued and running batches.
const DefaultMaxActive = 4

// MaxConcurrency bounds a batch's concurrency whatever the request says.
const MaxConcurrency = 64

// InputError is a batch request the Service refuses: Field names what is
// wrong (archive, urls[3], concurrency); TooLarge makes it a 413.
type InputError struct {
	Field    string
	Member   string // the archive member, when one is at fault
	Msg      string
	TooLarge bool
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// ErrTooManyJobs is a user at MaxActive queued or running batches.
var ErrTooManyJobs = errors.New("too many batches queued or running")

// Request is a batch to create: one of Archive, URLs or InputS3, and
// optionally OutputS3.
type Request struct {
	Algorithm store.Algorithm
	OwnerID   string
	// Archive is the uploaded zip/tar, on the API's disk (zip needs
	// random access); Service reads it and puts each file in the blob store.
	Archive *os.File
	URLs    []string
	// InputS3 is a prefix whose objects are the items (the user's own
	// credentials); OutputS3 a prefix the outputs are written to instead of
	// the blob store.
	InputS3, OutputS3 *S3Location
	// Concurrency is the batch's bound on requests in flight; 0 is the
	// endpoint's threads × 2.
	Concurrency int
	// Webhook receives the batch's events (Events), those WebhookEvents
	// names or all when it is empty. The caller checked both (the URL
	// policy, the event names): the Service passes them to the workflow.
	Webhook       string
	WebhookEvents []string
}

// NewID returns a new batch ID.
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "bat_" + hex.EncodeToString(b[:])
}

// Create checks the request, stores the batch and its items (an archive's
// files go to the blob store) and starts its workflow.
func (s *Service) Create(ctx context.Context, r Request) (store.Batch, error) {
	if r.Concurrency < 0 || r.Concurrency > MaxConcurrency {
		return store.Batch{}, &InputError{Field: "concurrency", Msg: fmt.Sprintf("must be between 1 and %d", MaxConcurrency)}
	}
	if r.Concurrency == 0 {
		r.Concurrency = defaultConcurrency(r.Algorithm.Spec)
	}
	maxActive := s.MaxActive
	if maxActive <= 0 {
		maxActive = DefaultMaxActive
	}
	if n, err := s.Store.CountActiveBatches(ctx, r.OwnerID); err != nil {
		return store.Batch{}, err
	} else if n >= maxActive {
		return store.Batch{}, fmt.Errorf("%w: %d of %d", ErrTooManyJobs, n, maxActive)
	}
	lim := s.Limits.withDefaults()
	b := store.Batch{ID: NewID(), AlgorithmID: r.Algorithm.ID, OwnerID: r.OwnerID, Concurrency: r.Concurrency}
	var spec s3Spec
	if r.OutputS3 != nil {
		out, err := s.checkOutputS3(ctx, *r.OutputS3)
		if err != nil {
			return b, err
		}
		spec.Output, b.OutputURI = &out, out.URI
	}
	var items []store.BatchItem
	var err error
	switch {
	case r.Archive != nil && r.URLs != nil, r.Archive != nil && r.InputS3 != nil:
		return b, &InputError{Field: "archive", Msg: "give one of an archive, urls or input.s3"}
	case r.URLs != nil && r.InputS3 != nil:
		return b, &InputError{Field: "urls", Msg: "give one of urls or input.s3"}
	case r.InputS3 != nil:
		b.Source = "s3"
		var in S3Location
		items, in, err = s.listS3(ctx, *r.InputS3, lim)
		spec.Input = &in
	case r.Archive != nil:
		b.Source = "archive"
		items, err = s.stageArchive(ctx, b.ID, r.Archive, lim)
	case r.URLs != nil:
		b.Source = "urls"
		items, err = s.checkURLs(ctx, r.URLs, lim)
	default:
		return b, &InputError{Field: "archive", Msg: "give an archive (multipart), urls or input.s3 (JSON)"}
	}
	if err == nil && len(items) == 0 {
		field := b.Source
		if field == "s3" {
			field = "input.s3"
		}
		err = &InputError{Field: field, Msg: "holds no inputs"}
	}
	if err == nil && (spec.Input != nil || spec.Output != nil) {
		// The credentials go into the row sealed, nowhere else: not in the
		// workflow's input, not in a log.
		b.S3Sealed, err = sealS3(s.CredentialsKey, b.ID, spec)
	}
	if err != nil {
		s.dropBlobs(b.ID)
		return b, err
	}
	if err := s.Store.CreateBatch(ctx, b, items); err != nil {
		s.dropBlobs(b.ID)
		return b, err
	}
	// The first chunk's command goes to the deployment's agent while the
	// workflow starts (firstchunk.go): its activity finds it issued.
	b.Total = len(items)
	var first sync.WaitGroup
	if s.FirstChunk != nil && b.Source == "archive" { // staged inputs only: URL and S3 items are the worker's to fetch
		in := firstChunk(b.ID, r.Algorithm.ID, len(items), r.Concurrency)
		first.Go(func() {
			if _, err := s.FirstChunk.StartFirstChunk(context.WithoutCancel(ctx), in, items[in.From:in.To]); err != nil && s.Log != nil {
				s.Log.Warn("the batch's first chunk was not issued early; its workflow issues it", "batch", b.ID, "error", err)
			}
		})
	}
	// EnableEagerStart: where a worker shares this client (algocloud dev),
	// the first workflow task comes back with the start instead of through
	// the server's matching, which on the loaded machine was a sizeable part
	// of the 330 ms between created_at and started_at; elsewhere the server
	// starts it the usual way. The platform uses no worker versioning, which
	// eager start would not respect.
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowID(b.ID), TaskQueue: s.TaskQueue, EnableEagerStart: true},
		WorkflowName, Input{BatchID: b.ID, DeploymentID: r.Algorithm.ID, Total: len(items), Concurrency: r.Concurrency,
			ChunkSize: DefaultChunkSize, Webhook: r.Webhook, WebhookEvents: r.WebhookEvents})
	first.Wait()
	if err != nil {
		_, _ = s.Store.SetBatchStatus(context.WithoutCancel(ctx), b.ID, store.BatchFailed, "could not start: "+err.Error())
		_ = s.Store.ClearBatchS3(context.WithoutCancel(ctx), b.ID, "")
		if s.FirstChunk != nil {
			_ = s.FirstChunk.EndFirstChunk(context.WithoutCancel(ctx), b)
		}
		return b, fmt.Errorf("start batch workflow: %w", err)
	}
	return s.Store.BatchByID(ctx, b.ID)
}

// defaultConcurrency is the endpoint's threads × 2: every Python worker busy
// with one request queued behind it, so none idles between requests.
func defaultConcurrency(spec json.RawMessage) int {
	var sp struct {
		Threads int `json:"threads"`
	}
	_ = json.Unmarshal(spec, &sp)
	return min(max(sp.Threads, 1)*2, MaxConcurrency)
}

// stageArchive puts the archive's files in the blob store as items: small
// ones packed back to back into pack blobs (inputPack), each item's input a
// range of its pack, large ones one blob each.
func (s *Service) stageArchive(ctx context.Context, batchID string, f *os.File, lim Limits) ([]store.BatchItem, error) {
	var items []store.BatchItem
	p := &inputPacker{ctx: ctx, blobs: s.Blobs, batchID: batchID}
	err := ReadArchive(f, lim, func(m Member) error {
		idx := len(items)
		input, err := p.add(idx, m.R)
		if err != nil {
			var me *MemberError
			if errors.As(err, &me) || errors.Is(err, ErrNotArchive) {
				return err
			}
			return fmt.Errorf("put archive member %d: %w", idx, err)
		}
		items = append(items, store.BatchItem{Index: idx, Name: m.Name, Input: input})
		return nil
	})
	if err == nil {
		if err = p.flush(); err != nil {
			err = fmt.Errorf("put the archive's last input pack: %w", err)
		}
	}
	var me *MemberError
	switch {
	case errors.As(err, &me):
		return nil, &InputError{Field: "archive", Member: me.Member, Msg: me.Error(), TooLarge: me.TooLarge}
	case errors.Is(err, ErrNotArchive):
		return nil, &InputError{Field: "archive", Msg: err.Error()}
	}
	return items, err
}

// checkURLs accepts absolute http(s) URLs whose hosts resolve to addresses
// the policy allows; the first other one is refused, naming its index.
func (s *Service) checkURLs(ctx context.Context, urls []string, lim Limits) ([]store.BatchItem, error) {
	if len(urls) > lim.MaxItems {
		return nil, &InputError{Field: "urls", Msg: fmt.Sprintf("has %d URLs; a batch may have %d", len(urls), lim.MaxItems), TooLarge: true}
	}
	d := &netpolicy.Dialer{Policy: s.URLPolicy}
	items := make([]store.BatchItem, 0, len(urls))
	for i, raw := range urls {
		field := fmt.Sprintf("urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || len(raw) > 2048 {
			return nil, &InputError{Field: field, Msg: "must be an absolute http:// or https:// URL of at most 2048 bytes"}
		}
		if u.User != nil {
			return nil, &InputError{Field: field, Msg: "must not carry a user name or password"}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = d.Resolve(rctx, u.Hostname())
		cancel()
		if netpolicy.IsForbidden(err) {
			return nil, &InputError{Field: field, Msg: fmt.Sprintf("%s is refused by the URL policy: %v", u.Redacted(), err)}
		}
		if err != nil {
			return nil, &InputError{Field: field, Msg: fmt.Sprintf("the host of %s does not resolve", u.Redacted())}
		}
		items = append(items, store.BatchItem{Index: i, Name: u.Redacted(), Input: u.String()})
	}
	return items, nil
}

// listS3 lists an input prefix with the user's credentials: one item per
// object (folders skipped), named by its key after the prefix. What S3
// refuses (a missing bucket, access denied, a wrong region) is a 400
// naming input.s3 with S3's reason; more objects than a batch may have, a
// 413.
func (s *Service) listS3(ctx context.Context, loc S3Location, lim Limits) ([]store.BatchItem, S3Location, error) {
	const field = "input.s3"
	loc, err := s.checkS3(ctx, field, loc)
	if err != nil {
		return nil, loc, err
	}
	objs, more, err := s.S3.List(ctx, loc, lim.MaxItems)
	if err != nil {
		return nil, loc, s3InputError(field, "list", err)
	}
	if more {
		return nil, loc, &InputError{Field: field, Msg: fmt.Sprintf("holds more than %d objects; a batch may have %d", lim.MaxItems, lim.MaxItems), TooLarge: true}
	}
	_, prefix := loc.BucketPrefix()
	items := make([]store.BatchItem, 0, len(objs))
	for i, o := range objs {
		items = append(items, store.BatchItem{Index: i, Name: strings.TrimPrefix(o.Key, prefix), Input: s3ItemPrefix + o.Key})
	}
	return items, loc, nil
}

// checkOutputS3 checks an output prefix with one listing: a missing
// bucket, wrong credentials or region are a 400 naming output.s3 now
// rather than every item failing later. (That S3 lets these credentials
// write is known only at the first write: an item then fails with S3's
// refusal.)
func (s *Service) checkOutputS3(ctx context.Context, loc S3Location) (S3Location, error) {
	const field = "output.s3"
	loc, err := s.checkS3(ctx, field, loc)
	if err != nil {
		return loc, err
	}
	if _, _, err := s.S3.List(ctx, loc, 1); err != nil {
		return loc, s3InputError(field, "list", err)
	}
	return loc, nil
}

func (s *Service) checkS3(ctx context.Context, field string, loc S3Location) (S3Location, error) {
	if s.S3 == nil || len(s.CredentialsKey) == 0 {
		return loc, &InputError{Field: field, Msg: "this server runs no S3 batches"}
	}
	return loc.Check(ctx, field, s.URLPolicy)
}

// s3InputError is a 400 naming field with S3's reason for refusing op; an
// error that is not S3's (the request ended) stays as it is.
func s3InputError(field, op string, err error) error {
	var se *S3Error
	if !errors.As(err, &se) {
		return fmt.Errorf("%s %s: %w", op, field, err)
	}
	return &InputError{Field: field, Msg: fmt.Sprintf("S3 refused to %s the prefix: %s: %s", op, se.Code, se.Msg)}
}

// dropBlobs removes a batch's blobs; it runs when the request may be over.
func (s *Service) dropBlobs(batchID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = s.Blobs.Delete(ctx, BlobPrefix(batchID))
}

// Cancel stops a batch: the store says canceled at once (its running chunk
// sees that within its poll and abandons the items in flight), then the
// workflow is cancelled. Canceling an ended batch changes nothing.
func (s *Service) Cancel(ctx context.Context, b store.Batch) (store.Batch, error) {
	if _, err := s.Store.SetBatchStatus(ctx, b.ID, store.BatchCanceled, ""); err != nil {
		return b, err
	}
	if s.FirstChunk != nil {
		// A first chunk issued by Create runs even if the workflow is
		// canceled before its activity watches it.
		if err := s.FirstChunk.EndFirstChunk(ctx, b); err != nil {
			return b, fmt.Errorf("end the batch's first chunk: %w", err)
		}
	}
	err := s.Temporal.CancelWorkflow(ctx, WorkflowID(b.ID), "")
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return b, fmt.Errorf("cancel batch workflow: %w", err)
	}
	return s.Store.BatchByID(ctx, b.ID)
}

// WriteOutputZip writes a zip of every succeeded item's output, named after
// its input with the output's extension (the index is added to names that
// would repeat), built from the blob store as it is read.
func (s *Service) WriteOutputZip(ctx context.Context, w io.Writer, batchID string) error {
	zw := zip.NewWriter(w)
	seen := map[string]bool{}
	for from := 0; ; {
		items, err := s.Store.BatchItems(ctx, batchID, store.ItemSucceeded, from, 500)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			from = it.Index + 1
			name := OutputName(it)
			if seen[name] {
				name = fmt.Sprintf("%d-%s", it.Index, name)
			}
			seen[name] = true
			if err := s.copyOutput(ctx, zw, name, it); err != nil {
				return err
			}
		}
	}
	return zw.Close()
}

func (s *Service) copyOutput(ctx context.Context, zw *zip.Writer, name string, it store.BatchItem) error {
	rc, err := OpenOutput(ctx, s.Blobs, it.OutputKey)
	if err != nil {
		return fmt.Errorf("get output of item %d: %w", it.Index, err)
	}
	defer rc.Close()
	method := zip.Deflate
	if strings.HasPrefix(it.ContentType, "image/png") || strings.HasPrefix(it.ContentType, "image/jpeg") {
		method = zip.Store // compressed already
	}
	zf, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: time.Now()})
	if err != nil {
		return fmt.Errorf("zip output of item %d: %w", it.Index, err)
	}
	if _, err := io.Copy(zf, rc); err != nil {
		return fmt.Errorf("zip output of item %d: %w", it.Index, err)
	}
	return nil
}

// OutputName is an item's output's name in the output zip: its input's
// path with the extension of the output's content type.
func OutputName(it store.BatchItem) string {
	base := it.Name
	if u, err := url.Parse(it.Name); err == nil && u.Scheme != "" {
		base = path.Base(u.Path)
		if base == "/" || base == "." || base == "" {
			base = "output"
		}
	}
	base = strings.TrimSuffix(base, path.Ext(base))
	ext := ".bin"
	mt, _, _ := mime.ParseMediaType(it.ContentType)
	switch mt {
	case "image/png":
		ext = ".png"
	case "image/jpeg":
		ext = ".jpg"
	case "application/json":
		ext = ".json"
	case "application/x-npy", "application/octet-stream":
		if mt == "application/x-npy" {
			ext = ".npy"
		}
	}
	return base + ext
}

// ErrorLine is one line of a batch's error report.
type ErrorLine struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error"`
}

// WriteErrors writes the batch's failed items as JSON lines, in index order.
func (s *Service) WriteErrors(ctx context.Context, w io.Writer, batchID string) error {
	enc := json.NewEncoder(w)
	for from := 0; ; {
		items, err := s.Store.BatchItems(ctx, batchID, store.ItemFailed, from, 500)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		for _, it := range items {
			from = it.Index + 1
			if err := enc.Encode(ErrorLine{Index: it.Index, Name: it.Name, Status: it.Status, HTTPStatus: it.HTTPStatus, Error: it.Error}); err != nil {
				return fmt.Errorf("write error report: %w", err)
			}
		}
	}
}

// Progress is a batch's progress as GET shows it.
type Progress struct {
	Done, Failed, Left int
	// Rate is items finished per second since the batch started.
	Rate float64
	// ETASeconds is Left / Rate, or -1 while unknown.
	ETASeconds float64
}

// ProgressOf computes a batch's progress at now.
func ProgressOf(b store.Batch, now time.Time) Progress {
	p := Progress{Done: b.Done, Failed: b.Failed, Left: b.Total - b.Done - b.Failed, ETASeconds: -1}
	if b.StartedAt == nil {
		return p
	}
	end := now
	if b.CompletedAt != nil {
		end = *b.CompletedAt
	}
	if el := end.Sub(*b.StartedAt).Seconds(); el > 0 {
		p.Rate = float64(b.Done+b.Failed) / el
	}
	if p.Left == 0 || b.Finished() {
		p.ETASeconds = 0
	} else if p.Rate > 0 {
		p.ETASeconds = float64(p.Left) / p.Rate
	}
	return p
}

// Get returns algorithmID's batch id.
func (s *Service) Get(ctx context.Context, algorithmID, id string) (store.Batch, error) {
	return s.Store.GetBatch(ctx, algorithmID, id)
}

// cursor is List's opaque page token: the last batch of a page.
type cursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"i"`
}

// ErrBadCursor is a cursor List did not make.
var ErrBadCursor = errors.New("the cursor is not one a list answer gave")

// List returns a page of algorithmID's batches, newest first, and the
// cursor of the next page ("" at the end). cur is a cursor an earlier page
// gave, or empty; before (older API clients' ?before=) starts at the first
// batch created strictly before it when cur is empty.
func (s *Service) List(ctx context.Context, algorithmID, cur string, before time.Time, limit int) ([]store.Batch, string, error) {
	page := store.BatchPage{CreatedAt: before}
	if cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		var c cursor
		if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" || c.T.IsZero() {
			return nil, "", ErrBadCursor
		}
		page = store.BatchPage{CreatedAt: c.T, ID: c.ID}
	}
	bs, err := s.Store.ListBatches(ctx, algorithmID, page, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(bs) > limit {
		bs = bs[:limit]
		last := bs[len(bs)-1]
		b, _ := json.Marshal(cursor{T: last.CreatedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return bs, next, nil
}
