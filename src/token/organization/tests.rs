use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::token::SessionClaims;

/// Claims of a version 2 token with `fea` (if any) and this `o` claim.
fn v2(fea: Option<&str>, o: Value) -> SessionClaims {
    let mut claims = json!({"sub": "user_1", "sid": "sess_1", "exp": 1, "v": 2, "o": o});
    if let Some(fea) = fea {
        claims["fea"] = json!(fea);
    }
    serde_json::from_value(claims).unwrap()
}

/// Claims of a version 1 token with these extra claims.
fn v1(org: Value) -> SessionClaims {
    let mut claims = json!({"sub": "user_1", "sid": "sess_1", "exp": 1});
    claims
        .as_object_mut()
        .unwrap()
        .extend(org.as_object().unwrap().clone());
    serde_json::from_value(claims).unwrap()
}

fn permissions(claims: &SessionClaims) -> Vec<String> {
    claims
        .organization()
        .expect("an active organization")
        .permissions()
        .map(Cow::into_owned)
        .collect()
}

/// The permissions of a version 2 token with `o.rol: admin`.
fn expanded(fea: &str, per: &str, fpm: &str) -> Vec<String> {
    permissions(&v2(
        Some(fea),
        json!({"id": "org_1", "rol": "admin", "per": per, "fpm": fpm}),
    ))
}

