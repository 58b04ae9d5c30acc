use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;

/// A token of JWT form with this header and payload (the signature is not
/// looked at).
fn jwt(header: &Value, payload: &Value) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.c2lnbmF0dXJl", encode(header), encode(payload))
}

fn session_jwt() -> String {
    jwt(
        &json!({"alg": "RS256", "kid": "ins_1", "typ": "JWT", "cat": "cl_B7d4PD111AAA"}),
        &json!({"sub": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr", "sid": "sess_1", "exp": 1}),
    )
}

#[test]
fn opaque_prefixes() {
    assert_eq!(
        classify(b"mt_0123456789abcdef0123456789abcdef"),
        Classified::Opaque(TokenType::M2mToken)
    );
    assert_eq!(
        classify(b"oat_0123456789abcdef"),
        Classified::Opaque(TokenType::OauthToken)
    );
    assert_eq!(
        classify(b"ak_0123456789abcdef"),
        Classified::Opaque(TokenType::ApiKey)
    );
    for other in [
        &b""[..],
        b"mt",
        b"MT_1",
        b"oat",
        b"ak",
        b"sk_test_1",
        b"pat_1",
    ] {
        assert_eq!(classify(other), Classified::Session, "{other:?}");
    }
}

#[test]
fn a_session_jwt_is_a_session_token() {
    assert_eq!(classify(session_jwt().as_bytes()), Classified::Session);
    // A JWT template or any other typ is still left to the session verifier.
    let template = jwt(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &json!({"sub": "user_1"}),
    );
    assert_eq!(classify(template.as_bytes()), Classified::Session);
}

#[test]
fn a_machine_subject_makes_an_m2m_jwt() {
    let m2m = jwt(
        &json!({"alg": "RS256", "cat": "cl_B7d4PD333AAA"}),
        &json!({"sub": "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk", "jti": "mt_1"}),
    );
    assert_eq!(
        classify(m2m.as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
    // The prefix is case-sensitive, and the subject must be a string.
    for sub in [
        json!("MCH_1"),
        json!("user_mch_1"),
        json!(["mch_1"]),
        json!(null),
    ] {
        let token = jwt(&json!({"alg": "RS256"}), &json!({ "sub": sub }));
        assert_eq!(classify(token.as_bytes()), Classified::Session, "{sub}");
    }
}

#[test]
fn an_at_jwt_type_makes_an_oauth_jwt() {
    for typ in ["at+jwt", "application/at+jwt"] {
        let token = jwt(
            &json!({"alg": "RS256", "kid": "ins_1", "typ": typ}),
            &json!({"sub": "user_1", "client_id": "client_1", "jti": "oat_1"}),
        );
        assert_eq!(
            classify(token.as_bytes()),
            Classified::Jwt(TokenType::OauthToken),
            "{typ}"
        );
    }
    for typ in [json!("AT+JWT"), json!("jwt"), json!(1)] {
        let token = jwt(
            &json!({ "alg": "RS256", "typ": typ }),
            &json!({"sub": "user_1"}),
        );
        assert_eq!(classify(token.as_bytes()), Classified::Session, "{typ}");
    }
}

#[test]
fn clerks_order_decides_between_rules() {
    // A machine subject wins over an OAuth type.
    let both = jwt(
        &json!({"alg": "RS256", "typ": "at+jwt"}),
        &json!({"sub": "mch_1"}),
    );
    assert_eq!(
        classify(both.as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
    // `mt_` wins over everything: this is also JWT-shaped with a machine
    // subject, but never decoded.
    let shaped = format!("mt_{both}");
    assert_eq!(
        classify(shaped.as_bytes()),
        Classified::Opaque(TokenType::M2mToken)
    );
    // `oat_` is looked at before `ak_`, which comes last.
    assert_eq!(
        classify(b"oat_ak_1"),
        Classified::Opaque(TokenType::OauthToken)
    );
    assert_eq!(classify(b"ak_oat_1"), Classified::Opaque(TokenType::ApiKey));
}

#[test]
fn what_is_not_a_decodable_jwt_is_judged_by_prefix_alone() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"at+jwt"}"#);
    let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"mch_1"}"#);
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    let array = URL_SAFE_NO_PAD.encode(r#"["mch_1"]"#);
    let trailing = URL_SAFE_NO_PAD.encode(r#"{"sub":"mch_1"} x"#);
    for token in [
        format!("{header}.{payload}"),
        format!("{header}.{payload}.sig.more"),
        format!("{header}.{payload}."),
        format!("{header}..sig"),
        format!("{header}.{payload}.si=g"),
        format!("{header}.{not_json}.sig"),
        format!("{not_json}.{payload}.sig"),
        format!("{header}.{array}.sig"),
        format!("{header}.{trailing}.sig"),
        format!("{header}.{payload}.sig\n"),
        format!("{header}.a.sig"),
    ] {
        assert_eq!(classify(token.as_bytes()), Classified::Session, "{token}");
    }
}

#[test]
fn json_is_read_as_javascript_reads_it() {
    // An escaped subject is unescaped; the last of duplicate members counts.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
    let escaped = URL_SAFE_NO_PAD.encode(r#"{"sub":"\u006dch_1"}"#);
    assert_eq!(
        classify(format!("{header}.{escaped}.sig").as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
    let last = URL_SAFE_NO_PAD.encode(r#"{"sub":"user_1","sub":"mch_1"}"#);
    let first = URL_SAFE_NO_PAD.encode(r#"{"sub":"mch_1","sub":"user_1"}"#);
    assert_eq!(
        classify(format!("{header}.{last}.sig").as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
    assert_eq!(
        classify(format!("{header}.{first}.sig").as_bytes()),
        Classified::Session
    );
    // Unused trailing bits are tolerated: the last character of this
    // 16-byte payload carries 4 of them, here set.
    let clean = URL_SAFE_NO_PAD.encode(r#"{"sub":"mch_1"} "#);
    let (body, last) = clean.split_at(clean.len() - 1);
    assert_eq!(last, "A");
    let dirty = format!("{body}B");
    assert!(URL_SAFE_NO_PAD.decode(&dirty).is_err());
    assert_eq!(
        classify(format!("{header}.{dirty}.sig").as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
}

#[test]
fn a_large_payload_is_decoded_too() {
    let padding = "x".repeat(3 * STACK_DECODE_BYTES);
    let token = jwt(
        &json!({"alg": "RS256"}),
        &json!({"pad": padding, "sub": "mch_1"}),
    );
    assert_eq!(
        classify(token.as_bytes()),
        Classified::Jwt(TokenType::M2mToken)
    );
}

#[test]
fn token_types_by_name() {
    for kind in TokenType::ALL {
        assert_eq!(kind.as_str().parse::<TokenType>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            Value::from(kind.as_str())
        );
    }
    let error = "apikey".parse::<TokenType>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown token type `apikey`; expected session_token, api_key, m2m_token or oauth_token"
    );
    assert!("any".parse::<TokenType>().is_err());
    assert!(" api_key".parse::<TokenType>().is_err());
}

#[test]
fn accepted_tokens_as_a_set() {
    assert_eq!(AcceptedTokens::default(), AcceptedTokens::SESSION);
    assert_eq!(
        AcceptedTokens::SESSION.iter().collect::<Vec<_>>(),
        [TokenType::SessionToken]
    );
    assert_eq!(
        AcceptedTokens::ANY.iter().collect::<Vec<_>>(),
        TokenType::ALL
    );
    let machines: AcceptedTokens = [TokenType::OauthToken, TokenType::ApiKey, TokenType::ApiKey]
        .into_iter()
        .collect();
    assert!(machines.contains(TokenType::ApiKey) && machines.contains(TokenType::OauthToken));
    assert!(!machines.contains(TokenType::SessionToken));
    assert!(!machines.contains(TokenType::M2mToken));
    assert!(machines.needs_secret_key());
    let m2m = AcceptedTokens::from_iter([TokenType::M2mToken]);
    assert!(!m2m.needs_secret_key() && !AcceptedTokens::SESSION.needs_secret_key());
    let none = AcceptedTokens::from_iter([]);
    assert!(none.is_empty() && !none.contains(TokenType::SessionToken));
    assert_eq!(format!("{machines:?}"), "{ApiKey, OauthToken}");
}

#[test]
fn accepted_tokens_from_text() {
    assert_eq!("any".parse(), Ok(AcceptedTokens::ANY));
    assert_eq!(" any ".parse(), Ok(AcceptedTokens::ANY));
    assert_eq!("session_token".parse(), Ok(AcceptedTokens::SESSION));
    let parsed: AcceptedTokens = " api_key ,m2m_token,\toauth_token ".parse().unwrap();
    assert_eq!(
        parsed,
        AcceptedTokens::from_iter([
            TokenType::ApiKey,
            TokenType::M2mToken,
            TokenType::OauthToken
        ])
    );
    for kinds in [AcceptedTokens::ANY, AcceptedTokens::SESSION, parsed] {
        assert_eq!(kinds.to_string().parse(), Ok(kinds));
    }
    let unknown = "session_token, apikey"
        .parse::<AcceptedTokens>()
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown token type `apikey`; expected session_token, api_key, m2m_token or oauth_token (comma-separated), or any"
    );
    for empty in ["", " ", "api_key,", "api_key,,m2m_token"] {
        let error = empty.parse::<AcceptedTokens>().unwrap_err();
        assert!(
            error.to_string().starts_with("an empty token type"),
            "{empty:?}"
        );
    }
    // `any` stands alone.
    assert!("any, api_key".parse::<AcceptedTokens>().is_err());
}
