//! Tests of event parsing: Clerk's published payloads and malformed ones.

use super::*;
use crate::{clerk::EmailAddress, store::Profile};

fn parse(body: &[u8]) -> Result<Event, EventError> {
    Event::parse(body)
}

const USER_CREATED: &str = r#"{
  "data": {
    "birthday": "",
    "created_at": 1654012591514,
    "email_addresses": [
      {
        "email_address": "example@example.org",
        "id": "idn_29w83yL7CwVlJXylYLxcslromF1",
        "linked_to": [],
        "object": "email_address",
        "verification": {"status": "verified", "strategy": "ticket"}
      }
    ],
    "external_accounts": [],
    "external_id": "567772",
    "first_name": "Example",
    "gender": "",
    "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
    "image_url": "https://img.clerk.com/xxxxxx",
    "last_name": "Example",
    "last_sign_in_at": 1654012591514,
    "object": "user",
    "password_enabled": true,
    "phone_numbers": [],
    "primary_email_address_id": "idn_29w83yL7CwVlJXylYLxcslromF1",
    "primary_phone_number_id": null,
    "primary_web3_wallet_id": null,
    "private_metadata": {},
    "profile_image_url": "https://www.gravatar.com/avatar?d=mp",
    "public_metadata": {},
    "two_factor_enabled": false,
    "unsafe_metadata": {},
    "updated_at": 1654012591835,
    "username": null,
    "web3_wallets": []
  },
  "instance_id": "ins_123",
  "object": "event",
  "timestamp": 1654012591835,
  "type": "user.created"
}"#;

const USER_UPDATED: &str = r#"{
  "data": {
    "id": "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "object": "user",
    "username": "johndoe",
    "first_name": "John",
    "last_name": "Doe Updated",
    "image_url": "https://img.clerk.com/abc",
    "has_image": true,
    "primary_email_address_id": "idn_2",
    "primary_phone_number_id": null,
    "email_addresses": [
      {"id": "idn_1", "object": "email_address", "email_address": "old@example.com",
       "reserved": false, "verification": null, "linked_to": [],
       "created_at": 1716883200000, "updated_at": 1716883200000},
      {"id": "idn_2", "object": "email_address", "email_address": "john@example.com",
       "reserved": false,
       "verification": {"object": "verification_otp", "status": "verified",
                        "strategy": "email_code", "attempts": 1, "expire_at": null},
       "linked_to": [{"type": "oauth_google", "id": "idn_g"}],
       "matches_sso_connection": false,
       "created_at": 1716883300000, "updated_at": 1716883300000}
    ],
    "public_metadata": {"department": "engineering"},
    "two_factor_enabled": true,
    "totp_enabled": true,
    "mfa_enabled_at": 1716883200000,
    "last_sign_in_at": 1716883400000,
    "external_id": null,
    "created_at": 1716883200000,
    "updated_at": 1716883500000
  },
  "event_attributes": {"http_request": {"client_ip": "192.168.1.100", "user_agent": "Mozilla/5.0"}},
  "instance_id": "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
  "object": "event",
  "timestamp": 1716883500000,
  "type": "user.updated"
}"#;

const USER_DELETED: &str = r#"{"event_attributes":{"http_request":{"client_ip":"192.168.1.100","user_agent":"Mozilla/5.0"}},
  "object":"event","type":"user.deleted","instance_id":"ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S","timestamp":1716883200,
  "data":{"object":"user","id":"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S","deleted":true,"external_id":"ex_123456789"}}"#;

fn invalid(body: &str) -> EventError {
    let err = parse(body.as_bytes()).unwrap_err();
    assert_eq!(err.code(), "invalid_event", "{body}: {err}");
    err
}

