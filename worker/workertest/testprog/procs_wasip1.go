//go:build wasip1

package main

import (
	"errors"
	"os"
)

var errNoProcs = errors.New("no processes in wasip1")

func escape() error { return errNoProcs }

func forkbomb(int) { println(os.Stdout, "started 0") }

func sleepForever() { select {} }
