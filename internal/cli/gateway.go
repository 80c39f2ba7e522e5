package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/admin"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/gateway"
	pgtidev1 "github.com/pgtide/pgtide/proto/pgtide/v1"
)

// gatewayStopTimeout bounds how long the gateway waits for its streams to
// end on shutdown.
const gatewayStopTimeout = 5 * time.Second

// gatewayConfig maps the configuration to the gateway's. listen is the
// gateway's own listener, "" when it is mounted on another.
func gatewayConfig(g config.GatewayConfig, listen string) gateway.Config {
	gc := gateway.Config{
		Listen:  listen,
		TLSCert: g.TLSCert,
		TLSKey:  g.TLSKey,
		JWT: gateway.JWTConfig{
			HS256Secret:    g.JWT.HS256Secret,
			RS256PublicKey: g.JWT.RS256PublicKey,
			Issuer:         g.JWT.Issuer,
			Audience:       g.JWT.Audience,
		},
		CORSOrigins:         g.CORSOrigins,
		SendBuffer:          g.SendBuffer,
		SlowConsumerTimeout: time.Duration(g.SlowConsumerTimeout),
		Heartbeat:           time.Duration(g.Heartbeat),
		CacheMessages:       g.CacheMessages,
		CacheBytes:          int(g.CacheBytes),
		MaxPollTimeout:      time.Duration(g.MaxPollTimeout),
		MaxSubscriptions:    g.MaxSubscriptions,
		AckWait:             time.Duration(g.AckWait),
	}
	for _, t := range g.Tokens {
		gc.Tokens = append(gc.Tokens, gateway.Token{
			Name:   t.Name,
			SHA256: strings.TrimSpace(t.SHA256),
			Grant: gateway.Grant{
				Sources: t.Sources,
				Tables:  t.Tables,
				Columns: t.Columns,
				Where:   t.Where,
				Groups:  t.Groups,
			},
		})
	}
	return gc
}

// newGateway creates the gateway over l. Problems New finds in the
// configuration (a grant's predicate or table pattern) are configuration
// errors.
func newGateway(
	cfg config.Config, listen string, l *changelog.Log, logger *slog.Logger, reg prometheus.Registerer,
) (*gateway.Server, error) {
	gw, err := gateway.New(gatewayConfig(cfg.Gateway, listen), l, logger, reg)
	if err != nil {
		return nil, &exitError{code: ExitConfig, err: fmt.Errorf("gateway configuration: %w", err)}
	}
	return gw, nil
}

// gatewayRoutes are the gateway's endpoints for the admin listener: the
// HTTP transports and the gRPC service.
func gatewayRoutes(gw *gateway.Server) []admin.Route {
	h := gw.Handler()
	return []admin.Route{
		{Pattern: "/v1/changes", Handler: h,
			Help: "/v1/changes  change stream: long poll, or SSE with Accept: text/event-stream"},
		{Pattern: "/v1/ws", Handler: h, Help: "/v1/ws       change stream over WebSocket"},
		{Pattern: "/v1/groups/", Handler: h, Help: "/v1/groups/  consumer groups"},
		{Pattern: "/" + pgtidev1.Gateway_ServiceDesc.ServiceName + "/", Handler: h},
	}
}

// checkMountedGateway refuses to serve an unauthenticated gateway on an
// admin listener that other machines can reach.
func checkMountedGateway(cfg config.Config) error {
	g := cfg.Gateway
	if !g.Mounted() || cfg.Admin.Listen == config.Off || g.AuthEnabled() ||
		config.LoopbackListen(cfg.Admin.Listen) {
		return nil
	}
	return usageErrorf("the gateway shares the admin listener %s, which accepts connections from "+
		"other machines, but it has no authentication: add gateway.tokens or gateway.jwt, give the "+
		"gateway a loopback listener of its own (gateway.listen: %s), or turn it off "+
		"(gateway.listen: off)", cfg.Admin.Listen, config.DefaultGatewayListen)
}

// gatewayStatus says where the gateway serves, for /v1/status.
type gatewayStatus struct {
	URL     string `json:"url"`
	Mounted bool   `json:"mounted"` // on the admin listener
	Auth    bool   `json:"auth"`
}

