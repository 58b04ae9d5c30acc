//! Tests of reading the claims.
use super::*;

fn parse(json: &str) -> SessionClaims {
    serde_json::from_str(json).unwrap()
}

fn permissions(org: &ActiveOrganization) -> Vec<String> {
    org.permissions().map(|p| p.into_owned()).collect()
}

#[test]
fn v2_organization_is_expanded() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"sess_1","exp":1,"v":2,"fea":"o:dashboard,o:teams",
            "o":{"id":"org_1","slg":"acme","rol":"admin","per":"manage,read","fpm":"3,2"}}"#,
    );
    let org = claims.organization().unwrap();
    assert_eq!(org.id(), "org_1");
    assert_eq!(org.slug(), Some("acme"));
    assert_eq!(org.role(), Some("org:admin"));
    assert_eq!(
        permissions(org),
        [
            "org:dashboard:manage",
            "org:dashboard:read",
            "org:teams:read"
        ]
    );
}

#[test]
fn v1_organization_is_read_flat() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"sess_1","exp":1,"org_id":"org_9","org_slug":"s",
            "org_role":"org:member","org_permissions":["org:a:b"]}"#,
    );
    let org = claims.organization().unwrap();
    assert_eq!(org.role(), Some("org:member"));
    assert_eq!(permissions(org), ["org:a:b"]);
}

#[test]
fn unknown_claims_and_actor_are_kept() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"sess_1","exp":1,"email":"a@b.c",
            "act":{"sub":"user_2","iss":"https://dashboard.clerk.com","type":"agent"}}"#,
    );
    assert_eq!(claims.get("email").unwrap(), "a@b.c");
    assert!(claims.organization().is_none());
    let actor = claims.act().unwrap();
    assert_eq!(actor.sub, "user_2");
    assert_eq!(actor.extra["type"], "agent");
}

#[test]
fn every_claim_reads_back_as_given() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"sess_1","iss":"https://i.example","azp":"","exp":5,
            "iat":3,"nbf":2,"v":2,"sts":"active","fva":[7,-1],"pla":"u:free","fea":"u:a",
            "jti":"j1","email":"a@b.c"}"#,
    );
    assert_eq!(
        (claims.sub(), claims.sid(), claims.iss(), claims.azp()),
        ("user_1", "sess_1", "https://i.example", Some(""))
    );
    assert_eq!(
        (claims.exp(), claims.iat(), claims.nbf(), claims.v()),
        (5, Some(3), Some(2), Some(2))
    );
    assert_eq!(
        (claims.sts(), claims.fva(), claims.pla(), claims.fea()),
        (Some("active"), Some([7, -1]), Some("u:free"), Some("u:a"))
    );
    #[derive(Deserialize)]
    struct Template {
        email: String,
        jti: String,
    }
    let template: Template = claims.extra().unwrap();
    assert_eq!((&*template.email, &*template.jti), ("a@b.c", "j1"));
    assert_eq!(claims.get("jti").unwrap(), "j1");
    assert_eq!(claims.get("sub"), None, "typed claims are not repeated");

    let bare = parse(r#"{"sub":"user_1","exp":1}"#);
    assert_eq!(
        (bare.sid(), bare.iss(), bare.azp(), bare.sts()),
        ("", "", None, None)
    );
    assert_eq!(
        (bare.iat(), bare.nbf(), bare.v(), bare.fva()),
        (None, None, None, None)
    );
    assert_eq!(
        (bare.pla(), bare.fea(), bare.get("jti")),
        (None, None, None)
    );
    assert!(bare.extra::<Map<String, Value>>().unwrap().is_empty());
}

/// The claims with a method of their own, and those read as an
/// organization's: never among the other claims.
const NAMED: [&str; 18] = [
    "sub",
    "sid",
    "iss",
    "azp",
    "exp",
    "iat",
    "nbf",
    "v",
    "sts",
    "fva",
    "pla",
    "fea",
    "act",
    "o",
    "org_id",
    "org_slug",
    "org_role",
    "org_permissions",
];

