package market

import (
	"fmt"
	"math/bits"
)

// Static bounds every offer and bid is held to by Validate. They keep every
// product that pricing and load scoring compute inside 64 bits.
const (
	MaxCPU         = 1 << 20 // millicores (about 1,048 cores)
	MaxMemMiB      = 1 << 24 // 16 TiB
	MaxDiskMiB     = 1 << 30 // 1 PiB
	MaxGPUs        = 64
	MaxGPUModelLen = 64
)

// Resources is an amount of compute: what an offer sells or a bid needs.
// GPUModel names the model of an offer's GPUs; on a bid it is a requirement
// ("" accepts any model) and may only be set when GPUs > 0.
type Resources struct {
	CPU      uint64 `cbor:"1,keyasint,omitempty" json:"cpu_millicores"`
	MemMiB   uint64 `cbor:"2,keyasint,omitempty" json:"memory_mib"`
	DiskMiB  uint64 `cbor:"3,keyasint,omitempty" json:"disk_mib"`
	GPUs     uint32 `cbor:"4,keyasint,omitempty" json:"gpus,omitempty"`
	GPUModel string `cbor:"5,keyasint,omitempty" json:"gpu_model,omitempty"`
}

// IsZero reports whether r holds no resources at all.
func (r Resources) IsZero() bool {
	return r.CPU == 0 && r.MemMiB == 0 && r.DiskMiB == 0 && r.GPUs == 0
}

// Add returns r+o per dimension (GPUModel is kept from r), or an error if a
// dimension overflows.
func (r Resources) Add(o Resources) (Resources, error) {
	var c1, c2, c3 uint64
	out := r
	out.CPU, c1 = bits.Add64(r.CPU, o.CPU, 0)
	out.MemMiB, c2 = bits.Add64(r.MemMiB, o.MemMiB, 0)
	out.DiskMiB, c3 = bits.Add64(r.DiskMiB, o.DiskMiB, 0)
	g := uint64(r.GPUs) + uint64(o.GPUs)
	if c1|c2|c3 != 0 || g > 1<<32-1 {
		return Resources{}, fmt.Errorf("add resources %v + %v: %w", r, o, ErrOverflow)
	}
	out.GPUs = uint32(g)
	return out, nil
}

// Sub returns r-o per dimension, or an error if o exceeds r anywhere.
func (r Resources) Sub(o Resources) (Resources, error) {
	if !o.within(r) {
		return Resources{}, fmt.Errorf("sub resources %v - %v: %w", r, o, ErrOverflow)
	}
	out := r
	out.CPU -= o.CPU
	out.MemMiB -= o.MemMiB
	out.DiskMiB -= o.DiskMiB
	out.GPUs -= o.GPUs
	return out, nil
}

// within reports whether every dimension of r is at most the same
// dimension of limit (GPU models are not compared).
func (r Resources) within(limit Resources) bool {
	return r.CPU <= limit.CPU && r.MemMiB <= limit.MemMiB && r.DiskMiB <= limit.DiskMiB && r.GPUs <= limit.GPUs
}

// Available is what an offer can still take: total capacity minus what is
// reserved, clamped at zero per dimension (a chain that reserved more than
// an offer now declares leaves nothing free, it is not an error).
func Available(total, reserved Resources) Resources {
	out := total
	out.CPU = subClamp(total.CPU, reserved.CPU)
	out.MemMiB = subClamp(total.MemMiB, reserved.MemMiB)
	out.DiskMiB = subClamp(total.DiskMiB, reserved.DiskMiB)
	out.GPUs = uint32(subClamp(uint64(total.GPUs), uint64(reserved.GPUs)))
	return out
}

func subClamp(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}

// Fits reports whether need fits into avail: every dimension, and the GPU
// model when need asks for GPUs of a given model.
func Fits(need, avail Resources) bool {
	if !need.within(avail) {
		return false
	}
	return need.GPUs == 0 || need.GPUModel == "" || need.GPUModel == avail.GPUModel
}

func (r Resources) String() string {
	s := fmt.Sprintf("cpu=%dm mem=%dMiB disk=%dMiB", r.CPU, r.MemMiB, r.DiskMiB)
	if r.GPUs > 0 {
		s += fmt.Sprintf(" gpu=%d", r.GPUs)
		if r.GPUModel != "" {
			s += "(" + r.GPUModel + ")"
		}
	}
	return s
}

func (r Resources) validate(field string, needSome bool) error {
	switch {
	case r.CPU > MaxCPU:
		return invalid(CodeResources, field+".cpu", "%d millicores exceeds %d", r.CPU, MaxCPU)
	case r.MemMiB > MaxMemMiB:
		return invalid(CodeResources, field+".mem", "%d MiB exceeds %d", r.MemMiB, MaxMemMiB)
	case r.DiskMiB > MaxDiskMiB:
		return invalid(CodeResources, field+".disk", "%d MiB exceeds %d", r.DiskMiB, MaxDiskMiB)
	case r.GPUs > MaxGPUs:
		return invalid(CodeResources, field+".gpus", "%d exceeds %d", r.GPUs, MaxGPUs)
	case len(r.GPUModel) > MaxGPUModelLen:
		return invalid(CodeResources, field+".gpu_model", "%d bytes exceeds %d", len(r.GPUModel), MaxGPUModelLen)
	case r.GPUModel != "" && r.GPUs == 0:
		return invalid(CodeResources, field+".gpu_model", "model %q without gpus", r.GPUModel)
	case r.GPUModel != "" && !isToken(r.GPUModel):
		return invalid(CodeResources, field+".gpu_model", "%q is not [a-z0-9._-]+", r.GPUModel)
	case needSome && (r.CPU == 0 || r.MemMiB == 0):
		return invalid(CodeResources, field, "cpu and memory must be positive, got %v", r)
	}
	return nil
}
