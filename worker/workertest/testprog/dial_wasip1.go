//go:build wasip1

package main

import "syscall"

// dial tries to open a TCP socket the only way a WASI preview 1 guest can.
func dial(string) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	syscall.Close(fd)
	return nil
}
