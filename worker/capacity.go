package worker

import (
	"fmt"
	"sync"
)

// Capacity tracks what a provider sold: a total, and a reservation per
// running job. It refuses a reservation that does not fit in what is free.
// Safe for concurrent use.
type Capacity struct {
	mu       sync.Mutex
	total    Resources
	reserved Resources
	jobs     map[JobID]Resources
}

// Load is a snapshot of a provider's capacity, for its offers.
type Load struct {
	Total    Resources `json:"total"`
	Reserved Resources `json:"reserved"`
	Free     Resources `json:"free"`
	Running  int       `json:"running"`
}

// Utilisation returns the busiest dimension's reserved share of the total,
// in [0, 1] (0 when nothing was sold).
func (l Load) Utilisation() float64 {
	u := 0.0
	for _, p := range [][2]int64{
		{l.Reserved.CPU, l.Total.CPU}, {l.Reserved.MemoryMiB, l.Total.MemoryMiB},
		{l.Reserved.DiskMiB, l.Total.DiskMiB}, {l.Reserved.GPUs, l.Total.GPUs},
	} {
		if p[1] > 0 {
			u = max(u, float64(p[0])/float64(p[1]))
		}
	}
	return u
}

// NewCapacity returns a tracker with nothing reserved.
func NewCapacity(total Resources) (*Capacity, error) {
	if err := total.Validate(); err != nil {
		return nil, fmt.Errorf("new capacity: %w", err)
	}
	return &Capacity{total: total, jobs: make(map[JobID]Resources)}, nil
}

// Reserve sets r aside for job id. It fails with ErrInsufficientCapacity
// (saying which dimension is short) or ErrDuplicateJob.
func (c *Capacity) Reserve(id JobID, r Resources) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("reserve for job %s: %w", id.Short(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.jobs[id]; ok {
		return fmt.Errorf("reserve for job %s: %w", id.Short(), ErrDuplicateJob)
	}
	if ok, why := r.Fits(c.total.Sub(c.reserved)); !ok {
		return fmt.Errorf("reserve for job %s: %w: %s", id.Short(), ErrInsufficientCapacity, why)
	}
	c.jobs[id] = r
	c.reserved = c.reserved.Add(r)
	return nil
}

// Release gives job id's reservation back; releasing twice is a no-op.
func (c *Capacity) Release(id JobID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.jobs[id]; ok {
		c.reserved = c.reserved.Sub(r)
		delete(c.jobs, id)
	}
}

// Load returns the current totals.
func (c *Capacity) Load() Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Load{Total: c.total, Reserved: c.reserved, Free: c.total.Sub(c.reserved), Running: len(c.jobs)}
}
