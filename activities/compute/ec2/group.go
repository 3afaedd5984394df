package ec2

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
)

// securityGroup returns the ID of the deployment's security group, creating
// it when missing, and makes sure it lets the endpoint port in (TCP, any
// IPv4 or IPv6 source) and nothing else in.
func (p *Provider) securityGroup(ctx context.Context, c *ec2.Client, s compute.ServerSpec) (string, error) {
	name := GroupName(s.DeploymentID)
	vpc, err := p.vpc(ctx, c)
	if err != nil {
		return "", err
	}
	id, err := findGroup(ctx, c, name, vpc)
	if err != nil {
		return "", err
	}
	if id == "" {
		in := &ec2.CreateSecurityGroupInput{
			GroupName:   aws.String(name),
			Description: aws.String("algocloud endpoint " + s.APIName + " (deployment " + s.DeploymentID + ")"),
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeSecurityGroup, Tags: resourceTags(s)},
			},
		}
		if vpc != "" {
			in.VpcId = aws.String(vpc)
		}
		out, err := c.CreateSecurityGroup(ctx, in)
		switch {
		case isCode(err, codeGroupDuplicate):
			// Made by a concurrent Provision in another worker.
			if id, err = findGroup(ctx, c, name, vpc); err == nil && id == "" {
				err = fmt.Errorf("security group %s: exists but cannot be found", name)
			}
			if err != nil {
				return "", err
			}
		case err != nil:
			return "", classify("create security group "+name, err)
		default:
			id = aws.ToString(out.GroupId)
		}
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(id),
		IpPermissions: []types.IpPermission{{
			IpProtocol: aws.String("tcp"),
			FromPort:   aws.Int32(int32(p.opts.Port)),
			ToPort:     aws.Int32(int32(p.opts.Port)),
			IpRanges:   []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("algocloud endpoint")}},
			Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0"), Description: aws.String("algocloud endpoint")}},
		}},
	})
	if err != nil && !isCode(err, codePermDuplicate) {
		return "", classify("open port in security group "+name, err)
	}
	return id, nil
}

// vpc is the VPC the security group belongs in: the configured one, the
// configured subnet's, or "" for the region's default VPC.
func (p *Provider) vpc(ctx context.Context, c *ec2.Client) (string, error) {
	if p.opts.VPCID != "" || p.opts.SubnetID == "" {
		return p.opts.VPCID, nil
	}
	out, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{p.opts.SubnetID}})
	if err != nil {
		return "", classify("find subnet "+p.opts.SubnetID, err)
	}
	if len(out.Subnets) == 0 {
		return "", permanent("provision: subnet %s does not exist", p.opts.SubnetID)
	}
	return aws.ToString(out.Subnets[0].VpcId), nil
}

// findGroup returns the ID of the security group called name (in vpc, when
// given), or "" when there is none.
func findGroup(ctx context.Context, c *ec2.Client, name, vpc string) (string, error) {
	filters := []types.Filter{{Name: aws.String("group-name"), Values: []string{name}}}
	if vpc != "" {
		filters = append(filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpc}})
	}
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filters})
	if err != nil {
		return "", classify("find security group "+name, err)
	}
	for _, g := range out.SecurityGroups {
		if aws.ToString(g.GroupName) == name {
			return aws.ToString(g.GroupId), nil
		}
	}
	return "", nil
}

// deleteGroup deletes one security group; one already gone is not an error.
func deleteGroup(ctx context.Context, c *ec2.Client, id string) error {
	_, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
	if err == nil || isNotFound(err) {
		return nil
	}
	return err
}

// deleteGroups deletes the security groups until they are gone. EC2 answers
// DependencyViolation while a terminated instance still holds its network
// interface, for a while after "terminated": that is retried every Poll until
// ctx ends.
func (p *Provider) deleteGroups(ctx context.Context, c *ec2.Client, ids []string) error {
	for _, id := range ids {
		err := p.poll(ctx, func() (bool, error) {
			err := deleteGroup(ctx, c, id)
			if isCode(err, codeDependency) {
				p.log.Debug("security group still in use; retrying", "group", id)
				return false, nil
			}
			return err == nil, err
		})
		if err != nil {
			return classify("delete security group "+id, err)
		}
	}
	return nil
}

// groupsOf lists the security groups to delete with an instance: its own
// algocloud-* groups and the deployment's group by name (which outlives an
// instance that never got it, or whose record lost it).
func groupsOf(ctx context.Context, c *ec2.Client, inst types.Instance) ([]string, error) {
	var ids []string
	for _, g := range inst.SecurityGroups {
		if strings.HasPrefix(aws.ToString(g.GroupName), "algocloud-") {
			ids = append(ids, aws.ToString(g.GroupId))
		}
	}
	dep, ok := tag(inst.Tags, TagDeployment)
	if !ok {
		return ids, nil
	}
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{
			{Name: aws.String("group-name"), Values: []string{GroupName(dep)}},
			{Name: aws.String("tag:" + TagManagedBy), Values: []string{managedBy}},
		},
	})
	if err != nil && !isNotFound(err) {
		return nil, classify("find security groups of "+dep, err)
	}
	if out != nil {
		for _, g := range out.SecurityGroups {
			if id := aws.ToString(g.GroupId); !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
