// Package docker is the worker.Executor that runs jobs in Docker
// containers through the Docker Engine API (github.com/docker/docker
// client, API version negotiated, so old daemons work).
//
// Available pings the daemon; without one the backend reports
// worker.ErrUnavailable and the provider simply does not offer "docker".
//
// Images are named by content and containers created by image ID, never
// by tag. An image tarball in Job.Payload (as written by `docker save`)
// must come with its image ID as Job.Image ("sha256:<config digest>"),
// hold that one image only, and is loaded with every name it carries
// stripped, so it cannot move a tag other jobs name. Without a tarball,
// Job.Image is an image ID or a local name (resolved to its ID), or a
// name@sha256:<digest> reference, pulled from its registry only if
// Config.AllowPull (tags are never pulled). Every container runs with:
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