#[test]
fn user_created() {
    let event = parse(USER_CREATED.as_bytes()).unwrap();
    assert_eq!(event.event_type, "user.created");
    assert_eq!(event.timestamp_ms, Some(1_654_012_591_835));
    assert_eq!(event.instance_id.as_deref(), Some("ins_123"));
    let Change::UserUpserted { user, created } = event.change else {
        panic!("expected an upsert");
    };
    assert!(created);
    assert_eq!(user.id, "user_29w83sxmDNGwOuEthce5gg56FcC");
    assert_eq!(user.primary_email(), Some("example@example.org"));
    assert_eq!(user.first_name.as_deref(), Some("Example"));
    assert_eq!(user.last_name.as_deref(), Some("Example"));
    assert_eq!(
        user.image_url.as_deref(),
        Some("https://img.clerk.com/xxxxxx")
    );
    assert_eq!(user.external_id.as_deref(), Some("567772"));
    assert_eq!(user.created_at, Some(1_654_012_591_514));
    assert_eq!(user.updated_at, 1_654_012_591_835);
    assert_eq!(
        user.profile(),
        Profile::new()
            .with_email("example@example.org")
            .with_names(Some("Example".into()), Some("Example".into()))
            .with_image_url("https://img.clerk.com/xxxxxx")
    );
}

#[test]
fn user_updated_picks_the_primary_address() {
    let event = Event::parse(USER_UPDATED.as_bytes()).unwrap();
    let Change::UserUpserted { user, created } = event.change else {
        panic!("expected an upsert");
    };
    assert!(!created);
    assert_eq!(user.email_addresses.len(), 2);
    assert_eq!(user.primary_email(), Some("john@example.com"));
    assert_eq!(user.last_name.as_deref(), Some("Doe Updated"));
    assert_eq!(user.external_id, None);
    assert_eq!(user.updated_at, 1_716_883_500_000);
}

#[test]
fn user_deleted() {
    let event = parse(USER_DELETED.as_bytes()).unwrap();
    assert_eq!(event.event_type, "user.deleted");
    // Passed through as sent, even though this example uses seconds.
    assert_eq!(event.timestamp_ms, Some(1_716_883_200));
    assert_eq!(
        event.change,
        Change::UserDeleted {
            clerk_id: "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S".to_owned()
        }
    );
}