func (e *env) gatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the stream gateway alone",
		Long: "gateway serves the change log to applications: long polling and\n" +
			"Server-Sent Events on /v1/changes, WebSocket on /v1/ws, consumer groups\n" +
			"on /v1/groups/, and gRPC (pgtide.v1.Gateway), on gateway.listen\n" +
			"(default " + config.DefaultGatewayListen + "). It reads the log like `log tail`: through\n" +
			"nats.url, else the embedded server of a running pgtide\n" +
			"(nats.embedded.listen), else the store under data_dir. Its metrics and\n" +
			"health endpoints are on admin.listen; give --admin-listen another address\n" +
			"(or off) when a pgtide up on this machine uses the default.\n\n" +
			"`pgtide up` serves the same gateway on its admin listener.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			return e.runGateway(cmd.Context(), cfg)
		},
	}
	cmd.AddCommand(e.hashTokenCommand())
	return cmd
}

func (e *env) runGateway(ctx context.Context, cfg config.Config) error {
	listen := cfg.Gateway.Listen
	switch listen {
	case config.Off:
		return usageErrorf("gateway.listen is off: give the gateway an address such as %s",
			config.DefaultGatewayListen)
	case "":
		listen = config.DefaultGatewayListen
	}
	logger := newLogger(cfg.Log, e.stderr)

	l, closeLog, err := openLogReader(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeLog()

	reg := prometheus.NewRegistry()
	gw, err := newGateway(cfg, listen, l, logger, reg)
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	started := time.Now()
	url := gatewayURL(cfg.Gateway, gw.Addr())

	var adm *admin.Server
	if cfg.Admin.Listen != config.Off {
		adm = admin.New(admin.Config{
			Listen:   cfg.Admin.Listen,
			Logger:   logger.With("component", "admin"),
			Registry: reg,
			Status: func(context.Context) any {
				return statusDoc{
					Version:   version(),
					StartedAt: started.UTC(),
					Ready:     true,
					NATSURL:   redactURLs(l.ClientURL()),
					Embedded:  l.Embedded(),
					Sources:   []sourceStatus{},
					Gateway:   &gatewayStatus{URL: url, Auth: cfg.Gateway.AuthEnabled()},
				}
			},
		})
		if err := adm.Start(ctx); err != nil {
			shutdownGateway(gw, logger)
			return fmt.Errorf("%w (a pgtide up on this machine may use it: give the gateway "+
				"--admin-listen 127.0.0.1:0, another address, or off)", err)
		}
	}
	logger.Info("gateway ready", "url", url, "auth", cfg.Gateway.AuthEnabled())

	<-ctx.Done()
	logger.Info("shutting down", "cause", context.Cause(ctx))
	shutdownGateway(gw, logger)
	if adm != nil {
		sctx, cancel := context.WithTimeout(context.Background(), adminStopTimeout)
		defer cancel()
		if err := adm.Shutdown(sctx); err != nil {
			logger.Warn("admin server shutdown failed", "err", err)
		}
	}
	logger.Info("gateway stopped")
	return nil
}

// shutdownGateway ends the gateway's streams and its listener.
func shutdownGateway(gw *gateway.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), gatewayStopTimeout)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		logger.Warn("gateway shutdown failed", "err", err)
	}
}

// gatewayURL is the base URL clients reach the gateway at, listening on
// addr.
func gatewayURL(g config.GatewayConfig, addr string) string {
	scheme := "http://"
	if g.TLSCert != "" && !g.Mounted() {
		scheme = "https://"
	}
	return scheme + dialAddr(addr)
}

func (e *env) hashTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-token",
		Short: "Print the SHA-256 digest of a token read from stdin",
		Long: "hash-token reads a bearer token (one line) from standard input and prints\n" +
			"its SHA-256 digest, to put under gateway.tokens[].sha256 instead of the\n" +
			"token:\n\n" +
			"  TOKEN=$(openssl rand -base64 32)\n" +
			"  printf '%s' \"$TOKEN\" | pgtide gateway hash-token",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
			if err != nil {
				return fmt.Errorf("read the token: %w", err)
			}
			token := strings.TrimRight(string(data), "\r\n")
			if token == "" {
				return usageErrorf("no token on standard input")
			}
			if strings.ContainsAny(token, "\r\n") {
				return usageErrorf("the token holds a line break: give one line")
			}
			sum := sha256.Sum256([]byte(token))
			fmt.Fprintln(e.stdout, hex.EncodeToString(sum[:]))
			return nil
		},
	}
}
