package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/activities/dns"
	dnsroute53 "github.com/algocloud/algocloud/activities/dns/route53"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/internal/testenv/testpebble"
)

// motoAMI is one of the images moto serves in every region.
const motoAMI = "ami-760aaa0f"

// cloudWorld is moto (EC2, S3, Route53), a hosted zone for the platform's
// domain, the DNS server answering for it, and pebble validating through it.
type cloudWorld struct {
	moto   *testmoto.Server
	zoneID string
	r53    *dnsroute53.Route53
	zdns   *testpebble.ZoneDNS
	pebble *testpebble.Pebble
	bucket string
	ec2    *awsec2.Client
	s3     *s3.Client
}

func newCloudWorld(t *testing.T, ctx context.Context) *cloudWorld {
	t.Helper()
	// The platform takes AWS credentials from the standard chain: here moto's
	// fake ones from the environment, and nothing from this machine's files
	// or an instance metadata service.
	// (moto_server starts first, with the environment it is used to.)
	w := &cloudWorld{moto: testmoto.Start(t), bucket: "algocloud-bundles"}
	testmoto.UseEnvCredentials(t)
	creds := testmoto.Credentials
	zone, err := route53.New(route53.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(w.moto.Endpoint)}).
		CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("algocloud.test"), CallerReference: aws.String(uuid.NewString())})
	require.NoError(t, err)
	w.zoneID = strings.TrimPrefix(aws.ToString(zone.HostedZone.Id), "/hostedzone/")
	w.r53, err = dnsroute53.NewRoute53(ctx, dnsroute53.Options{Endpoint: w.moto.Endpoint, Credentials: creds, ZoneID: w.zoneID, Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	w.zdns = testpebble.StartZoneDNS(t, w.r53)
	w.pebble = testpebble.Start(t, testpebble.Config{Resolver: w.zdns.Addr})
	w.ec2 = awsec2.New(awsec2.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(w.moto.Endpoint)})
	w.s3 = s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(w.moto.Endpoint), UsePathStyle: true})
	_, err = w.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(w.bucket)})
	require.NoError(t, err)
	// What docs/cloud.md tells the operator: instances fetch the prefix
	// without credentials (bundles are encrypted); nothing else is public.
	_, err = w.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(w.bucket), Policy: aws.String(`{
	  "Version": "2012-10-17",
	  "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
	                 "Resource": "arn:aws:s3:::` + w.bucket + `/algocloud/*"}]}`)})
	require.NoError(t, err)
	return w
}

// ec2Options are the EC2 tests' cloud options on moto (AWS calls to
// awsEndpoint: moto, or a fault proxy in front of it): --compute ec2 with
// the server agent on each instance (the CLI's default), --dns route53,
// --certs local, the endpoint port, and the provider's health checks sent
// to the stand-in at healthAddr (never to what moto hands out).
func ec2Options(w *cloudWorld, awsEndpoint string, port int, healthAddr string) platform.CloudOptions {
	return platform.CloudOptions{
		Compute: platform.ComputeEC2, Certs: platform.CertsLocal, DNS: platform.DNSRoute53,
		AWSRegion: "us-east-1", AWSEndpoint: awsEndpoint, EC2Agents: true,
		EC2AMIs: map[string]string{"python": motoAMI}, EC2Port: port, EC2Poll: 50 * time.Millisecond,
		EC2HealthURL: func(compute.Server) string { return "https://" + healthAddr + "/readyz" },
		BundleBucket: w.bucket, DNSZoneID: w.zoneID, DNSPoll: 20 * time.Millisecond,
	}
}

// standIn is the local stand-in for the instance: it runs the fetch script
// of the instance's own user data (from moto) with its home in a temporary
// folder and its listen address on 127.0.0.1, as systemd's ExecStartPre
// would, then algocloud-infer with the fetched bundle, as ExecStart would.
// So what it serves is what the worker published to S3, through the same
// download, MAC check, decryption and unpacking an instance does.
type standIn struct {
	home, listen string
	cmd          *exec.Cmd
}

func (s *standIn) start(t *testing.T, userData string) {
	t.Helper()
	require.NoError(t, s.boot(userData))
	t.Cleanup(s.stop)
}

