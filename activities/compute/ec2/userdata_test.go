package ec2

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/spec"
)

var (
	inferOnce sync.Once
	inferBin  string
	inferErr  error
)

// inferBinary is the real algocloud-infer that fetch.sh downloads and runs
// (its install mode makes the venv): $ALGOCLOUD_INFER_BIN when set (after
// ./scripts/build.sh), else built once for the package's tests.
func inferBinary(t *testing.T) string {
	t.Helper()
	inferOnce.Do(func() {
		if p := os.Getenv("ALGOCLOUD_INFER_BIN"); p != "" {
			inferBin = p
			return
		}
		dir, err := os.MkdirTemp("", "algocloud-infer-bin-")
		if err != nil {
			inferErr = err
			return
		}
		inferBin = filepath.Join(dir, "algocloud-infer")
		out, err := exec.Command("go", "build", "-o", inferBin, "github.com/algocloud/algocloud/cmd/algocloud-infer").CombinedOutput()
		if err != nil {
			inferErr = fmt.Errorf("go build algocloud-infer: %v: %s", err, out)
		}
	})
	require.NoError(t, inferErr)
	return inferBin
}

// unitOf returns the [Service] lines of algocloud-infer.service in user data.
func unitOf(t *testing.T, userData string) []string {
	t.Helper()
	unit, err := heredoc(userData, "UNIT")
	require.NoError(t, err)
	require.Contains(t, unit, "Description=algocloud inference server")
	_, service, ok := strings.Cut(unit, "[Service]\n")
	require.True(t, ok, unit)
	service, _, _ = strings.Cut(service, "\n[")
	var lines []string
	for _, l := range strings.Split(service, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// The instance that Provision launches, as moto holds it: IMDSv2 only with
// a hop limit of 1 and no instance profile; its user data installs
// bubblewrap and slirp4netns, makes the venv through algocloud-infer
// install, and runs algocloud-infer as an unprivileged user under systemd's
// hardening, with the instance type's memory and tasks limits and IMDS
// denied.
func TestProvision_HardenedInstance(t *testing.T) {
	e := newEnv(t)
	// moto answers a hop limit of 1 whatever was asked: the request itself
	// is checked too, on its way to moto.
	var mu sync.Mutex
	var runs []url.Values
	motoURL, err := url.Parse(e.moto.Endpoint)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(motoURL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if q, _ := url.ParseQuery(string(body)); q.Get("Action") == "RunInstances" {
			mu.Lock()
			runs = append(runs, q)
			mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	p := e.provider(t, func(o *Options) { o.Endpoint = proxy.URL; o.BundleEncryptionKey = make([]byte, 32) })
	ctx := ctxFor(t)
	for _, typ := range []string{"t3.small", "c5.2xlarge"} {
		t.Run(typ, func(t *testing.T) {
			s := specFor(uniq("dep-hard"))
			s.InstanceType = typ
			srv, err := p.Provision(ctx, s)
			require.NoError(t, err)
			mu.Lock()
			require.NotEmpty(t, runs)
			sent := runs[len(runs)-1]
			mu.Unlock()
			require.Equal(t, "required", sent.Get("MetadataOptions.HttpTokens"))
			require.Equal(t, "1", sent.Get("MetadataOptions.HttpPutResponseHopLimit"))
			require.Equal(t, "enabled", sent.Get("MetadataOptions.HttpEndpoint"))
			for k := range sent {
				require.NotContains(t, k, "IamInstanceProfile", "no instance profile is asked for")
			}

			out, err := e.ec2(testRegion).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{srv.ID}})
			require.NoError(t, err)
			require.Len(t, out.Reservations, 1)
			inst := out.Reservations[0].Instances[0]
			require.Nil(t, inst.IamInstanceProfile, "no instance profile: the instance holds no AWS credentials")
			require.NotNil(t, inst.MetadataOptions)
			require.Equal(t, types.HttpTokensStateRequired, inst.MetadataOptions.HttpTokens)
			require.Equal(t, types.InstanceMetadataEndpointStateEnabled, inst.MetadataOptions.HttpEndpoint)
			require.Equal(t, int32(1), aws.ToInt32(inst.MetadataOptions.HttpPutResponseHopLimit))

			attr, err := e.ec2(testRegion).DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
				InstanceId: aws.String(srv.ID), Attribute: types.InstanceAttributeNameUserData})
			require.NoError(t, err)
			raw, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
			require.NoError(t, err)
			ud := string(raw)
			require.LessOrEqual(t, len(ud), maxUserData)

			require.Regexp(t, `(?m)^apt-get install -y -q .*\bbubblewrap slirp4netns$`, ud)
			require.Contains(t, ud, "profile algocloud-bwrap /usr/bin/bwrap flags=(unconfined)", "Ubuntu's AppArmor lets bwrap make user namespaces")

			lim, err := sandbox.ForInstanceType(typ, 1)
			require.NoError(t, err)
			unit := unitOf(t, ud)
			for _, want := range []string{
				"User=algocloud",
				"ExecStartPre=+/opt/algocloud/fetch.sh",
				"ExecStart=/opt/algocloud/bin/algocloud-infer --config /opt/algocloud/bundle/live.json",
				"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/opt/algocloud", "PrivateTmp=yes",
				"ProtectHome=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes", "ProtectClock=yes",
				"RestrictSUIDSGID=yes", "LockPersonality=yes", "Delegate=yes",
				"IPAddressDeny=169.254.169.254 fd00:ec2::254",
				fmt.Sprintf("MemoryMax=%d", lim.MemoryBytes+unitMemoryHeadroom),
				fmt.Sprintf("TasksMax=%d", lim.Pids+unitTasksHeadroom),
			} {
				require.Contains(t, unit, want)
			}
			for _, l := range unit {
				// These would break bwrap's namespaces or the delegated cgroups.
				require.NotRegexp(t, `^(ProtectControlGroups|RestrictNamespaces|ProtectKernelTunables|PrivateUsers)=`, l)
			}
			// The unit's memory is a little above the sandbox's: a worker's
			// OOM kill is the sandbox cgroup's, the server survives it.
			require.Greater(t, lim.MemoryBytes+unitMemoryHeadroom, lim.MemoryBytes)

			script, err := FetchScript(ud)
			require.NoError(t, err)
			require.Contains(t, script, `"$home/bin/algocloud-infer" install --config "$home/bundle.new/live.json"`)
			require.Contains(t, script, `--requirements "$home/bundle.new/requirements.txt"`)
			require.NotRegexp(t, `pip install|-m venv`, script, "fetch.sh runs no pip and makes no venv itself")
			// Under systemd the install is a transient unit with the same hardening.
			run := regexp.MustCompile(`(?m)^\s*systemd-run .*$`).FindString(script)
			require.NotEmpty(t, run)
			hardening, err := unitHardening(typ)
			require.NoError(t, err)
			for _, h := range hardening {
				require.Contains(t, run, "-p "+shellQuote(h))
			}
		})
	}
}

