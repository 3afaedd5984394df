package actdef

import "github.com/algocloud/algocloud/activities/compute"

// DNSInput asks for the address record of a deployment's endpoint.
type DNSInput struct {
	DeploymentID string         `json:"deployment_id"`
	APIName      string         `json:"api_name"`
	Server       compute.Server `json:"server"`
}

// DNSRecord is an endpoint's address record; the zero value means the
// platform manages no DNS.
type DNSRecord struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}