// sandboxedVenv checks that fetch.sh made the venv (when the bundle has
// one) through algocloud-infer install: its output says the sandbox, and,
// as root, the venv's files are the sandbox uid's, so no pip or build
// backend ran as root.
func sandboxedVenv(home string, fetchOutput []byte) error {
	cfg := filepath.Join(home, "venv", "pyvenv.cfg")
	var st syscall.Stat_t
	if err := syscall.Stat(cfg, &st); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if !bytes.Contains(fetchOutput, []byte("install: venv "+filepath.Join(home, "venv")+" in sandbox ")) {
		return fmt.Errorf("fetch.sh did not make the venv through algocloud-infer install: %s", fetchOutput)
	}
	if os.Geteuid() == 0 && int(st.Uid) < sandbox.UIDBase {
		return fmt.Errorf("the venv is uid %d's, not the install sandbox's", st.Uid)
	}
	return nil
}

func (s *standIn) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// TestEC2Route53ACME walks the wizard with --compute ec2 on moto (the
// server agent on the instance, the default), --dns route53 on moto and
// --certs acme against pebble (DNS-01 through Route53): the stand-in runs
// the agent of the instance's user data, which installs, tests and serves
// there. It calls the endpoint over HTTPS as <api-name>.algocloud.test
// verified with pebble's root, checks what moto holds, then deletes and
// checks that the instance, the record, the security group, the sealed
// objects and the agent's credential are gone.
func TestEC2Route53ACME(t *testing.T) { testEC2(t, true) }

// TestEC2Route53LocalCA is the same with the platform's local CA, whose
// certificate names the instance's address too.
func TestEC2Route53LocalCA(t *testing.T) { testEC2(t, false) }

