package platform

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/predictions"
)

// predictionService is the API's async predictions service.
func (p *Platform) predictionService() *predictions.Service {
	o := p.opts
	return &predictions.Service{
		Store: p.Store, Blobs: p.Blobs, Temporal: p.Client,
		Retention: o.PredictionRetention, MaxRunning: o.MaxRunningPredictions, PredictTimeout: o.PredictTimeout,
		Log: o.Logger.With("component", "predictions"),
	}
}

// predictionActivities are the worker's Prediction activities: endpoints are
// called with the platform caller token (derived from the credentials key)
// and verified with the local CA's root, or the system's roots with ACME.
func (p *Platform) predictionActivities() *predictions.Activities {
	var roots *x509.CertPool
	if p.opts.Cloud.Certs != CertsACME {
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(p.CA.RootPEM())
	}
	return &predictions.Activities{Store: p.Store, Blobs: p.Blobs, CredentialsKey: p.credKey, RootCAs: roots, APIBaseURL: p.APIURL}
}

// startPredictionSweep runs the retention sweep in the worker until Stop.
func (p *Platform) startPredictionSweep() {
	every := p.opts.PredictionSweepEvery
	if every <= 0 {
		every = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopSweep = cancel
	go p.predictionService().RunSweeper(ctx, every)
	go p.sweepBatchS3(ctx, every)
}

// urlPolicy is what image URL inputs may reach: public addresses, or all
// with --allow-private-urls (the endpoints' own policy).
func (p *Platform) urlPolicy() netpolicy.Policy {
	var pol netpolicy.Policy
	if p.opts.AllowPrivateURLs {
		pol.Allow = netpolicy.AllClasses
	}
	return pol
}
