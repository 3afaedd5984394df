// Package temporaldev runs an in-process Temporal server (SQLite persistence) and,
// optionally, the Temporal UI, for `algocloud dev` and integration tests.
//
// It follows the shape of the Temporal CLI's dev server: one history shard, static
// hosts for the four services on loopback, archival disabled, the authorizer and
// claim mapper from the config's defaults.
package temporaldev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// Options configures an embedded server. Zero ports pick free loopback ports.
type Options struct {
	// IP to bind every service on; defaults to 127.0.0.1.
	IP string
	// FrontendPort is the gRPC frontend port (the Temporal CLI default is 7233).
	FrontendPort int
	// UIPort serves the Temporal UI when positive; 0 disables the UI.
	UIPort int
	// DatabaseFile is the SQLite file; empty means an in-memory database.
	DatabaseFile string
	// Namespace to create (defaults to "default").
	Namespace string
	// CodecEndpoint, when set, is the codec endpoint the UI calls (from the
	// browser, with its cookies) to decode encrypted payloads.
	CodecEndpoint string
	// SearchAttributes are custom search attributes (name -> type) that
	// Start registers in Namespace, idempotently: a new database gets them
	// with the namespace; on a reused DatabaseFile the ones already there
	// are kept, missing ones are added (then the server restarts, so every
	// service's namespace cache knows them), and one there with another
	// type is an error.
	SearchAttributes map[string]enums.IndexedValueType
	// Logger receives the server's logs at Level and above; a nil Level
	// means error (the server's own pollers warn harmlessly on every shutdown).
	Logger *slog.Logger
	Level  slog.Leveler
}

// Server is a running embedded Temporal server.
type Server struct {
	server   temporal.Server
	ui       *uiserver.Server
	hostPort string
	uiAddr   string
}

// portAttempts bounds how often Start picks fresh ports after another
// process took one of them between FreePort and the server's own bind.
const portAttempts = 4

// errPortTaken marks a start that failed because a picked port was taken.
var errPortTaken = errors.New("a picked port was taken before the server bound it")

// errRestart marks a start that added search attributes to an existing
// namespace: the running services cache the namespace (refreshed every 10
// s), and would refuse the new attributes until then, so Start stops the
// server and starts it again.
var errRestart = errors.New("search attributes added: restart to load them")

// Start creates the schema and namespace when needed and starts the server.
//
// The server binds its own listeners, so ports chosen here are free only
// until it does; when another process takes one in that window (tests in
// parallel), Start tries again with fresh ports. A FrontendPort given by the
// caller is kept.
func Start(opts Options) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < portAttempts; attempt++ {
		s, err := startOnce(opts)
		if errors.Is(err, errRestart) {
			s, err = startOnce(opts) // they are in the database now
		}
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, lastErr
}

