package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"
)

// Tags on the instances, volumes and security groups this provider makes.
const (
	TagDeployment = "algocloud:deployment"
	TagOwner      = "algocloud:owner"
	TagAPIName    = "algocloud:api-name"
	// TagManagedBy (value "algocloud") marks what this provider may stop,
	// terminate and delete; nothing without it is touched.
	TagManagedBy = "algocloud:managed-by"
	managedBy    = "algocloud"
	// TagCertPickup (value "1") marks an instance whose user data installs
	// the certificate pick-up timer (HasCertPickup): a renewal reaches it
	// in place. Instances without it (launched before it existed, or with
	// other user data) are restarted to take a renewed certificate.
	TagCertPickup = "algocloud:cert-pickup"
)

// GroupName is the name of the security group of a deployment.
func GroupName(deploymentID string) string { return "algocloud-" + deploymentID }

// maxUserData is EC2's limit on user data before base64.
const maxUserData = 16 << 10

var deploymentIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Provision returns the deployment's running instance, launching it first
// when there is none: validate the request, find the instance by tag, else
// resolve the image, ensure the security group and RunInstances with a
// ClientToken derived from the deployment, then wait until it runs and has
// an address. A stopped instance is started. Invalid requests, refused images
// and exhausted quotas are *compute.PermanentError, and leave nothing behind.
func (p *Provider) Provision(ctx context.Context, s compute.ServerSpec) (compute.Server, error) {
	region, err := p.validate(s)
	if err != nil {
		return compute.Server{}, err
	}
	// One Provision per deployment at a time in this process; across
	// processes the ClientToken keeps RunInstances to one instance.
	defer p.locks.lock(s.DeploymentID)()
	c := p.client(region)
	live, dead, err := lookup(ctx, c, s.DeploymentID)
	if err != nil {
		return compute.Server{}, fmt.Errorf("provision %s: %w", s.DeploymentID, err)
	}
	id := ""
	if live != nil {
		id = aws.ToString(live.InstanceId)
	} else if id, err = p.launch(ctx, c, region, s, dead); err != nil {
		return compute.Server{}, err
	}
	p.remember(id, region)
	inst, err := p.waitRunning(ctx, region, id, true)
	if errors.Is(err, compute.ErrNotFound) {
		// Terminated while starting (capacity, a failed volume): a retry
		// launches a new one under a new ClientToken (see clientToken).
		return compute.Server{}, fmt.Errorf("provision %s: instance %s ended before it ran: %v", s.DeploymentID, id, err)
	}
	if err != nil {
		return compute.Server{}, fmt.Errorf("provision %s: wait for instance %s: %w", s.DeploymentID, id, err)
	}
	srv := compute.Server{Provider: ProviderName, ID: id, Host: host(inst), Port: p.opts.Port}
	if v, _ := tag(inst.Tags, TagAgent); v == "1" {
		srv.Agent, srv.AgentID = true, AgentID(s.DeploymentID)
	}
	if p.opts.StagingDir != "" {
		srv.Workdir = filepath.Join(p.opts.StagingDir, s.DeploymentID)
		if err := os.MkdirAll(srv.Workdir, 0o700); err != nil {
			return compute.Server{}, fmt.Errorf("provision %s: %w", s.DeploymentID, err)
		}
	}
	return srv, nil
}

// validate checks what needs no API call and returns the region to use.
func (p *Provider) validate(s compute.ServerSpec) (string, error) {
	if !deploymentIDRe.MatchString(s.DeploymentID) {
		return "", permanent("provision: deployment id %q is not valid (letters, digits, '.', '_', '-')", s.DeploymentID)
	}
	region := s.Region
	if region == "" {
		region = p.opts.Region
	}
	if _, ok := spec.Regions[region]; !ok {
		return "", permanent("provision: region %q is not offered; choose one of %s", region, strings.Join(sortedKeys(spec.Regions), ", "))
	}
	kind := s.Compute
	if kind == "" {
		kind = spec.CPU
	}
	offered, ok := spec.InstanceTypes[kind]
	if !ok {
		return "", permanent("provision: compute %q is not offered; choose cpu or gpu", kind)
	}
	if !slices.Contains(offered, s.InstanceType) {
		for other, types := range spec.InstanceTypes {
			if other != kind && slices.Contains(types, s.InstanceType) {
				return "", permanent("provision: %s is a %s instance type, but the deployment asks for a %s server; choose one of %s",
					s.InstanceType, strings.ToUpper(other), strings.ToUpper(kind), strings.Join(offered, ", "))
			}
		}
		return "", permanent("provision: instance type %q is not offered for %s servers; choose one of %s", s.InstanceType, kind, strings.Join(offered, ", "))
	}
	return region, nil
}