proptest::proptest! {
    /// Whatever their text, the string claims and the other claims read
    /// back exactly as they were given, present or absent.
    #[test]
    fn the_claims_read_back_as_given(
        texts in proptest::collection::vec(proptest::prelude::any::<String>(), 7),
        present in proptest::collection::vec(proptest::prelude::any::<bool>(), 4),
        others in proptest::collection::btree_map("[a-z_]{1,9}", proptest::prelude::any::<String>(), 0..4),
    ) {
        let mut json = serde_json::json!({
            "sub": texts[0], "sid": texts[1], "iss": texts[2], "exp": 1, "v": 1,
        });
        let optional = ["azp", "sts", "pla", "fea"];
        for ((name, text), is_present) in optional.iter().zip(&texts[3..]).zip(&present) {
            if *is_present {
                json[*name] = Value::from(text.as_str());
            }
        }
        let others: Map<String, Value> = others
            .into_iter()
            .filter(|(name, _)| !NAMED.contains(&name.as_str()))
            .map(|(name, text)| (name, Value::from(text)))
            .collect();
        json.as_object_mut().unwrap().extend(others.clone());
        let claims: SessionClaims = serde_json::from_value(json).unwrap();

        proptest::prop_assert_eq!(
            (claims.sub(), claims.sid(), claims.iss()),
            (&*texts[0], &*texts[1], &*texts[2])
        );
        let read = [claims.azp(), claims.sts(), claims.pla(), claims.fea()];
        for ((read, text), is_present) in read.into_iter().zip(&texts[3..]).zip(&present) {
            proptest::prop_assert_eq!(read, is_present.then_some(text.as_str()));
        }
        proptest::prop_assert_eq!(claims.extra::<Map<String, Value>>().unwrap(), others.clone());
        for (name, value) in &others {
            proptest::prop_assert_eq!(claims.get(name), Some(value.clone()));
        }
    }
}

#[test]
fn typed_string_claims_up_to_64_kib_are_read_and_longer_ones_refused() {
    let with = |azp: usize, note: usize| {
        let (azp, note) = ("a".repeat(azp), "n".repeat(note));
        format!(
            r#"{{"sub":"user_1","sid":"sess_1","exp":1,"azp":"{azp}","sts":"active","note":"{note}"}}"#
        )
    };
    // `user_1`, `sess_1`, the `azp` and `active` end within 16 bits.
    let fits = u16::MAX as usize - 18;
    let claims = parse(&with(fits, 100_000));
    assert_eq!(claims.azp().map(str::len), Some(fits));
    assert_eq!(
        (claims.sub(), claims.sid(), claims.sts()),
        ("user_1", "sess_1", Some("active"))
    );
    // The other claims come last, and may take any length.
    assert_eq!(
        claims.get("note").unwrap().as_str().map(str::len),
        Some(100_000)
    );
    let error = serde_json::from_str::<SessionClaims>(&with(fits + 1, 1)).unwrap_err();
    assert!(error.to_string().contains("64 KiB"), "{error}");
}

#[test]
fn malformed_fpm_entries_are_skipped() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"s","exp":1,"v":2,"fea":"o:a,u:b,o:c",
            "o":{"id":"org_1","per":"x,y","fpm":"zz,2"}}"#,
    );
    assert_eq!(permissions(claims.organization().unwrap()), ["org:c:y"]);
}

#[test]
fn only_the_scopes_o_ou_and_uo_are_the_organization_s() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"s","exp":1,"v":2,"fea":"org:a,oo:b,ou:c,uo:d,o:e",
            "o":{"id":"org_1","per":"x","fpm":"1,1,1"}}"#,
    );
    assert_eq!(
        permissions(claims.organization().unwrap()),
        ["org:c:x", "org:d:x", "org:e:x"]
    );
}

#[test]
fn authorization_claims_of_the_wrong_type_count_as_absent() {
    let claims = parse(
        r#"{"sub":"user_1","sid":"s","exp":1,"v":"2","fva":[1.5,0],"fea":5,"pla":["u:free"],
            "o":7,"org_id":{"id":"org_1"},"org_role":1,"org_permissions":"org:a:b"}"#,
    );
    assert_eq!(claims.v(), None);
    assert_eq!(claims.fva(), None);
    assert_eq!(claims.fea(), None);
    assert_eq!(claims.pla(), None);
    assert!(claims.organization().is_none());
    for fva in [
        "[7]",
        "[7,-1,0]",
        r#"["7",-1]"#,
        "7",
        "{}",
        "[1e300,0]",
        "[2147483648,0]",
        "[0,-2147483649]",
    ] {
        let json = format!(r#"{{"sub":"user_1","sid":"s","exp":1,"fva":{fva}}}"#);
        assert_eq!(parse(&json).fva(), None, "fva {fva}");
    }
    assert_eq!(
        parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":65536}"#).v(),
        None
    );
    assert_eq!(
        parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":65535}"#).v(),
        Some(65_535)
    );
    let claims = parse(r#"{"sub":"user_1","sid":"s","exp":1,"v":2.0,"fva":[7.0,-1]}"#);
    assert_eq!((claims.v(), claims.fva()), (Some(2), Some([7, -1])));
    let claims = parse(r#"{"sub":"user_1","sid":"s","exp":1,"fva":[2147483647,-2147483648]}"#);
    assert_eq!(claims.fva(), Some([2_147_483_647, -2_147_483_648]));
    // Identity claims stay strict.
    assert!(serde_json::from_str::<SessionClaims>(r#"{"sub":1,"exp":1}"#).is_err());
    assert!(serde_json::from_str::<SessionClaims>(r#"{"sub":"user_1","exp":"1"}"#).is_err());
}