// startOnce is one attempt of Start. The Temporal server reports a failed
// bind through its logger's Fatal, which panics; it is turned into
// errPortTaken here.
func startOnce(opts Options) (s *Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			if strings.Contains(msg, "listener") || strings.Contains(msg, "address already in use") {
				s, err = nil, fmt.Errorf("%w: %s", errPortTaken, msg)
				return
			}
			panic(r)
		}
	}()
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Level == nil {
		opts.Level = slog.LevelError
	}
	if opts.FrontendPort == 0 {
		if opts.FrontendPort, err = FreePort(opts.IP); err != nil {
			return nil, err
		}
	}
	httpPort, err := FreePort(opts.IP)
	if err != nil {
		return nil, err
	}
	sqlConf, err := sqlConfig(opts)
	if err != nil {
		return nil, err
	}
	frontend := net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort))
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30e9
	conf.Global.Membership.BroadcastAddress = opts.IP
	conf.Persistence.DefaultStore = "sqlite-default"
	conf.Persistence.VisibilityStore = "sqlite-default"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{
			"active": {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            net.JoinHostPort(opts.IP, strconv.Itoa(httpPort)),
				ClusterID:              uuid.NewString(),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	hosts := map[primitives.ServiceName]static.Hosts{}
	conf.Services = map[string]config.Service{}
	for _, name := range []primitives.ServiceName{primitives.FrontendService, primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		var svc config.Service
		svc.RPC.BindOnIP = opts.IP
		if name == primitives.FrontendService {
			svc.RPC.GRPCPort = opts.FrontendPort
			svc.RPC.HTTPPort = httpPort
		} else if svc.RPC.GRPCPort, err = FreePort(opts.IP); err != nil {
			return nil, err
		}
		conf.Services[string(name)] = svc
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(opts.IP, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontend

	logger := &slogAdapter{log: opts.Logger, level: opts.Level.Level()}
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Updates are the wizard's transport; allow many in flight per workflow.
		dynamicconfig.WorkflowExecutionMaxInFlightUpdates.Key(): 50,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("new temporal server: %w", err)
	}
	s = &Server{server: srv, hostPort: frontend}
	if opts.UIPort > 0 {
		s.uiAddr = net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                opts.IP,
			Port:                opts.UIPort,
			TemporalGRPCAddress: frontend,
			EnableUI:            true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
			DefaultNamespace:    opts.Namespace,
			// IncludeCredentials: the browser sends the codec endpoint's
			// sign-in cookie, so only an operator who signed in with the
			// token sees decoded payloads.
			Codec: uiconfig.Codec{Endpoint: opts.CodecEndpoint, IncludeCredentials: true},
		}))
		go func() {
			if err := s.ui.Start(); err != nil && !errors.Is(err, net.ErrClosed) {
				opts.Logger.Error("temporal ui stopped", "error", err)
			}
		}()
	}
	if err := srv.Start(); err != nil {
		if s.ui != nil {
			s.ui.Stop()
		}
		if strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("%w: start temporal server: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	added, err := registerSearchAttributes(frontend, opts.Namespace, opts.SearchAttributes)
	if err != nil || added {
		s.Stop()
		if err == nil {
			err = errRestart
		}
		return nil, err
	}
	return s, nil
}

// registerSearchAttributes adds the attributes of want that namespace lacks
// through the operator service, as `temporal operator search-attribute
// create` does (the SQLite visibility store maps them onto its custom
// columns). The frontend may take a moment to serve the namespace after
// start, so Unavailable and NotFound answers are retried for a while. It
// reports whether it added any.
func registerSearchAttributes(hostPort, namespace string, want map[string]enums.IndexedValueType) (bool, error) {
	if len(want) == 0 {
		return false, nil
	}
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: namespace, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return false, fmt.Errorf("register search attributes: connect to %s: %w", hostPort, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		added, err := addMissingSearchAttributes(ctx, c.OperatorService(), namespace, want)
		var unavailable *serviceerror.Unavailable
		var notFound *serviceerror.NamespaceNotFound
		if err == nil || !(errors.As(err, &unavailable) || errors.As(err, &notFound)) || ctx.Err() != nil {
			return added, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// addMissingSearchAttributes lists namespace's custom search attributes and
// adds those of want it lacks, reporting whether there were any.
func addMissingSearchAttributes(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string, want map[string]enums.IndexedValueType) (bool, error) {
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return false, fmt.Errorf("register search attributes: list those of namespace %s: %w", namespace, err)
	}
	missing := map[string]enums.IndexedValueType{}
	for name, typ := range want {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return false, fmt.Errorf("register search attributes: %s is registered in namespace %s as %s, want %s", name, namespace, got, typ)
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		return false, fmt.Errorf("register search attributes in namespace %s: %w", namespace, err)
	}
	return true, nil
}

// HostPort is the frontend address for SDK clients.
func (s *Server) HostPort() string { return s.hostPort }

// UIAddress is the UI's host:port, or "" when the UI is off.
func (s *Server) UIAddress() string { return s.uiAddr }

// Stop stops the UI and the server.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	_ = s.server.Stop()
}

func sqlConfig(opts Options) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if opts.DatabaseFile == "" {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = "mem-" + uuid.NewString()
	} else {
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "_journal_mode": "WAL", "_synchronous": "NORMAL"}
		conf.DatabaseName = opts.DatabaseFile
		if _, err := os.Stat(opts.DatabaseFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o700); err != nil {
				return nil, fmt.Errorf("temporal data dir: %w", err)
			}
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, fmt.Errorf("temporal sqlite schema: %w", err)
			}
		}
	}
	// A new namespace gets the search attributes at once, so every service
	// loads them with it; an existing one keeps its own (Start adds any
	// missing).
	ns, err := sqliteschema.NewNamespaceConfig("active", opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("temporal namespace: %w", err)
	}
	return conf, nil
}

// FreePort asks the kernel for a free TCP port on ip.
func FreePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
