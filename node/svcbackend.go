package node

import (
	"context"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
)

var _ httpapi.ServiceBackend = (*backend)(nil)

// DeployService implements httpapi.ServiceBackend.
func (b *backend) DeployService(ctx context.Context, spec api.ServiceSpec, module []byte) (api.Service, error) {
	return b.svc.deploy(ctx, spec, module)
}

// Services implements httpapi.ServiceBackend.
func (b *backend) Services(_ context.Context, all bool) ([]api.Service, error) {
	return b.svc.list(all)
}

// Service implements httpapi.ServiceBackend.
func (b *backend) Service(_ context.Context, name string) (api.Service, error) {
	return b.svc.get(name)
}

// ServiceStats implements httpapi.ServiceBackend.
func (b *backend) ServiceStats(_ context.Context, name string) (api.ServiceStats, error) {
	return b.svc.stats(name)
}

// ServiceLogs implements httpapi.ServiceBackend.
func (b *backend) ServiceLogs(ctx context.Context, name string) (api.ServiceLogs, error) {
	return b.svc.logs(ctx, name)
}

// ScaleService implements httpapi.ServiceBackend.
func (b *backend) ScaleService(ctx context.Context, name string, replicas uint32) (api.Service, error) {
	return b.svc.scale(ctx, name, replicas)
}

// CloseService implements httpapi.ServiceBackend.
func (b *backend) CloseService(ctx context.Context, name string) (api.Service, error) {
	return b.svc.closeService(ctx, name)
}
