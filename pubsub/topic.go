package pubsub

import (
	"fmt"
	"regexp"
	"strings"
)

// Topic names. A zone topic is ztmesh/<mesh>/zone/<zone>/<channel>; each
// mesh has one control topic, ztmesh/<mesh>/control; each zone has a member
// topic, ztmesh/<mesh>/zone/<zone>/_members, for the announcements of its
// members (a channel name cannot start with '_', so no channel takes it).
const (
	topicPrefix = "ztmesh/"
	// ControlZone and ControlChannel are the Zone and Channel of the control
	// topic in policy inputs.
	ControlZone    = "_control"
	ControlChannel = "control"
	// MembersChannel is the Channel of a zone's member topic.
	MembersChannel = "_members"
	maxSegment     = 64
)

var segmentRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Topic is a parsed, validated topic name.
type Topic struct {
	Mesh    string
	Zone    string // ControlZone for the control topic
	Channel string // ControlChannel for the control topic

	name string // the GossipSub name, built once: it is asked for per message
}

// ZoneTopic returns the topic of a zone channel, validating every segment.
func ZoneTopic(mesh, zone, channel string) (Topic, error) {
	for _, s := range []struct{ what, v string }{{"mesh", mesh}, {"zone", zone}, {"channel", channel}} {
		if !validSegment(s.v) {
			return Topic{}, fmt.Errorf("%s name %q: use 1-%d of a-z, 0-9, '-', '_', starting with a letter or digit", s.what, truncate(s.v), maxSegment)
		}
	}
	t := Topic{Mesh: mesh, Zone: zone, Channel: channel}
	t.name = t.build()
	return t, nil
}

// ControlTopic returns the control topic of a mesh.
func ControlTopic(mesh string) Topic {
	t := Topic{Mesh: mesh, Zone: ControlZone, Channel: ControlChannel}
	t.name = t.build()
	return t
}

// MembersTopic returns the member topic of a zone.
func MembersTopic(mesh, zone string) (Topic, error) {
	t, err := ZoneTopic(mesh, zone, "members")
	if err != nil {
		return Topic{}, err
	}
	t.Channel = MembersChannel
	t.name = t.build()
	return t, nil
}

// IsMembers reports whether t is a zone's member topic.
func (t Topic) IsMembers() bool { return t.Channel == MembersChannel }

// IsControl reports whether t is a control topic.
func (t Topic) IsControl() bool { return t.Zone == ControlZone }

// String returns the GossipSub topic name.
func (t Topic) String() string {
	if t.name != "" {
		return t.name
	}
	return t.build()
}

func (t Topic) build() string {
	if t.IsControl() {
		return topicPrefix + t.Mesh + "/control"
	}
	return topicPrefix + t.Mesh + "/zone/" + t.Zone + "/" + t.Channel
}

// ParseTopic parses a GossipSub topic name; anything that is not a ztmesh
// zone or control topic is an error.
func ParseTopic(s string) (Topic, error) {
	if len(s) > 4*maxSegment || !strings.HasPrefix(s, topicPrefix) {
		return Topic{}, fmt.Errorf("not a ztmesh topic: %q", truncate(s))
	}
	parts := strings.Split(strings.TrimPrefix(s, topicPrefix), "/")
	switch {
	case len(parts) == 2 && parts[1] == "control" && validSegment(parts[0]):
		return ControlTopic(parts[0]), nil
	case len(parts) == 4 && parts[1] == "zone" && parts[3] == MembersChannel:
		return MembersTopic(parts[0], parts[2])
	case len(parts) == 4 && parts[1] == "zone":
		return ZoneTopic(parts[0], parts[2], parts[3])
	}
	return Topic{}, fmt.Errorf("not a ztmesh topic: %q", truncate(s))
}

func validSegment(s string) bool { return len(s) <= maxSegment && segmentRE.MatchString(s) }

func truncate(s string) string {
	if len(s) > maxSegment {
		return s[:maxSegment] + "..."
	}
	return s
}
