package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/internal/retryafter"
	"github.com/algocloud/algocloud/store"
)

// s3Cache keeps each batch's opened S3 locations for a while, so a chunk
// reads and unseals them once, not once per item.
type s3Cache struct {
	mu sync.Mutex
	m  map[string]cachedSpec
}

type cachedSpec struct {
	spec s3Spec
	at   time.Time
}

// s3CacheFor is how long an opened spec is reused.
const s3CacheFor = time.Minute

// s3Of returns the batch's S3 locations (none for a batch without S3).
func (a *Activities) s3Of(ctx context.Context, batchID string) (s3Spec, error) {
	a.s3Cache.mu.Lock()
	c, ok := a.s3Cache.m[batchID]
	a.s3Cache.mu.Unlock()
	if ok && time.Since(c.at) < s3CacheFor {
		return c.spec, nil
	}
	box, err := a.Store.BatchS3Sealed(ctx, batchID)
	if err != nil {
		return s3Spec{}, err
	}
	var spec s3Spec
	if box != nil {
		if spec, err = openS3(a.CredentialsKey, batchID, box); err != nil {
			return s3Spec{}, err
		}
	}
	a.s3Cache.mu.Lock()
	defer a.s3Cache.mu.Unlock()
	if a.s3Cache.m == nil {
		a.s3Cache.m = map[string]cachedSpec{}
	}
	for id, c := range a.s3Cache.m { // a few batches at most: drop the stale
		if time.Since(c.at) >= s3CacheFor {
			delete(a.s3Cache.m, id)
		}
	}
	a.s3Cache.m[batchID] = cachedSpec{spec: spec, at: time.Now()}
	return spec, nil
}

func (a *Activities) forgetS3(batchID string) {
	a.s3Cache.mu.Lock()
	defer a.s3Cache.mu.Unlock()
	delete(a.s3Cache.m, batchID)
}

// s3Input reads an S3 item's object with the user's credentials, bounded
// like a URL item. What S3 refuses for good (access denied, a key gone, too
// large) fails the item with S3's reason; anything else is an error (the
// chunk is retried, the item with it).
func (a *Activities) s3Input(ctx context.Context, batchID string, it store.BatchItem) (body []byte, ct, fail string, err error) {
	spec, err := a.s3Of(ctx, batchID)
	if err != nil {
		return nil, "", "", err
	}
	if a.S3 == nil || spec.Input == nil {
		return nil, "", "the batch's S3 input credentials are gone (the batch ended) or this worker reads no S3", nil
	}
	maxBytes := a.MaxItemBytes
	if maxBytes <= 0 {
		maxBytes = DefaultLimits.MaxItemBytes
	}
	b, err := a.S3.Get(ctx, *spec.Input, strings.TrimPrefix(it.Input, s3ItemPrefix), maxBytes)
	if isPermanentS3(err) {
		return nil, "", "read the input from S3: " + err.Error(), nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("read input of item %d from S3: %w", it.Index, err)
	}
	return b, contentType(it.Name, b), "", nil
}

// storeOutput keeps a 2xx answer: in the blob store (for the output zip),
// or for a batch with an S3 output as <output prefix><name>.<ext>, the
// name OutputName gives (the same key whenever the item is done again, so
// a retried chunk overwrites, never adds). A refusal S3 repeats (access
// denied) fails the item with it; others are tried again a few times, then
// are an error (the chunk is retried).
func (a *Activities) storeOutput(ctx context.Context, batchID string, it store.BatchItem, resp Response) (key, fail string, err error) {
	spec, err := a.s3Of(ctx, batchID)
	if err != nil {
		return "", "", err
	}
	if spec.Output == nil {
		key := outputKey(batchID, it.Index)
		if err := a.Blobs.Put(ctx, key, bytes.NewReader(resp.Body), int64(len(resp.Body))); err != nil {
			return "", "", fmt.Errorf("put output of item %d: %w", it.Index, err)
		}
		return key, "", nil
	}
	if a.S3 == nil {
		return "", "this worker writes no S3 outputs", nil
	}
	bucket, prefix := spec.Output.BucketPrefix()
	key = prefix + OutputName(store.BatchItem{Name: it.Name, ContentType: resp.ContentType})
	if err := a.putS3(ctx, *spec.Output, key, resp.Body, resp.ContentType); err != nil {
		if isPermanentS3(err) {
			return "", "write the output to S3: " + err.Error(), nil
		}
		return "", "", fmt.Errorf("write output of item %d to S3: %w", it.Index, err)
	}
	return "s3://" + bucket + "/" + key, "", nil
}

