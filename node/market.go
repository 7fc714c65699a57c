package node

import (
	"context"
	"fmt"
	"io"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/node/api"
)

// marketService is the node's part in the exchange: the order book fed by
// the offers and bids topics, the provider's offer heartbeat and job
// execution, the proposer's matcher, and the client's jobs.
type marketService struct {
	n *Node
}

func newMarketService(n *Node) (*marketService, error) { return &marketService{n: n}, nil }

func (m *marketService) start(ctx context.Context)   {}
func (m *marketService) close(ctx context.Context)   {}
func (m *marketService) onCommit(c driver.Committed) {}

func (m *marketService) proposerTxs(st *chain.State, height uint64, blockTime int64) [][]byte {
	return nil
}

var errMarketNotWired = fmt.Errorf("%w: the market is not wired into this build yet", api.ErrUnavailable)

func (m *marketService) offers(context.Context) ([]api.Offer, error) { return nil, errMarketNotWired }
func (m *marketService) bids(context.Context) ([]api.Bid, error)     { return nil, errMarketNotWired }
func (m *marketService) matches(context.Context, api.MatchFilter) ([]api.Match, error) {
	return nil, errMarketNotWired
}
func (m *marketService) stats(context.Context, uint64, uint64) (api.MarketStats, error) {
	return api.MarketStats{}, errMarketNotWired
}
func (m *marketService) submitJob(context.Context, api.JobSpec, []byte) (api.Job, error) {
	return api.Job{}, errMarketNotWired
}
func (m *marketService) dryRun(context.Context, api.JobSpec) (api.DryRun, error) {
	return api.DryRun{}, errMarketNotWired
}
func (m *marketService) jobs(context.Context, api.JobFilter) ([]api.Job, error) {
	return nil, errMarketNotWired
}
func (m *marketService) job(context.Context, string) (api.Job, error) {
	return api.Job{}, errMarketNotWired
}
func (m *marketService) jobLogs(context.Context, string) (api.JobLogs, error) {
	return api.JobLogs{}, errMarketNotWired
}
func (m *marketService) jobResult(context.Context, string) (io.ReadCloser, api.ResultInfo, error) {
	return nil, api.ResultInfo{}, errMarketNotWired
}
func (m *marketService) cancelJob(context.Context, string) (api.Job, error) {
	return api.Job{}, errMarketNotWired
}
func (m *marketService) providerStatus(context.Context) (api.ProviderStatus, error) {
	return api.ProviderStatus{}, errMarketNotWired
}