#[test]
fn deleted_needs_a_user_id() {
    for data in [
        r#"{"object":"user","id":"org_2g7np7Hrk0SN6kj5EDMLDaKNL0S","deleted":true}"#,
        r#"{"object":"user","id":"user_","deleted":true}"#,
        r#"{"object":"user","id":"","deleted":true}"#,
        r#"{"object":"user","id":null,"deleted":true}"#,
        r#"{"object":"user","id":42,"deleted":true}"#,
        r#"{"object":"user","deleted":true}"#,
        "null",
        "[]",
    ] {
        invalid(&format!(r#"{{"type":"user.deleted","data":{data}}}"#));
    }
    invalid(r#"{"type":"user.deleted"}"#);
}

#[test]
fn upserts_need_a_user_id() {
    for kind in ["user.created", "user.updated"] {
        for data in [
            r#"{"first_name":"A"}"#,
            r#"{"id":null}"#,
            r#"{"id":"sess_123"}"#,
            r#"{"id":7}"#,
            r#""user_123""#,
        ] {
            invalid(&format!(r#"{{"type":"{kind}","data":{data}}}"#));
        }
        invalid(&format!(r#"{{"type":"{kind}"}}"#));
    }
}

#[test]
fn other_event_types_pass_through() {
    let bodies = [
        (
            "session.created",
            r#"{"type":"session.created","object":"event","data":{"id":"sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9","user_id":"user_1","status":"active"}}"#,
        ),
        (
            "session.pending",
            r#"{"type":"session.pending","data":null}"#,
        ),
        (
            "organizationInvitation.created",
            r#"{"type":"organizationInvitation.created","data":{"id":"orginv_1","status":"pending"}}"#,
        ),
        (
            "email.created",
            r#"{"type":"email.created","data":"not an object"}"#,
        ),
        ("role.deleted", r#"{"type":"role.deleted","data":null}"#),
        (
            "waitlistEntry.created",
            r#"{"type":"waitlistEntry.created"}"#,
        ),
        ("user.banned", r#"{"type":"user.banned","data":[1,2,3]}"#),
    ];
    for (kind, body) in bodies {
        let event = parse(body.as_bytes()).unwrap();
        assert_eq!(event.event_type, kind);
        assert_eq!(
            event.change,
            Change::Other {
                event_type: kind.to_owned()
            }
        );
        assert_eq!(event.timestamp_ms, None);
        assert_eq!(event.instance_id, None);
    }
}

#[test]
fn minimal_user_only_needs_an_id_and_a_version() {
    let event =
        parse(br#"{"type":"user.created","data":{"id":"user_123","updated_at":5}}"#).unwrap();
    let Change::UserUpserted { user, .. } = &event.change else {
        panic!("expected an upsert");
    };
    assert_eq!(
        *user,
        ClerkUser {
            id: "user_123".to_owned(),
            updated_at: 5,
            ..ClerkUser::default()
        }
    );
    assert_eq!(user.primary_email(), None);
    assert!(user.profile().is_empty());
    assert_eq!(event.change.clerk_id(), Some("user_123"));
}

#[test]
fn upserts_need_an_integer_updated_at() {
    for kind in ["user.created", "user.updated"] {
        for version in [
            "",
            r#","updated_at":null"#,
            r#","updated_at":"1""#,
            r#","updated_at":1.5"#,
        ] {
            let err = invalid(&format!(
                r#"{{"type":"{kind}","data":{{"id":"user_1"{version}}}}}"#
            ));
            assert!(err.to_string().contains("updated_at"), "{err}");
        }
    }
}

#[test]
fn nulls_everywhere() {
    let body = r#"{
      "type": "user.updated", "object": null, "timestamp": null, "instance_id": null,
      "data": {
        "id": "user_2RfWKJREkjKbHZy0Wqa5qrHeAnb",
        "primary_email_address_id": null,
        "email_addresses": null,
        "first_name": null, "last_name": null, "image_url": null,
        "created_at": null, "updated_at": 1, "external_id": null,
        "username": null, "public_metadata": null
      }
    }"#;
    let event = parse(body.as_bytes()).unwrap();
    assert_eq!(event.timestamp_ms, None);
    assert_eq!(event.instance_id, None);
    let Change::UserUpserted { user, created } = event.change else {
        panic!("expected an upsert");
    };
    assert!(!created);
    assert_eq!(user.id, "user_2RfWKJREkjKbHZy0Wqa5qrHeAnb");
    assert!(user.email_addresses.is_empty());
    assert_eq!(user.primary_email(), None);

    let entries = r#"[{"id": null, "email_address": null}, {"email_address": "a@b.c"}, {}]"#;
    let user: ClerkUser = serde_json::from_str(&format!(
        r#"{{"id":"user_1","updated_at":1,"primary_email_address_id":"idn_1","email_addresses":{entries}}}"#
    ))
    .unwrap();
    assert_eq!(user.email_addresses.len(), 3);
    assert_eq!(user.email_addresses[0], EmailAddress::default());
    assert_eq!(user.primary_email(), None);
}

#[test]
fn unknown_fields_are_ignored() {
    let body = r#"{"type":"user.created","brand_new_envelope_field":{"x":[1]},
      "data":{"id":"user_1","updated_at":1,"future_field":true,"nested":{"deep":[null]},
              "email_addresses":[{"id":"idn_1","email_address":"x@y.z","new_thing":1}],
              "primary_email_address_id":"idn_1"}}"#;
    let event = parse(body.as_bytes()).unwrap();
    let Change::UserUpserted { user, .. } = event.change else {
        panic!("expected an upsert");
    };
    assert_eq!(user.primary_email(), Some("x@y.z"));
}

#[test]
fn odd_envelope_fields_are_tolerated() {
    let body = r#"{"type":"user.deleted","timestamp":"yesterday","instance_id":5,
                   "data":{"id":"user_1","deleted":true}}"#;
    let event = parse(body.as_bytes()).unwrap();
    assert_eq!(event.timestamp_ms, None);
    assert_eq!(event.instance_id, None);
    let body = r#"{"type":"email.created","timestamp":1.5e12}"#;
    assert_eq!(parse(body.as_bytes()).unwrap().timestamp_ms, None);
}

#[test]
fn malformed_json() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"type\":\"user.created\",}",
        b"\xff\xfe",
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(err.code(), "malformed_json", "{body:?}");
        assert!(matches!(err, EventError::MalformedJson(_)));
        assert_eq!(err.to_string(), "webhook body is not valid JSON");
    }
}

#[test]
fn envelope_problems() {
    invalid("[]");
    invalid("null");
    invalid(r#""user.created""#);
    invalid(r#"{"data":{"id":"user_1"}}"#);
    invalid(r#"{"type":null,"data":{"id":"user_1"}}"#);
    invalid(r#"{"type":"","data":{"id":"user_1"}}"#);
    invalid(r#"{"type":7}"#);
}

#[test]
fn mistyped_user_fields_are_rejected_without_echoing_them() {
    let err = invalid(
        r#"{"type":"user.created","data":{"id":"user_1","updated_at":1,"first_name":{"secret":"s3cr3t@example.com"}}}"#,
    );
    assert!(!err.to_string().contains("s3cr3t"));
    let err = invalid(
        r#"{"type":"user.updated","data":{"id":"user_1","updated_at":1,"email_addresses":"s3cr3t@example.com"}}"#,
    );
    assert!(!err.to_string().contains("s3cr3t"));
}

#[test]
fn deeply_nested_bodies_do_not_overflow() {
    let body = format!(
        r#"{{"type":"session.created","data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(parse(body.as_bytes()).unwrap_err().code(), "malformed_json");
}

const MEMBERSHIP: &str = r#"{"object":"organization_membership","id":"orgmem_1","role":"org:admin",
  "permissions":["org:posts:read"],"public_metadata":{},
  "organization":{"object":"organization","id":"org_1","name":"Acme","slug":"acme",
    "created_at":1716883200000,"updated_at":1716883200000},
  "public_user_data":{"user_id":"user_1","first_name":"Jane","last_name":null,
    "profile_image_url":"x","image_url":"x","has_image":false,"identifier":"jane@acme.test"},
  "created_at":1716883200000,"updated_at":1716883300000}"#;

#[test]
fn organization_events_are_read() {
    let upsert = parse(
        br#"{"type":"organization.updated","data":{"object":"organization","id":"org_1",
            "name":"Acme","slug":"acme","image_url":null,"updated_at":7}}"#,
    )
    .unwrap();
    let Change::OrganizationUpserted { organization } = &upsert.change else {
        panic!("{:?}", upsert.change);
    };
    assert_eq!(organization.name.as_deref(), Some("Acme"));
    assert_eq!(upsert.change.organization_id(), Some("org_1"));
    assert_eq!(upsert.change.clerk_id(), None);

    let deleted = parse(
        br#"{"type":"organization.deleted","data":{"object":"organization","id":"org_1","deleted":true}}"#,
    )
    .unwrap();
    assert_eq!(
        deleted.change,
        Change::OrganizationDeleted {
            clerk_id: "org_1".to_owned()
        }
    );
}

#[test]
fn membership_events_carry_the_organization_and_the_user() {
    for (kind, created) in [
        ("organizationMembership.created", true),
        ("organizationMembership.updated", true),
        ("organizationMembership.deleted", false),
    ] {
        let body = format!(r#"{{"type":"{kind}","data":{MEMBERSHIP}}}"#);
        let event = parse(body.as_bytes()).unwrap();
        let membership = match &event.change {
            Change::MembershipUpserted { membership } if created => membership,
            Change::MembershipDeleted { membership } if !created => membership,
            other => panic!("{kind}: {other:?}"),
        };
        assert_eq!(membership.role, "org:admin");
        assert_eq!(membership.updated_at, 1_716_883_300_000);
        assert_eq!(event.change.clerk_id(), Some("user_1"));
        assert_eq!(event.change.organization_id(), Some("org_1"));
    }
}

#[test]
fn organization_events_with_bad_ids_are_refused() {
    let bad = [
        r#"{"type":"organization.updated","data":{"id":"user_1","updated_at":1}}"#.to_owned(),
        r#"{"type":"organization.updated","data":{"id":"org_1"}}"#.to_owned(),
        r#"{"type":"organization.deleted","data":{"id":"org_"}}"#.to_owned(),
        r#"{"type":"organization.deleted","data":{}}"#.to_owned(),
        format!(
            r#"{{"type":"organizationMembership.created","data":{}}}"#,
            MEMBERSHIP.replace(r#""user_id":"user_1""#, r#""user_id":"user 1""#)
        ),
        format!(
            r#"{{"type":"organizationMembership.created","data":{}}}"#,
            MEMBERSHIP.replace(r#""id":"org_1""#, r#""id":"org_é""#)
        ),
        r#"{"type":"organizationMembership.deleted","data":{"id":"orgmem_1"}}"#.to_owned(),
    ];
    for body in bad {
        assert!(
            matches!(parse(body.as_bytes()), Err(EventError::InvalidEvent(_))),
            "{body}"
        );
    }
}

/// Clerk's published `session.revoked` example, its `user` trimmed.
const SESSION_REVOKED: &str = r#"{"type":"session.revoked","object":"event",
 "timestamp":1716883200000,"instance_id":"ins_1",
 "data":{"object":"session","id":"sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
  "user_id":"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
  "user":{"object":"user","id":"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S","banned":false,"locked":false},
  "client_id":"client_2g7np7Hrk0SN6kj5EDMLDaKNL0S","actor":null,"status":"revoked",
  "last_active_organization_id":null,"last_active_at":1716883200000,"latest_activity":null,
  "expire_at":1716969600000,"abandon_at":1716969600000,"updated_at":1716883200000,
  "created_at":1716883200000}}"#;

fn ended(session_id: &str, clerk_id: &str, status: &str) -> Change {
    Change::SessionEnded {
        session_id: session_id.to_owned(),
        clerk_id: clerk_id.to_owned(),
        status: status.to_owned(),
    }
}

#[test]
fn session_events_that_end_a_session() {
    let event = parse(SESSION_REVOKED.as_bytes()).unwrap();
    assert_eq!(
        event.change,
        ended(
            "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            "revoked"
        )
    );
    assert_eq!(
        event.change.clerk_id(),
        Some("user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
    );
    for (kind, status) in [
        ("session.ended", "ended"),
        ("session.removed", "removed"),
        // The event's kind decides, whatever status it reports.
        ("session.revoked", "active"),
        // Another session event ends it only with a state that is over.
        ("session.created", "expired"),
        ("session.pending", "abandoned"),
    ] {
        let body = format!(
            r#"{{"type":"{kind}","data":{{"id":"sess_1","user_id":"user_1","status":"{status}"}}}}"#
        );
        assert_eq!(
            parse(body.as_bytes()).unwrap().change,
            ended("sess_1", "user_1", status),
            "{kind}"
        );
    }
    for (kind, status) in [
        ("session.created", "active"),
        ("session.pending", "pending"),
    ] {
        let body = format!(
            r#"{{"type":"{kind}","data":{{"id":"sess_1","user_id":"user_1","status":"{status}"}}}}"#
        );
        assert_eq!(
            parse(body.as_bytes()).unwrap().change,
            Change::Other {
                event_type: kind.to_owned()
            }
        );
    }
}

#[test]
fn session_events_with_bad_ids_are_refused() {
    for data in [
        r#"{"id":"user_1","user_id":"user_1","status":"revoked"}"#,
        r#"{"id":"sess_1","user_id":"sess_1","status":"revoked"}"#,
        r#"{"id":"sess_1","user_id":"user_1"}"#,
        r#"{"id":"sess_1","status":"revoked"}"#,
        r#""sess_1""#,
    ] {
        invalid(&format!(r#"{{"type":"session.revoked","data":{data}}}"#));
    }
    invalid(r#"{"type":"session.ended"}"#);
    // Not an ending event: not inspected.
    let odd = r#"{"type":"session.created","data":{"id":1}}"#;
    assert!(matches!(
        parse(odd.as_bytes()).unwrap().change,
        Change::Other { .. }
    ));
}

#[test]
fn banned_and_deprovisioned_users_are_banned_in_the_profile() {
    let user = |flags: &str| {
        let body =
            format!(r#"{{"type":"user.updated","data":{{"id":"user_1","updated_at":5{flags}}}}}"#);
        let Change::UserUpserted { user, .. } = parse(body.as_bytes()).unwrap().change else {
            panic!("expected an upsert");
        };
        user
    };
    assert!(!user("").profile().banned);
    assert!(!user(r#","banned":null,"locked":true"#).is_banned());
    assert!(user(r#","banned":true"#).profile().banned);
    assert!(user(r#","deprovisioned":true"#).profile().banned);
    assert!(!user(r#","banned":false,"deprovisioned":false"#).is_banned());
}
