package node

import (
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/worker"
)

// market.Resources is the one source of truth for an amount of compute: it
// is what offers, bids and matches carry and what the chain checks. Two
// other shapes exist, and this file is the only place that converts between
// them:
//
//   - api.Resources is the HTTP API's JSON shape (cpu, memory, disk, gpus,
//     as node/api/openapi.yaml documents them).
//   - worker.Resources is the runtime's accounting unit; it is signed
//     because worker/ imports nothing of Bourse (DESIGN.md), so it cannot
//     use the market type.

// toAPIResources is r in the HTTP API's JSON shape.
func toAPIResources(r market.Resources) api.Resources {
	return api.Resources{CPU: r.CPU, Memory: r.MemMiB, Disk: r.DiskMiB, GPUs: uint64(r.GPUs)}
}

// fromAPIResources is a job spec's resources as a bid asks for them. The
// spec is validated first (api.JobSpec.Validate bounds GPUs far below 2^32).
func fromAPIResources(r api.Resources) market.Resources {
	return market.Resources{CPU: r.CPU, MemMiB: r.Memory, DiskMiB: r.Disk, GPUs: uint32(min(r.GPUs, 1<<32-1))}
}

// toWorkerResources is r as the worker runtime reserves it. Every market
// bound (market.MaxCPU and friends) fits an int64.
func toWorkerResources(r market.Resources) worker.Resources {
	return worker.Resources{CPU: int64(r.CPU), MemoryMiB: int64(r.MemMiB), DiskMiB: int64(r.DiskMiB), GPUs: int64(r.GPUs)}
}

// fromWorkerResources is what the runtime reports (free capacity), clamped
// at zero per dimension.
func fromWorkerResources(r worker.Resources) market.Resources {
	return market.Resources{
		CPU:     uint64(max(r.CPU, 0)),
		MemMiB:  uint64(max(r.MemoryMiB, 0)),
		DiskMiB: uint64(max(r.DiskMiB, 0)),
		GPUs:    uint32(min(max(r.GPUs, 0), 1<<32-1)),
	}
}

// providerResources is the capacity a provider's config sells.
func providerResources(pc ProviderConfig) market.Resources {
	return market.Resources{CPU: pc.CPU, MemMiB: pc.MemoryMiB, DiskMiB: pc.DiskMiB}
}
