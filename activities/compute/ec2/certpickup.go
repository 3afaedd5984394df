package ec2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
)

// CertPickup reports whether the server's instance picks up a renewed
// certificate in place (its user data installed certfetch.sh and its timer:
// the TagCertPickup tag set at launch). A server that is gone wraps
// compute.ErrNotFound.
func (p *Provider) CertPickup(ctx context.Context, s compute.Server) (bool, error) {
	_, inst, err := p.managed(ctx, s.ID)
	if err != nil {
		return false, fmt.Errorf("certificate pick-up of %s: %w", s.ID, err)
	}
	v, _ := tag(inst.Tags, TagCertPickup)
	return v == "1", nil
}

// ServedCertificate returns the leaf certificate (DER) the server's endpoint
// presents on a new TLS connection to its health URL (Options.HealthURL),
// verified as Start's health check verifies it (HealthClient's roots, the
// name <api-name>.<Domain> when Domain is set). The answer's status does not
// matter: only the handshake does.
func (p *Provider) ServedCertificate(ctx context.Context, s compute.Server) ([]byte, error) {
	_, inst, err := p.managed(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("served certificate of %s: %w", s.ID, err)
	}
	if st := state(inst); st != types.InstanceStateNameRunning {
		return nil, fmt.Errorf("served certificate of %s: instance is %s", s.ID, st)
	}
	srv := s
	srv.Host = host(inst)
	if srv.Port == 0 {
		srv.Port = p.opts.Port
	}
	client := p.healthClient(inst)
	// A new connection each time: a kept-alive one shows the certificate
	// of its own, older handshake.
	if t, ok := client.Transport.(*http.Transport); ok || client.Transport == nil {
		if !ok {
			t = http.DefaultTransport.(*http.Transport)
		}
		t = t.Clone()
		t.DisableKeepAlives = true
		c := *client
		c.Transport = t
		client = &c
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.opts.HealthURL(srv), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, errors.New("served certificate: the endpoint did not answer over TLS")
	}
	return resp.TLS.PeerCertificates[0].Raw, nil
}

var _ compute.CertPickupProvider = (*Provider)(nil)