func testEC2(t *testing.T, withACME bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	endpointRoots := x509.NewCertPool()
	require.True(t, endpointRoots.AppendCertsFromPEM(w.pebble.IssuerRootPEM(t)))
	port := testenv.FreePort(t)
	si := &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}

	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = ec2Options(w, w.moto.Endpoint, port, si.listen)
		if withACME {
			o.Cloud.Certs, o.Cloud.ACMEDirectory, o.Cloud.ACMEEmail = platform.CertsACME, w.pebble.DirectoryURL, "ops@algocloud.test"
			o.Cloud.ACMECARoots, o.Cloud.ACMEDNSResolvers, o.Cloud.EndpointRoots = w.pebble.TLSRoots(), []string{w.zdns.Addr}, endpointRoots
		}
	})
	defer p.Stop()
	if !withACME {
		endpointRoots = p.CA.Pool()
	}
	c := newClient(t, p, devToken(t, p))

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Segmentation on EC2", "api_name": "seg", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	// Provision; the stand-in boots from the user data moto holds (the
	// agent's unit), and the next steps run on it.
	instanceID, userData := provisionWithAgent(t, ctx, c, w, si, id)
	require.NotContains(t, userData, "PRIVATE KEY")
	credential, err := os.ReadFile(filepath.Join(si.home, "agent", "credential"))
	require.NoError(t, err)
	r = fetchInstallTest(t, c, id, repo)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	state := st.Body["state"].(map[string]any)
	require.Equal(t, true, state["test"].(map[string]any)["ok"], string(st.Raw))
	srv := state["server"].(map[string]any)
	require.Equal(t, instanceID, srv["id"], string(st.Raw))
	publicIP := srv["host"].(string)

	// moto: exactly one instance tagged with the deployment, in a security
	// group that opens only the endpoint port; Route53: the A record.
	inst := deploymentInstances(t, ctx, w, id)
	require.Len(t, inst, 1)
	require.Equal(t, instanceID, aws.ToString(inst[0].InstanceId))
	group := deploymentGroup(t, ctx, w, id)
	require.NotNil(t, group)
	require.Len(t, group.IpPermissions, 1)
	require.Equal(t, int32(port), aws.ToInt32(group.IpPermissions[0].FromPort))
	require.Equal(t, int32(port), aws.ToInt32(group.IpPermissions[0].ToPort))
	require.Equal(t, "tcp", aws.ToString(group.IpPermissions[0].IpProtocol))
	ip, err := w.r53.Lookup(ctx, "seg.algocloud.test")
	require.NoError(t, err)
	require.Equal(t, publicIP, ip)
	require.Equal(t, "seg.algocloud.test", state["dns"].(map[string]any)["name"], string(st.Raw))
	if withACME {
		require.Positive(t, w.zdns.Answered("TXT", "_acme-challenge.seg.algocloud.test"), "pebble validated DNS-01 through Route53")
	}

	// Complete: the worker publishes the code revision and the certificate
	// sealed, and the instance's agent fetches both and serves.
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.Equal(t, fmt.Sprintf("https://seg.algocloud.test:%d", port), endpoint)

	// What the bucket holds for the deployment is sealed: no key, no code
	// in the clear.
	prefix := "algocloud/" + id + "/"
	requireSealed(t, ctx, w, prefix, "PRIVATE KEY", "aai_main")

	// Call the endpoint by its name, verified against pebble's root only;
	// the dialer plays DNS and sends the name's traffic to the stand-in.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: endpointRoots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if host != "seg.algocloud.test" {
				return nil, errors.New("unexpected dial to " + addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, si.listen)
		},
	}}
	res, out := predict(t, hc, endpoint, token, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	img, err := png.Decode(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 96, 64), img.Bounds())
	leaf := res.TLS.PeerCertificates[0]
	require.Equal(t, []string{"seg.algocloud.test"}, leaf.DNSNames)
	if withACME {
		require.Empty(t, leaf.IPAddresses, "an ACME certificate names no address")
		require.False(t, bytes.Equal(leaf.RawIssuer, p.CA.Root().RawSubject), "issued by pebble, not the local CA")
	} else {
		require.Len(t, leaf.IPAddresses, 1)
		require.Equal(t, publicIP, leaf.IPAddresses[0].String(), "the local CA names the instance's address")
	}

	// Nothing secret in the workflow's history: no private key, no token,
	// no agent credential.
	hist := p.Client.GetWorkflowHistory(ctx, "deployment-"+id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events int
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		events++
		text := ev.String()
		require.NotContains(t, text, "PRIVATE KEY")
		require.NotContains(t, text, token)
		require.NotContains(t, text, strings.TrimSpace(string(credential)))
	}
	require.Positive(t, events)
	// The worker keeps the certificate's key sealed.
	keyFile := filepath.Join(data, "ec2", id, "certs", "key.pem.sealed")
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NotContains(t, string(b), "PRIVATE KEY")
	fi, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Delete: instance terminated, record, group, sealed objects and the
	// agent's credential gone.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	si.stop()
	out2, err := w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	require.NoError(t, err)
	require.Equal(t, ec2types.InstanceStateNameTerminated, out2.Reservations[0].Instances[0].State.Name)
	require.Empty(t, deploymentInstances(t, ctx, w, id))
	require.Nil(t, deploymentGroup(t, ctx, w, id))
	_, err = w.r53.Lookup(ctx, "seg.algocloud.test")
	require.ErrorIs(t, err, dns.ErrNotFound)
	list, err := w.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	require.NoError(t, err)
	require.Empty(t, list.Contents, "code revisions and certificate object deleted")
	_, err = p.Agents.AuthenticateAgent(ctx, strings.TrimSpace(string(credential)))
	require.Error(t, err, "the credential is revoked")
	require.NoDirExists(t, filepath.Join(data, "ec2", id), "staging folder with the sealed key removed")
}

// deploymentInstances lists the deployment's instances not terminated.
func deploymentInstances(t *testing.T, ctx context.Context, w *cloudWorld, id string) []ec2types.Instance {
	t.Helper()
	out, err := w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + ec2.TagDeployment), Values: []string{id}}},
	})
	require.NoError(t, err)
	var list []ec2types.Instance
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if inst.State.Name != ec2types.InstanceStateNameTerminated {
				list = append(list, inst)
			}
		}
	}
	return list
}

// deploymentGroup returns the deployment's security group, or nil.
func deploymentGroup(t *testing.T, ctx context.Context, w *cloudWorld, id string) *ec2types.SecurityGroup {
	t.Helper()
	out, err := w.ec2.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{
		Filters: []ec2types.Filter{{Name: aws.String("group-name"), Values: []string{ec2.GroupName(id)}}},
	})
	require.NoError(t, err)
	if len(out.SecurityGroups) == 0 {
		return nil
	}
	require.Len(t, out.SecurityGroups, 1)
	return &out.SecurityGroups[0]
}
