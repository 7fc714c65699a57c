// Package deploy holds no Go code: it is the home of the deployment files
// (a hardened systemd unit, the container image, a compose file for one
// node per host, Kubernetes manifests) and of the tests that check them
// offline. See README.md.
package deploy
