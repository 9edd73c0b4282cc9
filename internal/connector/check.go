package connector

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"destination-keen/internal/config"
	"destination-keen/internal/keenapi"
	"destination-keen/internal/sink"
)

// CheckTimeout bounds each online probe of check.
const CheckTimeout = 20 * time.Second

// OnlineProbes are check's online probes: the transport (Keen's Kafka
// brokers: TLS, SASL, metadata; or, with transport https, a bulk request
// of no events, which proves the key may write without touching Kafka) and
// Keen's HTTP API (a master-key call). rootCAs replaces the system trust
// store (tests only; nil in production).
func OnlineProbes(rootCAs *x509.CertPool) []Probe {
	api := func(cfg *config.Config) *keenapi.Client {
		api := keenapi.New(cfg)
		api.SetTimeout(CheckTimeout)
		if rootCAs != nil {
			api.SetRootCAs(rootCAs)
		}
		return api
	}
	return []Probe{
		func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			if cfg.Transport == config.HTTPS {
				return api(cfg).CheckWrite(ctx, false)
			}
			o := sink.OptionsFor(cfg)
			o.RootCAs, o.ConnectTimeout, o.Log = rootCAs, CheckTimeout, log
			return sink.Check(ctx, cfg, o)
		},
		func(ctx context.Context, cfg *config.Config, _ *slog.Logger) error {
			ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			return api(cfg).CheckMasterKey(ctx)
		},
	}
}
