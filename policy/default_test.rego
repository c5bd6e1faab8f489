# Tests of the default policy. Run them with `ztmesh policy check policy/`
# (or `go test ./policy`, which runs them too). Copy and adapt them when you
# change the settings in default.rego.
package ztmesh.authz_test

import data.ztmesh.authz

alice := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"

# A member of zone north in good standing, with current software.
member := {
	"did": alice,
	"role": "vehicle",
	"trust_score": 0.9,
	"zones": ["north"],
	"software_version": "1.4.0",
	"capabilities": [],
	"attested": false,
	"quarantined": false,
}

# req builds an input document: action in zone by subject.
req(action, zone, subject) := {
	"action": action,
	"mesh": "fleet",
	"zone": zone,
	"channel": "maps",
	"topic": sprintf("ztmesh/fleet/zone/%s/maps", [zone]),
	"state": "",
	"key": "",
	"subject": subject,
	"now": "2026-11-27T10:00:00Z",
}

control(action, subject) := object.union(req(action, "_control", subject), {
	"channel": "control",
	"topic": "ztmesh/fleet/control",
})

write(zone, key, subject) := object.union(req("state_write", zone, subject), {"state": "positions", "key": key})

with_subject(fields) := object.union(member, fields)

# decided holds when the policy allows x and gives no reason, or denies it
# with at least one reason: allow and reasons never disagree.
decided(x) if {
	authz.allow with input as x
	count(authz.reasons) == 0 with input as x
}

decided(x) if {
	not authz.allow with input as x
	count(authz.reasons) > 0 with input as x
}

# --- subscribe and relay -------------------------------------------------------

test_member_subscribes_to_own_zone if {
	authz.allow with input as req("subscribe", "north", member)
}

test_wildcard_member_subscribes_anywhere if {
	authz.allow with input as req("subscribe", "south", with_subject({"zones": ["*"]}))
}

test_non_member_may_not_subscribe if {
	x := req("subscribe", "south", member)
	not authz.allow with input as x
	authz.reasons == {`not a member of zone "south" for subscribe`} with input as x
}

test_any_member_subscribes_to_control if {
	authz.allow with input as control("subscribe", with_subject({"trust_score": 0.1, "zones": ["south"]}))
}

test_member_relays_own_zone if {
	authz.allow with input as req("relay", "north", member)
}

test_non_member_may_not_relay if {
	not authz.allow with input as req("relay", "south", member)
}

test_low_trust_member_may_still_subscribe if {
	authz.allow with input as req("subscribe", "north", with_subject({"trust_score": 0.1}))
}

# --- publish -------------------------------------------------------------------

test_member_publishes_in_own_zone if {
	authz.allow with input as req("publish", "north", member)
}

test_publish_needs_minimum_trust if {
	x := req("publish", "north", with_subject({"trust_score": 0.3}))
	not authz.allow with input as x
	authz.reasons == {"trust score 0.3 below minimum 0.5 for publish"} with input as x
}

test_publish_at_exactly_minimum_trust if {
	authz.allow with input as req("publish", "north", with_subject({"trust_score": 0.5}))
}

test_publish_needs_minimum_software_version if {
	x := req("publish", "north", with_subject({"software_version": "0.9.7"}))
	not authz.allow with input as x
	authz.reasons == {"software version 0.9.7 below minimum 1.0.0 for publish"} with input as x
}

test_software_versions_compare_semantically if {
	# As strings "1.10.0" < "1.9.0"; as versions it is newer.
	authz.allow with input as req("publish", "north", with_subject({"software_version": "1.10.0"}))
		with authz.min_software_version as "1.9.0"
	not authz.allow with input as req("publish", "north", with_subject({"software_version": "1.8.12"}))
		with authz.min_software_version as "1.9.0"
}

test_prerelease_is_older_than_release if {
	not authz.allow with input as req("publish", "north", with_subject({"software_version": "1.0.0-rc.1"}))
}

test_publish_refuses_non_semver_version if {
	x := req("publish", "north", with_subject({"software_version": "latest"}))
	not authz.allow with input as x
	authz.reasons == {`software version "latest" is not a semantic version`} with input as x
}

