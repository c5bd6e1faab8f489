// Package simulations runs many real ztmesh nodes in one process to measure
// the mesh at fleet scale and under attack. Nodes are complete node.Node
// values (credentials, handshake, OPA policy, GossipSub, sealing, CRDT
// state) whose libp2p hosts sit on go-libp2p's mocknet: in-memory links with
// a configured latency and bandwidth. Only the transport is simulated.
//
// Scenarios are YAML files in simulations/scenarios; `ztmesh-sim run` runs
// one and writes a Markdown report with PNG plots. Every figure is paired
// with a baseline from the same run: the same topology and load over plain
// go-libp2p-pubsub with default settings.
package simulations
