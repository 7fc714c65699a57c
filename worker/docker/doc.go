// Package docker is the worker.Executor that runs jobs in Docker
// containers through the Docker Engine API (github.com/docker/docker
// client, API version negotiated, so old daemons work).
//
// Available pings the daemon; without one the backend reports
// worker.ErrUnavailable and the provider simply does not offer "docker".
//
// The image is Job.Image, which must already be present locally (pulling
// only if Config.AllowPull), or an image tarball in Job.Payload (as written
// by `docker save`), which is loaded first. Every container runs with:
// network "none" (Config.Network), a read-only root file system, all
// capabilities dropped, no-new-privileges, not privileged, user
// 65534:65534 (Config.User), NanoCPUs from Limits.CPU, memory from
// Limits.MemoryMiB with no swap, a pids limit (Config.PidsLimit), a tmpfs
// at /tmp and the job's output directory bind-mounted at /out
// (BOURSE_OUTPUT=/out). Its output is attached before it starts, so nothing
// is lost; a container the kernel OOM-kills ends StateOOM. On every path —
// success, failure, timeout, cancel, Close — the container is killed if
// running and removed.
package docker