// lookup finds the deployment's instances by tag: the live one (pending,
// running, stopping or stopped; the oldest if a bug ever made two) and the
// IDs of those terminated or shutting down.
func lookup(ctx context.Context, c *ec2.Client, deploymentID string) (*types.Instance, []string, error) {
	all, err := taggedInstances(ctx, c, deploymentID, "find instance by tag")
	if err != nil {
		return nil, nil, err
	}
	var live *types.Instance
	var dead []string
	for i := range all {
		inst := all[i]
		switch {
		case gone(inst):
			dead = append(dead, aws.ToString(inst.InstanceId))
		case live == nil || aws.ToTime(inst.LaunchTime).Before(aws.ToTime(live.LaunchTime)):
			live = &inst
		}
	}
	return live, dead, nil
}

// taggedInstances lists every instance, in any state, that carries both the
// deployment's tag and the managed-by tag; op names the lookup in errors.
func taggedInstances(ctx context.Context, c *ec2.Client, deploymentID, op string) ([]types.Instance, error) {
	var all []types.Instance
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagDeployment), Values: []string{deploymentID}},
			{Name: aws.String("tag:" + TagManagedBy), Values: []string{managedBy}},
		},
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, classify(op, err)
		}
		for _, r := range out.Reservations {
			all = append(all, r.Instances...)
		}
	}
	return all, nil
}

// clientToken derives RunInstances' idempotency token from the deployment
// and the instances of it that are already dead: a retry (even after the
// worker died waiting for the answer) sends the same token and gets the same
// instance, while a deployment whose instance was terminated gets a new one
// instead of EC2 answering with the dead one.
func clientToken(deploymentID string, dead []string) string {
	dead = slices.Clone(dead)
	sort.Strings(dead)
	sum := sha256.Sum256([]byte(deploymentID + "\x00" + strings.Join(dead, ",")))
	return "algocloud-" + hex.EncodeToString(sum[:])[:40] // EC2 allows 64 characters
}

// launch resolves the image, ensures the security group and runs the
// instance; it returns the instance ID.
func (p *Provider) launch(ctx context.Context, c *ec2.Client, region string, s compute.ServerSpec, dead []string) (string, error) {
	if err := checkOffered(ctx, c, region, s.InstanceType); err != nil {
		return "", err
	}
	ami, err := p.resolveAMI(ctx, c, region, s)
	if err != nil {
		return "", err
	}
	token := clientToken(s.DeploymentID, dead)
	var userData string
	if s.Agent && p.opts.Agent != nil {
		userData, err = p.agentUserData(ctx, s, token)
	} else {
		userData, err = p.opts.UserData(s)
	}
	if err != nil {
		return "", fmt.Errorf("provision %s: user data: %w", s.DeploymentID, err)
	}
	if len(userData) > maxUserData {
		return "", permanent("provision %s: user data is %d bytes; EC2 takes at most %d", s.DeploymentID, len(userData), maxUserData)
	}
	group, err := p.securityGroup(ctx, c, s)
	if err != nil {
		return "", err
	}
	tags := resourceTags(s)
	instTags := tags
	if HasCertPickup(userData) {
		instTags = append(slices.Clone(tags), types.Tag{Key: aws.String(TagCertPickup), Value: aws.String("1")})
	}
	if s.Agent && p.opts.Agent != nil {
		instTags = append(slices.Clone(instTags), types.Tag{Key: aws.String(TagAgent), Value: aws.String("1")})
	}
	in := &ec2.RunInstancesInput{
		ImageId:          aws.String(ami),
		InstanceType:     types.InstanceType(s.InstanceType),
		MinCount:         aws.Int32(1),
		MaxCount:         aws.Int32(1),
		ClientToken:      aws.String(token),
		SecurityGroupIds: []string{group},
		UserData:         aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: instTags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
		// The algorithm's code runs on this machine: IMDSv2 only, with a
		// hop limit of 1 so no token answer reaches a container or network
		// namespace behind the host, and no IamInstanceProfile ever: the
		// instance holds no AWS credentials to steal. The unit's
		// IPAddressDeny (see unitHardening) also keeps the server and its
		// sandboxes (whose slirp4netns proxies from the host) off IMDS.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:              types.HttpTokensStateRequired,
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop,
	}
	if p.opts.SubnetID != "" {
		in.SubnetId = aws.String(p.opts.SubnetID)
	}
	out, err := c.RunInstances(ctx, in)
	if err != nil {
		err = classify(fmt.Sprintf("run %s instance for %s in %s", s.InstanceType, s.DeploymentID, region), err)
		var perm *compute.PermanentError
		if errors.As(err, &perm) {
			// Nothing runs in it: leave no group behind. When it cannot be
			// deleted now, fail retryably: the activity's next attempt
			// fails the same way and deletes it then (a permanent error
			// would end the step with the group left over).
			if derr := deleteGroup(ctx, c, group); derr != nil {
				p.log.Warn("delete security group after failed launch", "group", group, "error", derr)
				return "", fmt.Errorf("%w; and its security group %s could not be deleted yet: %w", perm.Err, group, classify("delete security group", derr))
			}
		}
		return "", err
	}
	if len(out.Instances) == 0 {
		return "", fmt.Errorf("provision %s: RunInstances returned no instance", s.DeploymentID)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	p.log.Info("instance launched", "deployment", s.DeploymentID, "instance", id, "type", s.InstanceType, "region", region, "image", ami)
	return id, nil
}

// resourceTags name the owner, deployment and API on what Provision makes.
func resourceTags(s compute.ServerSpec) []types.Tag {
	return []types.Tag{
		{Key: aws.String("Name"), Value: aws.String("algocloud-" + s.APIName)},
		{Key: aws.String(TagDeployment), Value: aws.String(s.DeploymentID)},
		{Key: aws.String(TagOwner), Value: aws.String(s.Owner)},
		{Key: aws.String(TagAPIName), Value: aws.String(s.APIName)},
		{Key: aws.String(TagManagedBy), Value: aws.String(managedBy)},
	}
}

// checkOffered refuses an instance type the region does not offer.
func checkOffered(ctx context.Context, c *ec2.Client, region, instanceType string) error {
	out, err := c.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeRegion,
		Filters:      []types.Filter{{Name: aws.String("instance-type"), Values: []string{instanceType}}},
	})
	if err != nil {
		return classify("check instance type "+instanceType, err)
	}
	if len(out.InstanceTypeOfferings) == 0 {
		return permanent("provision: instance type %s is not offered in %s; choose another region or type", instanceType, region)
	}
	return nil
}

