use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// Claims of a token with these claims besides `sub`, `sid` and `exp`.
fn token(claims: Value) -> SessionClaims {
    let mut all = json!({"sub": "user_123", "sid": "sess_123", "exp": 1});
    all.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    serde_json::from_value(all).unwrap()
}

/// The inputs of Clerk's authorization tests, stated directly: the
/// organization as given (`null` for none), `fea` and `pla` as strings, and
/// `fva`.
fn auth(org_permissions: Value, fea: &str, pla: &str, fva: Value) -> SessionClaims {
    token(json!({
        "org_id": "org_123",
        "org_role": "org:admin",
        "org_permissions": org_permissions,
        "fva": fva,
    }))
    .with_billing(fea, pla)
}

fn strict() -> Requirement {
    Requirement::reverification(Reverification::STRICT)
}

// Clerk's authorization tests (userId `user_123`, orgId `org_123`,
// orgRole `org:admin`), one by one. Their `{ role: null }` and
// `{ permission: 123 }` cases cannot be written with `Requirement`.

#[test]
fn a_permission_and_a_feature_must_both_hold() {
    let claims = auth(
        json!(["org:sys_memberships:read"]),
        "o:reservations",
        "",
        json!([0, 0]),
    );
    assert!(
        !claims.has(
            &Requirement::permission("org:sys_profile:delete").and_feature("org:reservations")
        )
    );
    assert!(
        claims.has(
            &Requirement::permission("org:sys_memberships:read").and_feature("org:reservations")
        )
    );
    assert!(
        !claims.has(&Requirement::role("org:member").and_permission("org:sys_memberships:read"))
    );
}

#[test]
fn a_feature_and_a_plan_must_both_hold() {
    let claims = auth(
        json!(["org:read"]),
        "o:reservations",
        "u:plus",
        json!([0, 0]),
    );
    assert!(!claims.has(&Requirement::feature("org:reservations").and_plan("u:free")));
    assert!(claims.has(&Requirement::feature("org:reservations").and_plan("u:plus")));
}

#[test]
fn a_permission_and_a_reverification_must_both_hold() {
    let permission = || Requirement::permission("org:sys_memberships:read");
    // No second factor: strict_mfa falls back to the first.
    let claims = auth(json!(["org:sys_memberships:read"]), "", "", json!([0, -1]));
    assert!(claims.has(&permission().and_reverification(Reverification::STRICT_MFA)));
    let claims = auth(json!(["org:sys_memberships:read"]), "", "", json!([-1, -1]));
    assert!(!claims.has(&permission().and(strict())));
    let claims = auth(json!(["org:sys_profile:delete"]), "", "", Value::Null);
    assert!(!claims.has(&Requirement::permission("org:sys_profile:delete").and(strict())));
    let claims =
        token(json!({"org_id": null, "org_role": null, "org_permissions": null, "fva": [0, 0]}));
    assert!(!claims.has(&Requirement::permission("org:sys_profile:delete").and(strict())));
}

#[test]
fn a_feature_is_found_by_its_scope() {
    let claims = auth(Value::Null, "o:reservations,u:dashboard", "", Value::Null);
    for feature in [
        "reservations",
        "org:reservations",
        "organization:reservations",
        "dashboard",
        "user:dashboard",
    ] {
        assert!(claims.has(&Requirement::feature(feature)), "{feature}");
    }
    for feature in ["lol:dashboard", "o:dashboard", "u:reservations", "team"] {
        assert!(!claims.has(&Requirement::feature(feature)), "{feature}");
    }
}

#[test]
fn a_malformed_role_never_matches() {
    let claims = token(json!({"org_id": "org_123", "org_role": 123}));
    assert!(!claims.has(&Requirement::role("org:admin")));
    assert!(!claims.has(&Requirement::role("123")));
}

#[test]
fn a_fractional_or_negative_age_spoils_fva() {
    for fva in [
        json!([-0.5, 0]),
        json!([-2, 0]),
        json!([0, -3]),
        json!([0.5, 0]),
    ] {
        let claims = auth(Value::Null, "", "", fva.clone());
        assert!(!claims.has(&strict()), "fva {fva}");
    }
}

