// Package crdt replicates shared state between the nodes of a zone.
package crdt