// User data needs an instance type the sandbox has limits for.
func TestUserData_UnknownInstanceType(t *testing.T) {
	_, err := DefaultUserData(compute.ServerSpec{DeploymentID: "d", APIName: "x", InstanceType: "z9.huge"}, "https://a.invalid", 443)
	require.ErrorContains(t, err, `no sandbox limits for instance type "z9.huge"`)
}

// Every offered instance type gets user data (its limits are known) that
// fits EC2's 16 KiB, encrypted (with the certificate pick-up) or not.
func TestUserData_EveryOfferedTypeFits(t *testing.T) {
	keys, err := DeriveBundleKeys(make([]byte, 32), "dep-size")
	require.NoError(t, err)
	for _, offered := range spec.InstanceTypes {
		for _, typ := range offered {
			s := compute.ServerSpec{DeploymentID: "dep-size", APIName: strings.Repeat("n", 63), InstanceType: typ}
			enc, err := EncryptedUserData(s, "https://bucket.s3.amazonaws.com/algocloud", 443, keys)
			require.NoError(t, err, typ)
			require.LessOrEqual(t, len(enc), maxUserData, typ)
			plain, err := DefaultUserData(s, "https://bucket.s3.amazonaws.com/algocloud", 443)
			require.NoError(t, err, typ)
			require.LessOrEqual(t, len(plain), maxUserData, typ)
			require.Contains(t, enc, "TasksMax=")
		}
	}
}
