package pubsub

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ztmesh/ztmesh/internal/wire"
)

// Control message types.
const (
	controlRevocations = "revocations"
	controlPolicy      = "policy"
	controlReference   = "attest-reference"
	controlEvidence    = "evidence"
	controlMember      = "member"
	controlQuarantine  = "quarantine"
)

// controlMessage is the data of a control-topic message:
// {"v":1,"type":"revocations"|"policy"|...,"token":"<base64>"}.
type controlMessage struct {
	V     int    `json:"v"`
	Type  string `json:"type"`
	Token []byte `json:"token"`
}

func decodeControl(data []byte) (*controlMessage, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("control message of %d bytes", len(data))
	}
	var cm controlMessage
	if err := wire.DecodeStrict(data, &cm); err != nil {
		return nil, err
	}
	known := cm.Type == controlRevocations || cm.Type == controlPolicy || cm.Type == controlReference ||
		cm.Type == controlEvidence || cm.Type == controlMember || cm.Type == controlQuarantine
	if cm.V != 1 || !known || len(cm.Token) == 0 {
		return nil, fmt.Errorf("control message v%d type %q", cm.V, truncate(cm.Type))
	}
	return &cm, nil
}

// PublishRevocations publishes a signed revocation list on the control
// topic. It is applied locally first (the validator runs on our own
// messages too); an invalid or stale list is refused with its reason.
func (m *Mesh) PublishRevocations(ctx context.Context, token []byte) error {
	return m.publishControl(ctx, controlRevocations, token)
}

// PublishPolicyBundle publishes a signed policy bundle on the control topic.
func (m *Mesh) PublishPolicyBundle(ctx context.Context, token []byte) error {
	return m.publishControl(ctx, controlPolicy, token)
}

// PublishReference publishes signed attestation reference values on the
// control topic.
func (m *Mesh) PublishReference(ctx context.Context, token []byte) error {
	return m.publishControl(ctx, controlReference, token)
}

// ControlPeers is how many peers GossipSub counts on the control topic: a
// publication before there is one reaches nobody.
func (m *Mesh) ControlPeers() int {
	return len(m.ps.ListPeers(ControlTopic(m.cfg.Mesh).String()))
}

// PublishEvidence publishes this node's signed attestation evidence on the
// control topic. Every node verifies it against the reference values it
// has in force.
func (m *Mesh) PublishEvidence(ctx context.Context, token []byte) error {
	return m.publishControl(ctx, controlEvidence, token)
}

// PublishQuarantine publishes a signed quarantine announcement on the
// control topic. Every node re-judges the evidence inside it.
func (m *Mesh) PublishQuarantine(ctx context.Context, token []byte) error {
	return m.publishControl(ctx, controlQuarantine, token)
}

func (m *Mesh) publishControl(ctx context.Context, typ string, token []byte) error {
	data, err := json.Marshal(controlMessage{V: 1, Type: typ, Token: token})
	if err != nil {
		return err
	}
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%s of %d bytes is too large for the control topic", typ, len(token))
	}
	// Apply first, so the caller learns why content is refused (GossipSub
	// only says "validation failed"); the local validator then sees it as
	// already in force, which is why the publish below skips validation.
	// Our own member announcement is the exception: there is nothing to
	// apply to ourselves (the node refuses to take itself into its own
	// directory, which used to make every announcement fail right here).
	// Content already in force here is published all the same: this node
	// may hold it from its own file (the daemon watching the revocation
	// list that `cred revoke --publish` has just written reloads it within
	// a second, and the demo lost that race), while the mesh lacks it;
	// nodes that hold it already Ignore the copy.
	if typ != controlMember {
		if _, err := m.applyControl(m.self, &controlMessage{Type: typ, Token: token}); err != nil {
			return err
		}
	}
	m.mu.RLock()
	j := m.joined[ControlTopic(m.cfg.Mesh).String()]
	m.mu.RUnlock()
	if err := j.t.Publish(ctx, data); err != nil {
		return err
	}
	m.relay(typ, token, m.self)
	return nil
}