#[test]
fn a_feature_without_features_fails_whatever_else_passes() {
    let claims = auth(json!(["org:sys_profile:delete"]), "", "", json!([0, 0]));
    assert!(claims.has(&strict()));
    assert!(!claims.has(&Requirement::feature("org:premium").and(strict())));
}

// The combinations Clerk's SDK let through before it judged every
// condition on its own (a passing check carried a failing or unknown one).

#[test]
fn a_fresh_verification_does_not_stand_in_for_an_organization() {
    let claims = token(json!({"fva": [0, 0]}));
    assert!(claims.has(&strict()));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and(strict())));
    assert!(!claims.has(&Requirement::role("org:admin").and(strict())));
}

#[test]
fn a_permission_does_not_stand_in_for_a_missing_verification() {
    let claims = auth(json!(["org:reports:read"]), "", "", Value::Null);
    assert!(claims.has(&Requirement::permission("org:reports:read")));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and(strict())));
}

#[test]
fn billing_and_organization_conditions_are_not_alternatives() {
    let claims = auth(
        json!(["org:reports:read"]),
        "o:reports",
        "o:pro",
        json!([0, 0]),
    );
    // Feature passes, permission does not; and the other way round.
    assert!(!claims.has(&Requirement::feature("reports").and_permission("org:reports:write")));
    assert!(!claims.has(&Requirement::feature("exports").and_permission("org:reports:read")));
    // Plan passes, role does not; and the other way round.
    assert!(!claims.has(&Requirement::plan("o:pro").and_role("org:member")));
    assert!(!claims.has(&Requirement::plan("o:free").and_role("org:admin")));
    assert!(claims.has(&Requirement::plan("o:pro").and_role("admin")));
    assert!(claims.has(&Requirement::feature("reports").and_permission("reports:read")));
}

#[test]
fn a_held_permission_does_not_excuse_the_wrong_role() {
    let claims = auth(json!(["org:reports:read"]), "", "", Value::Null);
    assert!(!claims.has(&Requirement::role("org:member").and_permission("org:reports:read")));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and_role("org:member")));
    assert!(claims.has(&Requirement::role("org:admin").and_permission("org:reports:read")));
}

#[test]
fn a_feature_does_not_excuse_the_wrong_plan() {
    let claims = auth(Value::Null, "o:reports", "o:pro", Value::Null);
    assert!(!claims.has(&Requirement::feature("reports").and_plan("o:free")));
    assert!(!claims.has(&Requirement::plan("o:pro").and_feature("exports")));
    // Missing claims fail rather than go unasked.
    let no_plan = auth(Value::Null, "o:reports", "", Value::Null);
    assert!(!no_plan.has(&Requirement::feature("reports").and_plan("o:pro")));
    let no_features = auth(Value::Null, "", "o:pro", Value::Null);
    assert!(!no_features.has(&Requirement::plan("o:pro").and_feature("reports")));
}

#[test]
fn an_invalid_reverification_or_scope_fails_instead_of_going_unasked() {
    let claims = auth(json!(["org:reports:read"]), "o:reports", "", json!([0, 0]));
    let never = Reverification::new(VerificationLevel::SecondFactor, 0);
    assert!(!claims.has(&Requirement::reverification(never)));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and_reverification(never)));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and_feature("lol:reports")));
    assert!(!claims.has(&Requirement::permission("org:reports:read").and_plan("team:pro")));
}

#[test]
fn two_conditions_of_one_kind_are_both_required() {
    let claims = auth(
        json!(["org:a:read", "org:a:write"]),
        "o:a,u:b",
        "",
        Value::Null,
    );
    assert!(claims.has(&Requirement::permission("org:a:read").and_permission("org:a:write")));
    assert!(!claims.has(&Requirement::permission("org:a:read").and_permission("org:a:delete")));
    assert!(claims.has(&Requirement::feature("a").and_feature("u:b")));
    assert!(!claims.has(&Requirement::feature("a").and_feature("c")));
    assert!(!claims.has(&Requirement::role("org:admin").and_role("org:member")));
}

