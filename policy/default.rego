# The default ztmesh authorization policy.
#
# Every ztmesh node asks this policy (or the one that replaces it: a file given
# to ztmeshd, or a signed policy bundle from the mesh control channel) before it
# publishes, accepts a subscriber, relays a message or writes shared state. It
# is a starting point for a real fleet: change the settings below, keep the
# tests in default_test.rego passing (`ztmesh policy check DIR`), then sign it
# (`ztmesh policy sign`).
#
# The input document (docs/POLICY.md has it field by field, with examples):
#
#   input.action   "publish", "subscribe", "state_write" or "relay"
#   input.mesh     the mesh name
#   input.zone     the zone, or "_control" for the mesh control channel
#   input.channel  the channel in the zone ("control" on the control channel)
#   input.topic    ztmesh/<mesh>/zone/<zone>/<channel> or ztmesh/<mesh>/control
#   input.state    state_write: the shared-state (CRDT) name, else ""
#   input.key      state_write: the key being written, else ""
#   input.subject  who is asking, from their verified credential and the node's
#                  view of them: did, role, trust_score (0..1), zones ("*" is
#                  every zone), software_version (semantic), capabilities,
#                  attested, quarantined
#   input.now      the time of the decision, RFC 3339 (decisions are cached for
#                  up to a minute, so a rule on the time of day is that stale)
#
# How a decision is made: a request is allowed only when `allow` is true. Each
# `allow` rule grants one action when every one of its conditions holds;
# anything no rule grants is denied (so is any evaluation error). For a denial
# the node also reads `reasons`: each `reasons` rule names one condition that
# failed, so a denial says why. The tests keep the two in step (a denial always
# has a reason, an allowed request none).
package ztmesh.authz

# --- Settings: change these to fit your fleet. -------------------------------

# The lowest trust score that may publish or write shared state.
min_trust_score := 0.5

# The oldest software that may publish or write shared state, compared as
# semantic versions (1.10.0 is newer than 1.9.0).
min_software_version := "1.0.0"

# Roles that may publish on the mesh control channel (policy bundles,
# revocation lists, quarantine orders). Every member may listen to it.
control_roles := {"issuer", "operator"}

# The capability that lets a subject write any key of shared state; without it
# a subject writes only keys under its own DID ("<did>/...").
state_admin_capability := "state-admin"

# Set to true once your nodes have hardware attestation: publishing and writing
# state then need input.subject.attested.
require_attestation := false

# --- Fixed names ---------------------------------------------------------------

# The zone the node gives the mesh control topic ztmesh/<mesh>/control. Zone
# names in credentials never start with "_", so no real zone is taken for it.
control_zone := "_control"

actions := {"publish", "subscribe", "state_write", "relay"}

# --- What is allowed ---------------------------------------------------------

default allow := false

# Subscribe: members of the zone; every member of the mesh to the control channel.
allow if {
	input.action == "subscribe"
	in_good_standing
	may_join_zone
}

# Relay (forward a zone's messages for others): the same members.
allow if {
	input.action == "relay"
	in_good_standing
	may_join_zone
}

# Publish: members of the zone with enough trust and current software. Only
# control roles publish on the control channel.
allow if {
	input.action == "publish"
	in_good_standing
	may_join_zone
	trusted_enough
	software_current
	attested_if_required
	may_publish_here
}

# Write shared state: members of the zone (never the control channel) with
# enough trust and current software, to keys under their own DID unless they
# hold the state-admin capability.
allow if {
	input.action == "state_write"
	in_good_standing
	not is_control
	zone_member
	trusted_enough
	software_current
	attested_if_required
	may_write_key
}

# --- Conditions ----------------------------------------------------------------

# A quarantined subject may do nothing at all.
in_good_standing if input.subject.quarantined == false

is_control if input.zone == control_zone

zone_member if input.zone in input.subject.zones

zone_member if "*" in input.subject.zones

may_join_zone if is_control

may_join_zone if zone_member

trusted_enough if input.subject.trust_score >= min_trust_score

software_current if {
	semver.is_valid(input.subject.software_version)
	semver.compare(input.subject.software_version, min_software_version) >= 0
}

attested_if_required if not require_attestation

attested_if_required if input.subject.attested == true

may_publish_here if not is_control

may_publish_here if input.subject.role in control_roles

own_key_prefix := concat("", [input.subject.did, "/"])

may_write_key if state_admin_capability in input.subject.capabilities

may_write_key if {
	startswith(input.key, own_key_prefix)
	count(input.key) > count(own_key_prefix)
}

# --- Why a request is denied ---------------------------------------------------

reasons contains sprintf("unknown action %q", [input.action]) if not input.action in actions

reasons contains sprintf("subject is quarantined: no %s", [input.action]) if not in_good_standing

reasons contains sprintf("not a member of zone %q for %s", [input.zone, input.action]) if {
	input.action in {"publish", "subscribe", "relay"}
	not may_join_zone
}

reasons contains sprintf("not a member of zone %q for state_write", [input.zone]) if {
	input.action == "state_write"
	not is_control
	not zone_member
}

reasons contains "state_write is not allowed on the control channel" if {
	input.action == "state_write"
	is_control
}

reasons contains msg if {
	input.action in {"publish", "state_write"}
	not trusted_enough
	msg := sprintf("trust score %v below minimum %v for %s", [input.subject.trust_score, min_trust_score, input.action])
}

reasons contains msg if {
	input.action in {"publish", "state_write"}
	not semver.is_valid(input.subject.software_version)
	msg := sprintf("software version %q is not a semantic version", [input.subject.software_version])
}

reasons contains msg if {
	input.action in {"publish", "state_write"}
	semver.is_valid(input.subject.software_version)
	semver.compare(input.subject.software_version, min_software_version) < 0
	msg := sprintf("software version %s below minimum %s for %s", [input.subject.software_version, min_software_version, input.action])
}

reasons contains sprintf("subject is not attested; %s requires attestation", [input.action]) if {
	input.action in {"publish", "state_write"}
	not attested_if_required
}

reasons contains msg if {
	input.action == "publish"
	not may_publish_here
	msg := sprintf("role %q may not publish on the control channel (control roles: %s)", [input.subject.role, concat(", ", control_roles)])
}

reasons contains msg if {
	input.action == "state_write"
	not may_write_key
	msg := sprintf("key %q is not under %s and the subject lacks capability %q", [input.key, own_key_prefix, state_admin_capability])
}
