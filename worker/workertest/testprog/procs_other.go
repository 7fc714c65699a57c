//go:build !wasip1

package main

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// escape starts a copy of itself in a new session (out of the job's
// process group) that sleeps forever, prints its pid and returns.
func escape() error {
	cmd := exec.Command("/proc/self/exe", "sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	println(os.Stdout, "escaped", strconv.Itoa(cmd.Process.Pid))
	return nil
}

// forkbomb starts up to n sleeping copies of itself and prints how many
// started.
func forkbomb(n int) {
	started := 0
	for range n {
		cmd := exec.Command("/proc/self/exe", "sleep")
		if err := cmd.Start(); err != nil {
			break
		}
		started++
	}
	println(os.Stdout, "started", strconv.Itoa(started))
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