#[test]
fn nothing_asked_is_not_allowed() {
    let claims = auth(json!(["org:a:read"]), "o:a", "o:pro", json!([0, 0]));
    assert!(!claims.has(&Requirement {
        conditions: Vec::new()
    }));
    // Without a user, nothing passes.
    let nobody = token(json!({
        "sub": "",
        "org_id": "org_123",
        "org_role": "org:admin",
        "org_permissions": ["org:a:read"],
        "fva": [0, 0],
    }))
    .with_billing("o:a", "o:pro");
    assert!(claims.has(&Requirement::feature("a")));
    assert!(!nobody.has(&Requirement::feature("a")));
}

#[test]
fn roles_compare_with_their_prefixes_normalised() {
    for (held, asked) in [
        ("admin", "org:admin"),
        ("admin", "admin"),
        ("org:admin", "admin"),
        ("org:admin", "org:org:admin"),
        ("basic_member", "org:basic_member"),
        ("org:org:admin", "org:admin"),
        ("org:", ""),
    ] {
        let claims = token(json!({"org_id": "org_1", "org_role": held}));
        assert!(claims.has(&Requirement::role(asked)), "{held} as {asked}");
    }
    for (held, asked) in [
        ("admin", "org:member"),
        ("org:admin", "org:admin:x"),
        ("Admin", "admin"),
    ] {
        let claims = token(json!({"org_id": "org_1", "org_role": held}));
        assert!(!claims.has(&Requirement::role(asked)), "{held} as {asked}");
    }
    // A version 2 `rol` that carries the prefix itself still matches.
    let claims = token(json!({"v": 2, "o": {"id": "org_1", "rol": "org:admin"}}));
    assert!(claims.has(&Requirement::role("admin")));
    // An absent or empty role matches nothing.
    for o in [json!({"id": "org_1"}), json!({"id": "org_1", "rol": ""})] {
        let claims = token(json!({"v": 2, "o": o}));
        assert!(!claims.has(&Requirement::role("")));
        assert!(!claims.has(&Requirement::role("org:")));
    }
}

#[test]
fn the_asked_permission_is_normalised_and_the_token_s_is_not() {
    let claims = token(json!({
        "org_id": "org_1",
        "org_permissions": ["org:reports:read", "exports:run"],
    }));
    for asked in ["org:reports:read", "reports:read", "org:org:reports:read"] {
        assert!(claims.has(&Requirement::permission(asked)), "{asked}");
    }
    // The token's entry lacks the prefix, so no asked form can reach it.
    for asked in ["exports:run", "org:exports:run"] {
        assert!(!claims.has(&Requirement::permission(asked)), "{asked}");
    }
}

#[test]
fn version_2_permissions_are_checked_in_their_encoded_form() {
    let claims = token(json!({
        "v": 2,
        "fea": "o:dashboard,u:profile,o:teams,ou:shared",
        "o": {"id": "org_1", "rol": "admin", "per": "manage,read,,x:y", "fpm": "3,2,12"},
    }));
    for granted in [
        "org:dashboard:manage",
        "dashboard:read",
        "org:teams:read",
        "org:shared:",
        "org:shared:x:y",
    ] {
        assert!(claims.has(&Requirement::permission(granted)), "{granted}");
    }
    for denied in [
        "org:teams:manage",
        "org:profile:manage",
        "org:dashboard",
        "org:dashboard:",
        "org:shared:x",
        "org:shared:read",
        "org:dashboard:manage:",
        "",
    ] {
        assert!(!claims.has(&Requirement::permission(denied)), "{denied}");
    }
}

#[test]
fn version_1_and_version_2_organizations_answer_alike() {
    let from_v2 = token(json!({
        "v": 2, "fea": "o:impersonation",
        "o": {"id": "org_xxxxxxx", "rol": "admin", "slg": "org_test",
              "per": "read,manage", "fpm": "3"},
    }));
    let from_v1 = token(json!({
        "org_id": "org_xxxxxxx", "org_role": "org:admin", "org_slug": "org_test",
        "org_permissions": ["org:impersonation:read", "org:impersonation:manage"],
    }));
    for requirement in [
        Requirement::role("admin"),
        Requirement::role("org:admin"),
        Requirement::role("org:member"),
        Requirement::permission("org:impersonation:read"),
        Requirement::permission("impersonation:manage"),
        Requirement::permission("org:impersonation:delete"),
        Requirement::role("org:admin").and_permission("org:impersonation:manage"),
    ] {
        assert_eq!(
            from_v1.has(&requirement),
            from_v2.has(&requirement),
            "{requirement:?}"
        );
    }
}