// putS3 writes an object, trying a transient failure again (the SDK has
// retried already; this rides out a longer blip).
func (a *Activities) putS3(ctx context.Context, loc S3Location, key string, body []byte, ct string) error {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := a.S3.Put(ctx, loc, key, body, ct)
		if err == nil || isPermanentS3(err) || attempt == 4 || ctx.Err() != nil {
			return err
		}
		if err := retryafter.Sleep(ctx, backoff); err != nil {
			return err
		}
		backoff *= 2
	}
}

// Manifest is the manifest.json written beside a batch's S3 outputs when
// it ends: the batch's end state and every item with where its output is.
type Manifest struct {
	BatchID     string         `json:"batch_id"`
	Status      string         `json:"status"`
	Output      string         `json:"output"`
	Total       int            `json:"total"`
	Done        int            `json:"done"`
	Failed      int            `json:"failed"`
	CompletedAt *time.Time     `json:"completed_at"`
	Items       []ManifestItem `json:"items"`
}

// ManifestItem is one item of a Manifest: Output is its object's key
// (succeeded items), Error why it failed; items a cancel left are pending.
type ManifestItem struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Output     string `json:"output,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error,omitempty"`
}

// finishS3 ends a batch's S3 use: with an S3 output it writes
// errors.jsonl (the error report's lines) and manifest.json there, then it
// removes the sealed credentials from the store. A transient write failure
// is an error (MarkBatch is retried); a refusal is noted in the batch's
// error and the credentials are removed all the same.
func (a *Activities) finishS3(ctx context.Context, batchID string) error {
	defer a.forgetS3(batchID)
	box, err := a.Store.BatchS3Sealed(ctx, batchID)
	if err != nil || box == nil {
		return err
	}
	spec, err := openS3(a.CredentialsKey, batchID, box)
	if err != nil {
		return err
	}
	note := ""
	if spec.Output != nil && a.S3 != nil {
		if err := a.writeManifest(ctx, batchID, *spec.Output); isPermanentS3(err) {
			note = "could not write the output's manifest: " + err.Error()
		} else if err != nil {
			return err
		}
	}
	return a.Store.ClearBatchS3(ctx, batchID, note)
}

func (a *Activities) writeManifest(ctx context.Context, batchID string, out S3Location) error {
	b, err := a.Store.BatchByID(ctx, batchID)
	if err != nil {
		return err
	}
	m := Manifest{BatchID: b.ID, Status: b.Status, Output: out.URI, Total: b.Total, Done: b.Done, Failed: b.Failed,
		CompletedAt: b.CompletedAt, Items: []ManifestItem{}}
	var errs bytes.Buffer
	enc := json.NewEncoder(&errs)
	bucket, prefix := out.BucketPrefix()
	bucketURI := "s3://" + bucket + "/"
	for from := 0; ; {
		items, err := a.Store.BatchItems(ctx, batchID, "", from, 1000)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			from = it.Index + 1
			mi := ManifestItem{Index: it.Index, Name: it.Name, Status: it.Status, HTTPStatus: it.HTTPStatus, Error: it.Error}
			mi.Output = strings.TrimPrefix(it.OutputKey, bucketURI)
			m.Items = append(m.Items, mi)
			if it.Status == store.ItemFailed {
				if err := enc.Encode(ErrorLine{Index: it.Index, Name: it.Name, Status: it.Status, HTTPStatus: it.HTTPStatus, Error: it.Error}); err != nil {
					return fmt.Errorf("encode the error report: %w", err)
				}
			}
		}
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the manifest: %w", err)
	}
	if err := a.putS3(ctx, out, prefix+"errors.jsonl", errs.Bytes(), "application/x-ndjson"); err != nil {
		return err
	}
	if err := a.putS3(ctx, out, prefix+"manifest.json", mj, "application/json"); err != nil {
		return err
	}
	return nil
}
