// Package docker is the worker.Executor backend that runs jobs in Docker
// containers through the Docker Engine API.
package docker
