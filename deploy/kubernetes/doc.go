// Package kubernetes holds the Kubernetes manifests of the headless
// workstation (inspect-job.yaml); its test parses and checks them.
package kubernetes
