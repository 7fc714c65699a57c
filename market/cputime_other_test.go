//go:build !unix

package market

import "time"

func processCPU() time.Duration { return 0 }