#[test]
fn version_1_tokens_have_no_features_or_plans() {
    let claims = token(json!({
        "org_id": "org_1", "org_role": "org:admin",
        "fea": "o:reports", "pla": "o:pro",
    }));
    assert_eq!(claims.fea(), Some("o:reports"));
    assert!(claims.has(&Requirement::role("org:admin")));
    assert!(!claims.has(&Requirement::feature("reports")));
    assert!(!claims.has(&Requirement::plan("o:pro")));
}

#[test]
fn an_unreadable_fea_fails_features_and_plans_but_not_the_role() {
    let claims = token(json!({
        "v": 2, "fea": "o:reports,exports", "pla": "o:pro",
        "o": {"id": "org_1", "rol": "admin", "per": "read", "fpm": "1"},
    }));
    assert!(claims.has(&Requirement::role("org:admin")));
    assert!(!claims.has(&Requirement::feature("reports")));
    assert!(!claims.has(&Requirement::plan("o:pro")));
    assert!(!claims.has(&Requirement::permission("org:reports:read")));
    // An unreadable plan fails plans only.
    let claims = token(json!({"v": 2, "fea": "o:reports", "pla": "pro"}));
    assert!(claims.has(&Requirement::feature("reports")));
    assert!(!claims.has(&Requirement::plan("pro")));
    assert!(!claims.has(&Requirement::plan("o:pro")));
}

#[test]
fn feature_names_are_read_as_clerk_reads_them() {
    let claims = token(json!({"v": 2, "fea": "o:o,o:reports:x,u:export", "pla": "u:free"}));
    // An empty name falls back to the scope.
    assert!(claims.has(&Requirement::feature("o:")));
    // A second colon ends the name.
    assert!(!claims.has(&Requirement::feature("o:reports:x")));
    assert!(!claims.has(&Requirement::feature("reports")));
    assert!(claims.has(&Requirement::feature("user:export:anything")));
    assert!(claims.has(&Requirement::plan("free")));
    assert!(claims.has(&Requirement::plan("u:free")));
    assert!(!claims.has(&Requirement::plan("o:free")));
    assert!(!claims.has(&Requirement::plan("FREE")));
}

#[test]
fn reverification_levels_follow_clerk() {
    let met = |fva: [i64; 2], level, minutes| {
        let claims = auth(Value::Null, "", "", json!(fva));
        claims.has(&Requirement::reverification(Reverification::new(
            level, minutes,
        )))
    };
    use VerificationLevel::{FirstFactor, MultiFactor, SecondFactor};
    // Strictly fresher than the limit.
    assert!(met([9, 9], FirstFactor, 10));
    assert!(!met([10, 0], FirstFactor, 10));
    assert!(!met([-1, 0], FirstFactor, 10));
    // The second factor, or the first without one.
    assert!(met([60, 5], SecondFactor, 10));
    assert!(!met([5, 60], SecondFactor, 10));
    assert!(met([5, -1], SecondFactor, 10));
    assert!(!met([15, -1], SecondFactor, 10));
    assert!(met([-1, 5], SecondFactor, 10));
    // Both, or the first without a second.
    assert!(met([5, 5], MultiFactor, 10));
    assert!(!met([5, 15], MultiFactor, 10));
    assert!(!met([15, 5], MultiFactor, 10));
    assert!(met([5, -1], MultiFactor, 10));
    assert!(!met([-1, 5], MultiFactor, 10));
    assert!(!met([-1, -1], FirstFactor, 10));
    assert!(!met([0, 0], FirstFactor, 0));
    // The presets.
    let preset = |fva: [i64; 2], preset| {
        auth(Value::Null, "", "", json!(fva)).has(&Requirement::reverification(preset))
    };
    assert!(preset([9, 9], Reverification::STRICT_MFA));
    assert!(!preset([9, 10], Reverification::STRICT_MFA));
    assert!(preset([100, 9], Reverification::STRICT));
    assert!(preset([100, 59], Reverification::MODERATE));
    assert!(!preset([0, 60], Reverification::MODERATE));
    assert!(preset([0, 1_439], Reverification::LAX));
    assert!(!preset([0, 1_440], Reverification::LAX));
    assert!(preset([1_439, -1], Reverification::LAX));
}