// environment of a server. compute.ServerSpec does not carry the
// deployment's environment yet; every environment runs on the same images
// today, so this is the key the AMIs are looked up by.
func environment(compute.ServerSpec) string { return spec.EnvPython }

// resolveAMI picks the image for s (see Options.AMIs) and checks it exists.
func (p *Provider) resolveAMI(ctx context.Context, c *ec2.Client, region string, s compute.ServerSpec) (string, error) {
	env, kind := environment(s), s.Compute
	if kind == "" {
		kind = spec.CPU
	}
	var ref string
	for _, key := range []string{env + "/" + kind + "/" + region, env + "/" + region, env + "/" + kind, env} {
		if v, ok := p.opts.AMIs[key]; ok && v != "" {
			ref = v
			break
		}
	}
	if ref == "" {
		return "", permanent("provision: no machine image configured for %s %s servers in %s", env, kind, region)
	}
	in := &ec2.DescribeImagesInput{}
	if strings.HasPrefix(ref, "ami-") {
		in.ImageIds = []string{ref}
	} else {
		in.Owners = p.opts.AMIOwners
		in.Filters = []types.Filter{
			{Name: aws.String("name"), Values: []string{ref}},
			{Name: aws.String("state"), Values: []string{string(types.ImageStateAvailable)}},
		}
	}
	out, err := c.DescribeImages(ctx, in)
	if err != nil {
		return "", classify(fmt.Sprintf("find machine image %q in %s", ref, region), err)
	}
	var best *types.Image
	for i := range out.Images {
		img := &out.Images[i]
		if img.State != types.ImageStateAvailable {
			continue
		}
		if best == nil || newer(img, best) {
			best = img
		}
	}
	if best == nil {
		return "", permanent("provision: machine image %q is not available in %s", ref, region)
	}
	return aws.ToString(best.ImageId), nil
}

// newer orders images by creation time (RFC 3339, which sorts as text), then
// by name: image families put a date stamp at the end of their names.
func newer(a, b *types.Image) bool {
	ca, cb := aws.ToString(a.CreationDate), aws.ToString(b.CreationDate)
	if ca != cb {
		return ca > cb
	}
	return aws.ToString(a.Name) > aws.ToString(b.Name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
