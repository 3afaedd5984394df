package ec2

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
)

var _ compute.Sweeper = (*Provider)(nil)

// Sweep removes what Provision made for a deployment without its Server:
// in every region (the default one, then the other offered regions) it
// terminates the instances tagged with the deployment (and managed by
// algocloud), waits until they are terminated, and deletes the security
// group GroupName(deploymentID) (retrying while EC2 still counts a dead
// instance as its user); then it revokes the agent's credential (with
// Options.Agent) and removes the staging folder. It is for a
// Provision whose instance was launched but never recorded (the answer lost,
// every later attempt failing): Delete has no instance ID to Release.
// Finding nothing is not an error, so a second Sweep returns nil. Regions
// other than the default one that the account may not use are skipped;
// ctx bounds the waits.
func (p *Provider) Sweep(ctx context.Context, deploymentID string) error {
	if !deploymentIDRe.MatchString(deploymentID) {
		return permanent("sweep: deployment id %q is not valid (letters, digits, '.', '_', '-')", deploymentID)
	}
	// Not alongside a Provision of the same deployment in this process.
	defer p.locks.lock(deploymentID)()
	// An ID it has never seen: the default region, then the others.
	for i, region := range p.searchOrder("") {
		err := p.sweepRegion(ctx, region, deploymentID)
		if i > 0 && isCode(err, "OptInRequired", "AuthFailure") {
			continue // a region not enabled for the account holds nothing
		}
		if err != nil {
			return fmt.Errorf("sweep %s in %s: %w", deploymentID, region, err)
		}
	}
	if p.opts.Agent != nil && p.opts.Agent.Revoke != nil {
		// Its launch registered the agent's credential; no instance holds
		// it now.
		if err := p.opts.Agent.Revoke(ctx, AgentID(deploymentID)); err != nil {
			return fmt.Errorf("sweep %s: revoke the agent's credential: %w", deploymentID, err)
		}
	}
	if p.opts.StagingDir == "" {
		return nil
	}
	return p.removeWorkdir(compute.Server{ID: deploymentID, Workdir: filepath.Join(p.opts.StagingDir, deploymentID)})
}

// sweepRegion terminates the deployment's instances in region, waits for
// them, and deletes its security groups there.
func (p *Provider) sweepRegion(ctx context.Context, region, deploymentID string) error {
	c := p.client(region)
	ids, err := sweepInstances(ctx, c, deploymentID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		// One at a time: a single ID that vanished meanwhile would fail a
		// call naming several.
		_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		if err != nil && !isNotFound(err) {
			return classify("terminate instance "+id, err)
		}
		p.log.Info("swept instance: terminating", "deployment", deploymentID, "instance", id, "region", region)
	}
	for _, id := range ids {
		err := p.poll(ctx, func() (bool, error) {
			inst, err := p.describe(ctx, region, id)
			if errors.Is(err, compute.ErrNotFound) {
				return true, nil
			}
			return err == nil && state(inst) == types.InstanceStateNameTerminated, err
		})
		if err != nil {
			return fmt.Errorf("wait for termination of %s: %w", id, err)
		}
	}
	groups, err := sweepGroups(ctx, c, deploymentID)
	if err != nil {
		return err
	}
	if err := p.deleteGroups(ctx, c, groups); err != nil {
		return err
	}
	for _, g := range groups {
		p.log.Info("swept security group", "deployment", deploymentID, "group", g, "region", region)
	}
	return nil
}

// sweepInstances lists the IDs of the deployment's instances that are not
// terminated yet (shutting-down included: terminating it again is harmless
// and the wait covers it). Only instances with both the deployment tag and
// the managed-by tag are listed.
func sweepInstances(ctx context.Context, c *ec2.Client, deploymentID string) ([]string, error) {
	all, err := taggedInstances(ctx, c, deploymentID, "find instances of "+deploymentID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, inst := range all {
		if state(inst) != types.InstanceStateNameTerminated {
			ids = append(ids, aws.ToString(inst.InstanceId))
		}
	}
	return ids, nil
}

// sweepGroups lists the IDs of the deployment's security groups: those
// named GroupName(deploymentID) with the managed-by tag, in any VPC.
func sweepGroups(ctx context.Context, c *ec2.Client, deploymentID string) ([]string, error) {
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{
			{Name: aws.String("group-name"), Values: []string{GroupName(deploymentID)}},
			{Name: aws.String("tag:" + TagManagedBy), Values: []string{managedBy}},
		},
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("find security groups of "+deploymentID, err)
	}
	var ids []string
	for _, g := range out.SecurityGroups {
		if aws.ToString(g.GroupName) == GroupName(deploymentID) {
			ids = append(ids, aws.ToString(g.GroupId))
		}
	}
	return ids, nil
}