test_non_member_may_not_publish if {
	not authz.allow with input as req("publish", "south", member)
}

test_attestation_required_when_configured if {
	x := req("publish", "north", member)
	not authz.allow with input as x with authz.require_attestation as true
	authz.reasons == {"subject is not attested; publish requires attestation"} with input as x
		with authz.require_attestation as true
	authz.allow with input as req("publish", "north", with_subject({"attested": true}))
		with authz.require_attestation as true
}

# --- the control channel -----------------------------------------------------

test_operator_publishes_on_control if {
	authz.allow with input as control("publish", with_subject({"role": "operator"}))
	authz.allow with input as control("publish", with_subject({"role": "issuer", "zones": ["south"]}))
}

test_vehicle_may_not_publish_on_control if {
	x := control("publish", member)
	not authz.allow with input as x
	authz.reasons == {`role "vehicle" may not publish on the control channel (control roles: issuer, operator)`} with input as x
}

test_low_trust_operator_may_not_publish_on_control if {
	not authz.allow with input as control("publish", with_subject({"role": "operator", "trust_score": 0.2}))
}

test_no_state_on_control if {
	x := object.union(control("state_write", with_subject({"zones": ["*"], "capabilities": ["state-admin"]})), {"key": "k"})
	not authz.allow with input as x
	authz.reasons == {"state_write is not allowed on the control channel"} with input as x
}

# --- shared state ------------------------------------------------------------

test_member_writes_under_own_did if {
	authz.allow with input as write("north", sprintf("%s/position", [alice]), member)
}

test_member_may_not_write_others_keys if {
	x := write("north", "did:key:z6MkOther/position", member)
	not authz.allow with input as x
	count(authz.reasons) == 1 with input as x
}

test_member_may_not_write_the_bare_prefix if {
	not authz.allow with input as write("north", sprintf("%s/", [alice]), member)
}

test_member_may_not_write_a_did_that_extends_its_own if {
	# alice's DID followed by more characters is someone else's prefix.
	not authz.allow with input as write("north", sprintf("%sX/position", [alice]), member)
}

test_state_admin_writes_any_key if {
	authz.allow with input as write("north", "fleet/speed-limit", with_subject({"capabilities": ["state-admin"]}))
}

test_state_write_needs_membership if {
	x := write("south", sprintf("%s/position", [alice]), member)
	not authz.allow with input as x
	authz.reasons == {`not a member of zone "south" for state_write`} with input as x
}

test_state_write_needs_trust if {
	not authz.allow with input as write("north", sprintf("%s/position", [alice]), with_subject({"trust_score": 0.2}))
}

# --- quarantine and unknown actions --------------------------------------------

test_quarantined_may_do_nothing if {
	q := with_subject({"quarantined": true, "role": "operator", "zones": ["*"], "capabilities": ["state-admin"]})
	every x in [
		req("subscribe", "north", q),
		req("relay", "north", q),
		req("publish", "north", q),
		control("subscribe", q),
		control("publish", q),
		write("north", sprintf("%s/position", [alice]), q),
	] {
		not authz.allow with input as x
		sprintf("subject is quarantined: no %s", [x.action]) in authz.reasons with input as x
	}
}

test_unknown_action_denied if {
	x := req("delete", "north", with_subject({"zones": ["*"], "role": "operator"}))
	not authz.allow with input as x
	authz.reasons == {`unknown action "delete"`} with input as x
}

test_empty_input_denied if {
	not authz.allow with input as {}
}

# --- allow and reasons agree ---------------------------------------------------

test_allow_and_reasons_agree if {
	every x in [
		req("subscribe", "north", member),
		req("subscribe", "south", member),
		req("publish", "north", with_subject({"trust_score": 0.1, "software_version": "0.1.0"})),
		req("relay", "south", with_subject({"quarantined": true})),
		control("publish", member),
		control("publish", with_subject({"role": "operator"})),
		write("north", "x", member),
		write("north", sprintf("%s/a", [alice]), member),
		req("fly", "north", member),
	] {
		decided(x)
	}
}