fn fifty_four_names() -> String {
    (0..54)
        .map(|i| format!("permission_{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn official_vectors_expand_as_clerk_expands_them() {
    let vectors: [(&str, &str, &str, &[&str]); 7] = [
        (
            "o:dashboard,o:teams",
            "manage,read",
            "3,2",
            &[
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read",
            ],
        ),
        (
            "o:impersonation,o:memberships",
            "read,manage",
            "1,3",
            &[
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage",
            ],
        ),
        (
            "uo:impersonation,o:memberships,uo:feature3",
            "read,manage",
            "1,3,1",
            &[
                "org:impersonation:read",
                "org:memberships:read",
                "org:memberships:manage",
                "org:feature3:read",
            ],
        ),
        (
            "ou:memberships,u:impersonation",
            "read,manage",
            "3,0",
            &["org:memberships:read", "org:memberships:manage"],
        ),
        (
            "o:repositories,o:projects",
            "read,create,update,delete,revoke",
            "7,21",
            &[
                "org:repositories:read",
                "org:repositories:create",
                "org:repositories:update",
                "org:projects:read",
                "org:projects:update",
                "org:projects:revoke",
            ],
        ),
        (
            "o:repositories,o:projects,o:webhooks,o:impersonation",
            "read,manage",
            "1,2,3,0",
            &[
                "org:repositories:read",
                "org:projects:manage",
                "org:webhooks:read",
                "org:webhooks:manage",
            ],
        ),
        (
            "o:repositories,o:impersonation,o:billing",
            "manage,read,update",
            "6,0,3",
            &[
                "org:repositories:read",
                "org:repositories:update",
                "org:billing:manage",
                "org:billing:read",
            ],
        ),
    ];
    for (fea, per, fpm, want) in vectors {
        assert_eq!(
            expanded(fea, per, fpm),
            want,
            "fea {fea}, per {per}, fpm {fpm}"
        );
    }
}

#[test]
fn masks_past_two_to_the_fifty_third_are_exact() {
    let names = fifty_four_names();
    // 2^53 + 1, 2^53 + 3: a float would lose the low bits.
    assert_eq!(
        expanded("o:feature", &names, "9007199254740993"),
        ["org:feature:permission_0", "org:feature:permission_53"]
    );
    assert_eq!(
        expanded("o:feature", &names, "9007199254740995"),
        [
            "org:feature:permission_0",
            "org:feature:permission_1",
            "org:feature:permission_53"
        ]
    );
    // 2^54: bit 54 names no permission.
    assert!(expanded("o:feature", &names, "18014398509481984").is_empty());
}

#[test]
fn masks_past_two_to_the_hundred_and_twenty_eighth_are_exact() {
    let names: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let names = names.join(",");
    // 2^199 + 1
    let fpm = "803469022129495137770981046170581301261101496891396417650689";
    assert_eq!(expanded("o:f", &names, fpm), ["org:f:p0", "org:f:p199"]);
    // 2^130 + 2^64 + 5
    let fpm = "1361129467683753853871945173800782397445";
    assert_eq!(
        expanded("o:f", &names, fpm),
        ["org:f:p0", "org:f:p2", "org:f:p64", "org:f:p130"]
    );
    // 2^200, one past the last name.
    let fpm = "1606938044258990275541962092341162602522202993782792835301376";
    assert!(expanded("o:f", &names, fpm).is_empty());
}

#[test]
fn version_1_and_version_2_give_the_same_organization() {
    let from_v2 = v2(
        Some("o:impersonation"),
        json!({"id": "org_xxxxxxx", "rol": "admin", "slg": "org_test",
               "per": "read,manage", "fpm": "3"}),
    );
    let from_v1 = v1(json!({
        "org_id": "org_xxxxxxx", "org_role": "org:admin", "org_slug": "org_test",
        "org_permissions": ["org:impersonation:read", "org:impersonation:manage"],
    }));
    let org = from_v2.organization().unwrap();
    assert_eq!(org.id(), "org_xxxxxxx");
    assert_eq!(org.slug(), Some("org_test"));
    assert_eq!(org.role(), Some("org:admin"));
    assert_eq!(
        permissions(&from_v2),
        ["org:impersonation:read", "org:impersonation:manage"]
    );
    assert_eq!(from_v1.organization(), from_v2.organization());
}

#[test]
fn fpm_aligns_with_the_organization_features_only() {
    // Shorter than the features: the last ones get nothing.
    assert_eq!(expanded("o:a,o:b,o:c", "x,y", "1"), ["org:a:x"]);
    // Longer: the extra numbers are ignored.
    assert_eq!(expanded("o:a", "x,y", "2,3,3"), ["org:a:y"]);
    // `0` grants nothing and keeps the alignment.
    assert_eq!(expanded("o:a,o:b", "x,y", "0,1"), ["org:b:x"]);
    // User features are not counted, wherever they stand.
    assert_eq!(
        expanded("u:a,o:b,u:c,o:d", "x,y", "1,2"),
        ["org:b:x", "org:d:y"]
    );
    assert_eq!(expanded("u:a,u:b", "x,y", "3,3"), Vec::<String>::new());
    // Bits past the names are dropped.
    assert_eq!(expanded("o:a", "x,y", "7"), ["org:a:x", "org:a:y"]);
    assert_eq!(expanded("o:a", "x", "6"), Vec::<String>::new());
}

#[test]
fn a_malformed_mask_grants_nothing_to_its_feature_only() {
    for bad in ["", " ", "-1", "1.5", "1invalid", "+1", "0x3", "1e2", "３"] {
        assert_eq!(
            expanded("o:a,o:b,o:c", "x,y", &format!("1,{bad},2")),
            ["org:a:x", "org:c:y"],
            "fpm entry {bad:?}"
        );
    }
    // Trimmed, with leading zeros.
    assert_eq!(
        expanded("o:a,o:b", "x,y", " 0003 ,\t2\n"),
        ["org:a:x", "org:a:y", "org:b:y"]
    );
}

#[test]
fn missing_or_empty_encodings_grant_nothing() {
    let with = |o: Value| permissions(&v2(Some("o:a"), o));
    assert!(with(json!({"id": "org_1", "per": "x"})).is_empty());
    assert!(with(json!({"id": "org_1", "fpm": "1"})).is_empty());
    assert!(with(json!({"id": "org_1", "per": "", "fpm": "1"})).is_empty());
    assert!(with(json!({"id": "org_1", "per": "x", "fpm": ""})).is_empty());
    assert!(with(json!({"id": "org_1", "per": 1, "fpm": "1"})).is_empty());
    assert!(with(json!({"id": "org_1", "per": "x", "fpm": 1})).is_empty());
    // Without `fea` (or with an empty one) there are no features to grant.
    let o = json!({"id": "org_1", "per": "x", "fpm": "1"});
    assert!(permissions(&v2(None, o.clone())).is_empty());
    assert!(permissions(&v2(Some(""), o)).is_empty());
}

#[test]
fn an_unreadable_fea_grants_no_permissions() {
    let o = json!({"id": "org_1", "rol": "admin", "per": "x", "fpm": "1,1"});
    for fea in ["o:a,b", "a", " ", "o:a,", ","] {
        let claims = v2(Some(fea), o.clone());
        assert!(permissions(&claims).is_empty(), "fea {fea:?}");
        // The organization itself is still there.
        assert_eq!(claims.organization().unwrap().role(), Some("org:admin"));
    }
    let claims = json!({"sub": "user_1", "sid": "s", "exp": 1, "v": 2, "fea": 5, "o": o});
    let claims: SessionClaims = serde_json::from_value(claims).unwrap();
    assert!(permissions(&claims).is_empty());
}

#[test]
fn an_empty_permission_name_is_kept() {
    assert_eq!(
        expanded("o:a", "read,,write", "7"),
        ["org:a:read", "org:a:", "org:a:write"]
    );
    assert_eq!(
        expanded("o:a", " read , write ", "3"),
        ["org:a:read", "org:a:write"]
    );
}

#[test]
fn the_version_2_role_is_prefixed_only_when_present() {
    let role = |o: Value| {
        v2(None, o)
            .organization()
            .unwrap()
            .role()
            .map(str::to_owned)
    };
    assert_eq!(
        role(json!({"id": "org_1", "rol": "admin"})).as_deref(),
        Some("org:admin")
    );
    assert_eq!(
        role(json!({"id": "org_1", "rol": "org:admin"})).as_deref(),
        Some("org:org:admin")
    );
    assert_eq!(role(json!({"id": "org_1"})), None);
    assert_eq!(role(json!({"id": "org_1", "rol": ""})), None);
    assert_eq!(role(json!({"id": "org_1", "rol": 3})), None);
}

#[test]
fn no_usable_id_means_no_active_organization() {
    for o in [
        json!({"rol": "admin", "per": "x", "fpm": "1"}),
        json!({"id": "", "rol": "admin"}),
        json!({"id": 7, "rol": "admin"}),
        json!("org_1"),
        json!(["org_1"]),
        json!(true),
        Value::Null,
    ] {
        assert!(
            v2(Some("o:a"), o.clone()).organization().is_none(),
            "o: {o}"
        );
    }
    for org_id in [json!(""), json!(7), json!(["org_1"]), Value::Null] {
        let claims = v1(json!({"org_id": org_id, "org_role": "org:admin"}));
        assert!(claims.organization().is_none(), "org_id: {org_id}");
    }
}

#[test]
fn version_1_claims_are_taken_as_they_are() {
    // Legacy roles keep their spelling.
    for legacy in ["admin", "basic_member"] {
        let claims = v1(json!({"org_id": "org_1", "org_role": legacy}));
        let org = claims.organization().unwrap();
        assert_eq!(org.role(), Some(legacy));
        assert_eq!(org.slug(), None);
        assert!(org.permissions().next().is_none());
    }
    let claims = v1(json!({
        "org_id": "org_1", "org_role": 123, "org_slug": ["s"],
        "org_permissions": [1, "org:a:b", null, "org:sys_profile:manage", "anything"],
    }));
    let org = claims.organization().unwrap();
    assert_eq!(org.role(), None);
    assert_eq!(org.slug(), None);
    assert_eq!(
        permissions(&claims),
        ["org:a:b", "org:sys_profile:manage", "anything"]
    );
    let claims = v1(json!({"org_id": "org_1", "org_permissions": "org:a:b"}));
    assert!(permissions(&claims).is_empty());
}

#[test]
fn the_version_decides_which_claims_are_read() {
    let both = json!({
        "org_id": "org_v1", "org_role": "org:member",
        "o": {"id": "org_v2", "rol": "admin"},
    });
    let read = |v: Value| {
        let mut claims = both.clone();
        claims["v"] = v;
        let claims = v1(claims);
        let id = claims.organization().map(|org| org.id().to_owned());
        (id, claims)
    };
    for v in [json!(2), json!(2.0)] {
        let (id, claims) = read(v);
        assert_eq!(id.as_deref(), Some("org_v2"));
        assert_eq!(claims.v(), Some(2));
        assert_eq!(claims.get("org_id").unwrap(), "org_v1");
        assert!(claims.get("o").is_none());
    }
    for v in [
        json!(1),
        json!(3),
        json!("2"),
        json!(2.5),
        json!(-2),
        Value::Null,
    ] {
        let (id, claims) = read(v.clone());
        assert_eq!(id.as_deref(), Some("org_v1"), "v: {v}");
        assert_eq!(claims.get("o").unwrap()["id"], "org_v2");
        assert!(claims.get("org_id").is_none());
    }
    // A version 2 token without `o` has no organization, whatever else it says.
    let claims = v1(json!({"v": 2, "org_id": "org_v1"}));
    assert!(claims.organization().is_none());
}

#[test]
fn debug_lists_the_expanded_permissions() {
    let claims = v2(
        Some("o:a"),
        json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "x,y", "fpm": "2"}),
    );
    assert_eq!(
        format!("{:?}", claims.organization().unwrap()),
        r#"ActiveOrganization { id: "org_1", slug: Some("acme"), role: Some("org:admin"), permissions: ["org:a:y"] }"#
    );
}

