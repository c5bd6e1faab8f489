// Package policy decides what a ztmesh subject may do: publish on a topic,
// subscribe to it, relay it, or write a key of shared state. Decisions come
// from a Rego policy (OPA, Rego v1 syntax) and are denied by default.
//
// # Using it
//
// A node makes one [Engine] with [New]; it starts with the embedded default
// policy (default.rego, version 0), which a real fleet can start from. For
// each request the node fills an [Input] from the subject's verified
// credential and asks [Engine.Decide]:
//
//	e, err := policy.New(policy.WithLogger(log))
//	...
//	sub := policy.SubjectOf(cred) // the verified credential's claims
//	sub.TrustScore = trust        // the node's own view, if it has one
//	d := e.Decide(ctx, &policy.Input{
//		Action: policy.ActionPublish, Mesh: "fleet", Zone: "north", Channel: "maps",
//		Topic:   "ztmesh/fleet/zone/north/maps",
//		Subject: sub,
//	})
//	if !d.Allow { refuse, citing d.Reasons (wrap ErrDenied) }
//
// Decide never fails: anything but allow = true (a false or undefined allow,
// an evaluation error, a cancelled context, an invalid input) is a denial
// whose Reasons say why.
//
// # The policy
//
// A policy is one or more Rego v1 modules. Package ztmesh.authz must define
// allow (true to allow) and should define reasons, a set of strings that say
// why a request is denied; reasons is evaluated only for denials. Rules may
// not call the network (http.send, net.lookup_ip_addr) nor non-deterministic
// built-ins (rand.intn, uuid.rfc4122), and built-in errors are evaluation
// errors (denials), not silently undefined.
//
// The policy in force is replaced by [Engine.LoadPath] (a .rego file or a
// directory; *_test.rego files are tests and never served), by
// [Engine.ApplyBundle] (a signed bundle, typically from the mesh control
// channel: its issuer must be pinned and its version must be higher than
// that of every bundle applied before) or by [Engine.LoadModules]. Each new
// policy is compiled and its query prepared before one atomic swap puts it in
// force; a policy that does not compile never replaces a working one.
// [RunTests] runs a policy's Rego tests as `opa test` would; [SignBundle] and
// [VerifyBundle] make and check bundles. docs/POLICY.md describes the input
// document and the bundle format.
//
// # Caching and logging
//
// Decisions for an input with a Subject.CredentialID are cached, keyed by the
// action, topic, state, key, credential ID, DID, trust score, attestation and
// quarantine (a credential's other claims cannot change under one ID). An
// entry lives until the earlier of the cache TTL (a minute by default) and
// the credential's expiry, and a policy swap drops the whole cache; so a
// policy that looks at input.now sees a time up to one TTL old. A cache hit
// does not allocate.
//
// Denials, and with [WithLogAllDecisions] every decision, are logged to the
// [WithLogger] logger with event_type "policy_decision", the decision, the
// policy version and an input_digest: the SHA-256 of the input's canonical
// JSON form (the form `ztmesh policy test --input` reads), computed only for
// records that are written.
//
// # What it is not
//
// The package does not verify credentials (package did does), does not know
// about libp2p, topics on the wire or peers, and does not watch files: the
// daemon calls LoadPath when the file changes and ApplyBundle when a bundle
// arrives, and enforces the decisions.
package policy