/// Any JSON value, leaning towards the shapes the claims use.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-3i64..100).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |n| n.is_finite())
            .prop_map(Value::from),
        "[ou:, a-c0-9]{0,16}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("slg".to_owned()),
            Just("rol".to_owned()),
            Just("per".to_owned()),
            Just("fpm".to_owned()),
            "[a-z]{1,3}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Claims with any value (or none) in each authorization claim.
fn any_claims() -> impl Strategy<Value = Value> {
    let names = [
        "v",
        "fva",
        "fea",
        "pla",
        "o",
        "org_id",
        "org_slug",
        "org_role",
        "org_permissions",
    ];
    let version = prop_oneof![Just(Some(json!(2))), proptest::option::of(any_json())];
    (
        version,
        prop::collection::vec(proptest::option::of(any_json()), names.len()),
    )
        .prop_map(move |(version, values)| {
            let mut claims = Map::new();
            for (name, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    claims.insert((*name).to_owned(), value);
                }
            }
            if let Some(version) = version {
                claims.insert("v".to_owned(), version);
            }
            Value::Object(claims)
        })
}

fn any_requirement() -> impl Strategy<Value = Requirement> {
    let text = "[ou:, a-c]{0,10}";
    let condition = prop_oneof![
        text.prop_map(Requirement::role),
        text.prop_map(Requirement::permission),
        text.prop_map(Requirement::feature),
        text.prop_map(Requirement::plan),
        (0u32..2_000).prop_map(|minutes| {
            Requirement::reverification(Reverification::new(
                VerificationLevel::SecondFactor,
                minutes,
            ))
        }),
    ];
    prop::collection::vec(condition, 1..4).prop_map(|conditions| {
        conditions
            .into_iter()
            .reduce(Requirement::and)
            .expect("at least one condition")
    })
}

proptest! {
    /// Whatever the authorization claims hold, the token is read, nothing
    /// panics, and without an active organization no role passes.
    #[test]
    fn any_claims_decode_and_fail_closed(
        claims in any_claims(),
        role in "[ou:, a-z]{0,10}",
        other in any_requirement(),
    ) {
        let claims = token(claims);
        if let Some(org) = claims.organization() {
            prop_assert!(!org.id().is_empty());
            let _ = org.permissions().count();
        } else {
            prop_assert!(!claims.has(&Requirement::role(&role)));
            prop_assert!(!claims.has(&Requirement::role(&role).and(other.clone())));
            prop_assert!(!claims.has(&other.clone().and_role(&role)));
            prop_assert!(!claims.has(&Requirement::permission(&role).and(other.clone())));
        }
        let _ = claims.has(&other);
    }

    /// Every listed permission passes, and a role check agrees with the
    /// role the organization reports.
    #[test]
    fn what_the_organization_lists_is_what_passes(
        fea in "[ou]{1,2}:[a-c]{1,2}(,[ou]{1,2}:[a-c]{1,2}){0,4}",
        per in "[a-c]{0,2}(,[a-c]{0,2}){0,5}",
        fpm in "[0-9]{1,4}(,[0-9]{1,4}){0,5}",
        rol in "[a-z:]{0,5}",
        asked in "[a-z:]{0,5}",
    ) {
        let claims = token(json!({
            "v": 2, "fea": fea,
            "o": {"id": "org_1", "rol": rol, "per": per, "fpm": fpm},
        }));
        let org = claims.organization().unwrap();
        for permission in org.permissions() {
            prop_assert!(claims.has(&Requirement::permission(&*permission)));
        }
        let passes = claims.has(&Requirement::role(&asked));
        let by_hand = org.role().is_some_and(|held| {
            without_org_prefixes(held) == without_org_prefixes(&asked)
        });
        prop_assert_eq!(passes, by_hand);
    }
}