proptest! {
    /// Below 2^128 the decoder agrees with the standard parser.
    #[test]
    fn masks_agree_with_u128(value: u128, zeros in 0usize..3, width in 0usize..=128) {
        let text = format!("{}{value}", "0".repeat(zeros));
        let mask = Mask::decode(&text, width);
        let kept = if width == 128 { value } else { value & ((1u128 << width) - 1) };
        let ones: Vec<usize> = mask.ones().collect();
        let want: Vec<usize> = (0..128).filter(|bit| kept >> bit & 1 == 1).collect();
        prop_assert_eq!(ones, want);
    }

    /// Whatever the `o` claim and `fea` hold, decoding neither panics nor
    /// grants a permission outside `org:{feature}:{name}` of the claims.
    #[test]
    fn any_encoding_expands_within_its_names(
        fea in "[ou:, a-c]{0,12}",
        per in "[a-c, ]{0,8}",
        fpm in "[0-9, x-]{0,16}",
        rol in proptest::option::of("[a-z:]{0,6}"),
    ) {
        let claims = v2(Some(&fea), json!({"id": "org_1", "rol": rol, "per": per, "fpm": fpm}));
        let org = claims.organization().unwrap();
        for permission in org.permissions() {
            let rest = permission.strip_prefix("org:").unwrap();
            prop_assert!(fea.contains(rest.split(':').next().unwrap()));
        }
    }
}
