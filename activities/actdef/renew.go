package actdef

import "time"

// ListCertificatesInput names where deployments' states are read: the
// workflow ID prefix of deployments and their state query (the workflows
// package owns both names).
type ListCertificatesInput struct {
	WorkflowIDPrefix string `json:"workflow_id_prefix"`
	Query            string `json:"query"`
}

// CertStatus is one live deployment's certificate and whether it is due
// for renewal.
type CertStatus struct {
	DeploymentID string    `json:"deployment_id"`
	Names        []string  `json:"names,omitempty"`
	NotAfter     time.Time `json:"not_after"`
	RenewAt      time.Time `json:"renew_at"`
	Due          bool      `json:"due"`
	// Pending: the certificate on disk is newer than the state's, as when
	// a renewal's reload failed; it is due at once.
	Pending bool `json:"pending,omitempty"`
	// Error says why the certificate could not be checked (the deployment
	// is then left alone until the next run).
	Error string `json:"error,omitempty"`
}

// ReloadInput has the live endpoint take up its renewed certificate.
type ReloadInput struct {
	// Service is what the endpoint serves, with the renewed certificate.
	Service ServiceInput `json:"service"`
	// Endpoint is the live endpoint's URL (https://host:port).
	Endpoint string `json:"endpoint"`
	// AgentFetched: the server's agent has already fetched the renewed
	// certificate (a serve of the serving revision with the certificate's
	// Fetch, on a remote server with an agent), so the serving revision
	// reloads it at its next handshake: ReloadCertificate only waits to see
	// it served, and never restarts the endpoint.
	AgentFetched bool `json:"agent_fetched,omitempty"`
}

// CertReload says how the live endpoint took up a renewed certificate.
type CertReload struct {
	// Service is the live endpoint afterwards.
	Service ServiceInfo `json:"service"`
	// InPlace: the running server reloaded the files without a restart
	// (local provider; EC2 instances with the certificate pick-up timer);
	// false: the service was restarted with a republished bundle (EC2
	// instances launched without the timer, or that did not pick the
	// certificate up in time).
	InPlace bool `json:"in_place"`
	// Serial (hex) and NotAfter of the certificate the endpoint now serves.
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}
