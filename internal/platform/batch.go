package platform

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/predictions/batch/batchs3"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/workflows"
)

// batchService is the API's side of batch jobs. S3 prefixes are reached
// with the user's own credentials (sealed with the credentials key into the
// batch's row) under the URL policy of image URL inputs: endpoint_url on
// loopback or a private network needs --allow-private-urls.
//
// Where servers have agents, the service issues an archive batch's first
// chunk on the agent itself, right after the workflow's start
// (predictions/batch/firstchunk.go).
func (p *Platform) batchService() *batch.Service {
	s := &batch.Service{
		Store: p.Store, Blobs: p.Blobs, Temporal: p.Client, TaskQueue: workflows.TaskQueue,
		URLPolicy: p.urlPolicy(), MaxActive: p.opts.MaxActiveBatches, Limits: batch.Limits{MaxItems: p.opts.MaxBatchItems},
		S3: batchs3.New(p.urlPolicy()), CredentialsKey: p.credKey, Log: p.log.With("component", "batch"),
	}
	if p.Agents != nil {
		s.FirstChunk = p.batchActivities()
	}
	return s
}

// batchActivities are the worker's side (URL items and S3 prefixes under
// urlPolicy, the same policy as image URL inputs): they call endpoints
// with the platform caller token, verifying them with the local CA's root
// unless endpoints have publicly trusted certificates.
func (p *Platform) batchActivities() *batch.Activities {
	p.batchActsOnce.Do(func() { p.batchActs = p.newBatchActivities() })
	return p.batchActs
}

func (p *Platform) newBatchActivities() *batch.Activities {
	var roots *x509.CertPool
	if p.opts.Cloud.Certs != CertsACME {
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(p.CA.RootPEM())
	}
	key := p.credKey
	acts := &batch.Activities{
		Store: p.Store, Blobs: p.Blobs,
		Endpoint: &batch.HTTPEndpoint{
			Algorithms: p.Store,
			Token:      func(deploymentID string) string { return call.PlatformToken(key, deploymentID) },
			Client:     batch.NewHTTPClient(roots, p.opts.PredictTimeout),
		},
		URLs:           batch.NewURLFetcher(p.urlPolicy(), 0),
		S3:             batchs3.New(p.urlPolicy()),
		CredentialsKey: key,
		Log:            p.log.With("component", "batch"),
		APIBaseURL:     p.APIURL,
	}
	if p.Agents != nil { // chunks of deployments served by an agent run there
		acts.Agents = p.Agents
		acts.AgentSilence = p.opts.BatchAgentSilence
	}
	return acts
}

// batchS3Grace is how long after its end a batch may keep its S3
// credentials before the sweep removes them: the workflow's own removal
// (MarkBatch, after writing the manifest) comes well before.
const batchS3Grace = 10 * time.Minute

// sweepBatchS3 removes, every period until ctx ends, the S3 credentials
// of batches that ended more than batchS3Grace ago and still have them (a
// workflow that never ran, a worker lost at the wrong moment).
func (p *Platform) sweepBatchS3(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := p.Store.ClearEndedBatchesS3(ctx, time.Now().Add(-batchS3Grace)); err != nil && ctx.Err() == nil {
			p.log.Error("batch S3 credentials sweep", "error", err)
		} else if n > 0 {
			p.log.Info("batch S3 credentials sweep", "cleared", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
