package platform

import (
	"crypto/x509"

	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/workflows"
)

// batchService is the API's side of batch jobs.
func (p *Platform) batchService() *batch.Service {
	return &batch.Service{
		Store: p.Store, Blobs: p.Blobs, Temporal: p.Client, TaskQueue: workflows.TaskQueue,
		URLPolicy: p.urlPolicy(), MaxActive: p.opts.MaxActiveBatches,
	}
}

// batchActivities are the worker's side (URL items under urlPolicy, the
// same policy as image URL inputs): they call endpoints with the
// platform caller token, verifying them with the local CA's root unless
// endpoints have publicly trusted certificates.
func (p *Platform) batchActivities() *batch.Activities {
	var roots *x509.CertPool
	if p.opts.Cloud.Certs != CertsACME {
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(p.CA.RootPEM())
	}
	key := p.credKey
	return &batch.Activities{
		Store: p.Store, Blobs: p.Blobs,
		Endpoint: &batch.HTTPEndpoint{
			Algorithms: p.Store,
			Token:      func(deploymentID string) string { return call.PlatformToken(key, deploymentID) },
			Client:     batch.NewHTTPClient(roots, p.opts.PredictTimeout),
		},
		URLs:       batch.NewURLFetcher(p.urlPolicy(), 0),
		Log:        p.log.With("component", "batch"),
		APIBaseURL: p.APIURL,
	}
}
