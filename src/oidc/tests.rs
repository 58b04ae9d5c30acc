//! The presets against tokens shaped as each provider documents them:
//! header, issuer spelling, audience, token use, subject claim and the
//! tokens each must refuse.

use serde_json::{Value, json};

use super::{Issuer, verify::IssuerVerifier};
use crate::{rejection::Rejection, testing::JwsKey};

const NOW_S: i64 = 1_800_000_000;

/// `claims` with `iat` now and `exp` `ttl` seconds later.
fn timed(mut claims: Value, ttl: i64) -> Value {
    claims["iat"] = NOW_S.into();
    claims["exp"] = (NOW_S + ttl).into();
    claims
}

/// What `issuer` makes of `claims` signed by `key` with `header` fields.
fn verified(
    issuer: &Issuer,
    key: &JwsKey,
    header: Value,
    claims: Value,
) -> Result<(String, String, Vec<String>), Rejection> {
    let jwks = JwsKey::jwks(&[key]).to_string();
    let verifier = IssuerVerifier::holding(issuer, jwks.as_bytes());
    let token = key.sign(&header, &claims);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let claims = runtime.block_on(verifier.verify(token.as_bytes(), NOW_S * 1000))?;
    Ok((
        claims.key().to_owned(),
        claims.subject().to_owned(),
        claims.scopes().to_vec(),
    ))
}

#[test]
fn auth0_access_tokens_of_either_profile_and_a_custom_domain() {
    let key = JwsKey::generate("RS256", "auth0-1");
    let auth0 = Issuer::auth0("example.eu.auth0.com")
        .with_audience("https://api.example.com")
        .with_alias("https://login.example.com/");
    let default_profile = timed(
        json!({
            "iss": "https://example.eu.auth0.com/",
            "sub": "auth0|64f1c0ffee",
            "aud": ["https://api.example.com", "https://example.eu.auth0.com/userinfo"],
            "azp": "kbyuFDidLLm280LIwVFiazOqjO3ty8KH",
            "scope": "openid profile read:reports",
        }),
        86_400,
    );
    let (key_of_user, subject, scopes) = verified(
        &auth0,
        &key,
        json!({ "typ": "JWT" }),
        default_profile.clone(),
    )
    .unwrap();
    assert_eq!(
        key_of_user,
        "https://example.eu.auth0.com/#auth0|64f1c0ffee"
    );
    assert_eq!(subject, "auth0|64f1c0ffee");
    assert_eq!(scopes, ["openid", "profile", "read:reports"]);
    // The RFC 9068 profile: typed `at+jwt`, `client_id` and `jti`.
    let mut rfc9068 = default_profile.clone();
    rfc9068["client_id"] = "kbyuFDidLLm280LIwVFiazOqjO3ty8KH".into();
    rfc9068["jti"] = "a1b2".into();
    assert!(verified(&auth0, &key, json!({ "typ": "at+jwt" }), rfc9068).is_ok());
    // The custom domain reaches the same rows.
    let mut custom = default_profile.clone();
    custom["iss"] = "https://login.example.com/".into();
    let (custom_key, ..) = verified(&auth0, &key, json!({ "typ": "JWT" }), custom).unwrap();
    assert_eq!(custom_key, key_of_user);
    // A client-credentials token, and a token for another API.
    let mut machine = default_profile.clone();
    machine["sub"] = "kbyuFDidLLm280LIwVFiazOqjO3ty8KH@clients".into();
    machine["gty"] = "client-credentials".into();
    assert_eq!(
        verified(&auth0, &key, json!({ "typ": "JWT" }), machine),
        Err(Rejection::TokenTypeMismatch)
    );
    let mut elsewhere = default_profile;
    elsewhere["aud"] = "https://other.example.com".into();
    assert_eq!(
        verified(&auth0, &key, json!({ "typ": "JWT" }), elsewhere),
        Err(Rejection::InvalidAudience)
    );
}

#[test]
fn keycloak_access_tokens_say_bearer_and_id_tokens_are_refused() {
    let key = JwsKey::generate("RS256", "kc-1");
    let keycloak =
        Issuer::keycloak("https://kc.example.com/realms/acme").with_audience("orders-api");
    let access = timed(
        json!({
            "iss": "https://kc.example.com/realms/acme",
            "sub": "f1b3a6c2-4b1e-4c07-9d53-2f6f0d1e8a11",
            "typ": "Bearer",
            "azp": "web",
            "aud": ["orders-api", "account"],
            "scope": "openid email profile",
            "email": "ada@example.com",
            "preferred_username": "ada",
        }),
        300,
    );
    let (_, subject, _) =
        verified(&keycloak, &key, json!({ "typ": "JWT" }), access.clone()).unwrap();
    assert_eq!(subject, "f1b3a6c2-4b1e-4c07-9d53-2f6f0d1e8a11");
    let mut id_token = access.clone();
    id_token["typ"] = "ID".into();
    id_token["aud"] = "orders-api".into();
    assert_eq!(
        verified(&keycloak, &key, json!({ "typ": "JWT" }), id_token.clone()),
        Err(Rejection::TokenTypeMismatch)
    );
    // Where access tokens carry no such claim, an ID token's marks tell it.
    let untyped = Issuer::new("https://kc.example.com/realms/acme")
        .with_token_use(super::TokenUse::AccessToken);
    id_token.as_object_mut().unwrap().remove("typ");
    assert!(verified(&untyped, &key, json!({ "typ": "JWT" }), id_token.clone()).is_ok());
    id_token["nonce"] = "n-0S6_WzA2Mj".into();
    assert_eq!(
        verified(&untyped, &key, json!({ "typ": "JWT" }), id_token),
        Err(Rejection::TokenTypeMismatch)
    );
    // A client without the `basic` scope gets tokens with no `sub`.
    let mut no_subject = access.clone();
    no_subject.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        verified(&keycloak, &key, json!({ "typ": "JWT" }), no_subject),
        Err(Rejection::TokenTypeMismatch)
    );
    // The generic issuer wants RFC 9068 typing, which Keycloak does not use.
    let generic = Issuer::new("https://kc.example.com/realms/acme");
    assert_eq!(
        verified(&generic, &key, json!({ "typ": "JWT" }), access),
        Err(Rejection::TokenTypeMismatch)
    );
}

#[test]
fn supabase_users_on_es256_and_never_its_api_keys() {
    let key = JwsKey::generate("ES256", "sb-1");
    let supabase = Issuer::supabase("https://abcdefghij.supabase.co");
    let user = timed(
        json!({
            "iss": "https://abcdefghij.supabase.co/auth/v1",
            "sub": "8f5e1a9c-0d7b-4f4e-9a64-3c1f5e6d7b20",
            "aud": "authenticated",
            "role": "authenticated",
            "email": "ada@example.com",
            "phone": "",
            "app_metadata": { "provider": "email", "providers": ["email"] },
            "user_metadata": {},
            "aal": "aal1",
            "session_id": "c3d4",
            "is_anonymous": false,
        }),
        3600,
    );
    assert!(verified(&supabase, &key, json!({ "typ": "JWT" }), user.clone()).is_ok());
    // The project's `anon` key as a token naming this issuer: no user.
    let mut anon = user.clone();
    anon["role"] = "anon".into();
    anon["aud"] = "anon".into();
    anon.as_object_mut().unwrap().remove("sub");
    assert!(verified(&supabase, &key, json!({ "typ": "JWT" }), anon).is_err());
    let mut service = user;
    service["role"] = "service_role".into();
    assert_eq!(
        verified(&supabase, &key, json!({ "typ": "JWT" }), service),
        Err(Rejection::TokenTypeMismatch)
    );
}

#[test]
fn cognito_access_tokens_carry_the_client_in_client_id() {
    let key = JwsKey::generate("RS256", "cog-1");
    let cognito =
        Issuer::cognito("eu-west-1", "eu-west-1_Ab12Cd34").with_audience("7pmnq2c1example");
    let access = timed(
        json!({
            "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12Cd34",
            "client_id": "7pmnq2c1example",
            "origin_jti": "f1",
            "event_id": "e1",
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": NOW_S,
            "jti": "j1",
            "username": "ada",
        }),
        3600,
    );
    let (_, subject, _) = verified(&cognito, &key, json!({}), access.clone()).unwrap();
    assert_eq!(subject, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    // Its ID token: `aud` and `token_use: id`, no `client_id`.
    let mut id_token = access.clone();
    id_token["token_use"] = "id".into();
    id_token["aud"] = "7pmnq2c1example".into();
    assert_eq!(
        verified(&cognito, &key, json!({}), id_token),
        Err(Rejection::TokenTypeMismatch)
    );
    let mut other_client = access;
    other_client["client_id"] = "another".into();
    assert_eq!(
        verified(&cognito, &key, json!({}), other_client),
        Err(Rejection::InvalidAudience)
    );
}

#[test]
fn firebase_and_google_id_tokens() {
    let key = JwsKey::generate("RS256", "fb-1");
    let firebase = Issuer::firebase("my-project");
    let id_token = timed(
        json!({
            "iss": "https://securetoken.google.com/my-project",
            "aud": "my-project",
            "auth_time": NOW_S,
            "user_id": "pTq7W1uid",
            "sub": "pTq7W1uid",
            "email": "ada@example.com",
            "email_verified": true,
            "firebase": { "identities": { "email": ["ada@example.com"] }, "sign_in_provider": "password" },
        }),
        3600,
    );
    assert!(verified(&firebase, &key, json!({ "typ": "JWT" }), id_token.clone()).is_ok());
    assert_eq!(
        verified(&firebase, &key, json!({ "typ": "at+jwt" }), id_token),
        Err(Rejection::TokenTypeMismatch)
    );

    let google = Issuer::google().with_audience("1234.apps.googleusercontent.com");
    let signed_in = timed(
        json!({
            "iss": "accounts.google.com",
            "azp": "1234.apps.googleusercontent.com",
            "aud": "1234.apps.googleusercontent.com",
            "sub": "110169484474386276334",
            "email": "ada@example.com",
            "email_verified": true,
            "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
        }),
        3600,
    );
    let (scheme_less, ..) =
        verified(&google, &key, json!({ "typ": "JWT" }), signed_in.clone()).unwrap();
    let mut with_scheme = signed_in;
    with_scheme["iss"] = "https://accounts.google.com".into();
    let (full, ..) = verified(&google, &key, json!({ "typ": "JWT" }), with_scheme).unwrap();
    assert_eq!(scheme_less, full);
    assert_eq!(full, "https://accounts.google.com#110169484474386276334");
}

#[test]
fn entra_keys_users_by_oid_with_keys_without_alg() {
    let key = JwsKey::generate("RS256", "entra-1");
    let mut jwks = JwsKey::jwks(&[&key]);
    jwks["keys"][0].as_object_mut().unwrap().remove("alg");
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let entra = Issuer::entra(tenant).with_audience("6e74172b-be56-4843-9ff4-e66a39bb12e3");
    let claims = timed(
        json!({
            "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "iss": format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            "nbf": NOW_S,
            "azp": "a2f6c1d0",
            "azpacr": "0",
            "name": "Ada Lovelace",
            "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
            "preferred_username": "ada@contoso.com",
            "rh": "I",
            "scp": "access_as_user",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": tenant,
            "uti": "fqiBqXLPj0eQa82S-IYFAA",
            "ver": "2.0",
        }),
        75 * 60,
    );
    let verifier = IssuerVerifier::holding(&entra, jwks.to_string().as_bytes());
    let token = key.sign(&json!({ "typ": "JWT" }), &claims);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let verified = runtime
        .block_on(verifier.verify(token.as_bytes(), NOW_S * 1000))
        .unwrap();
    assert_eq!(verified.subject(), "690222be-ff1a-4d56-abd1-7e4f7d38e474");
    assert_eq!(verified.scopes(), ["access_as_user"]);
}

#[test]
fn okta_keys_users_by_uid_and_client_credentials_carry_none() {
    let key = JwsKey::generate("RS256", "okta-1");
    let okta =
        Issuer::okta("https://example.okta.com/oauth2/default").with_audience("api://default");
    let access = timed(
        json!({
            "ver": 1,
            "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
            "iss": "https://example.okta.com/oauth2/default",
            "aud": "api://default",
            "cid": "0oaoiuhhch8VRtBnC0g7",
            "uid": "00uid4BxXw6I6TV4m0g3",
            "scp": ["openid", "email"],
            "auth_time": NOW_S,
            "sub": "ada@example.com",
        }),
        3600,
    );
    let (_, subject, scopes) = verified(&okta, &key, json!({}), access.clone()).unwrap();
    assert_eq!(subject, "00uid4BxXw6I6TV4m0g3");
    assert_eq!(scopes, ["openid", "email"]);
    let mut client_credentials = access;
    client_credentials.as_object_mut().unwrap().remove("uid");
    client_credentials["sub"] = "0oaoiuhhch8VRtBnC0g7".into();
    assert_eq!(
        verified(&okta, &key, json!({}), client_credentials),
        Err(Rejection::TokenTypeMismatch)
    );
}

#[test]
fn times_and_lifetimes_are_the_issuers_rules() {
    let key = JwsKey::generate("ES384", "t-1");
    let issuer = Issuer::new("https://id.example.com");
    let rfc9068 = json!({ "typ": "at+jwt" });
    let base = json!({ "iss": "https://id.example.com", "sub": "s", "aud": "a" });
    assert!(verified(&issuer, &key, rfc9068.clone(), timed(base.clone(), 600)).is_ok());
    assert_eq!(
        verified(&issuer, &key, rfc9068.clone(), timed(base.clone(), -600)),
        Err(Rejection::TokenExpired)
    );
    assert_eq!(
        verified(
            &issuer,
            &key,
            rfc9068.clone(),
            timed(base.clone(), 2 * 86_400)
        ),
        Err(Rejection::TokenLifetimeExceeded)
    );
    let mut early = timed(base.clone(), 600);
    early["nbf"] = (NOW_S + 60).into();
    assert_eq!(
        verified(&issuer, &key, rfc9068.clone(), early),
        Err(Rejection::TokenNotYetValid)
    );
    let mut no_exp = base.clone();
    no_exp["iat"] = NOW_S.into();
    assert_eq!(
        verified(&issuer, &key, rfc9068.clone(), no_exp),
        Err(Rejection::MalformedToken)
    );
    // A token of another issuer, even under this issuer's key.
    let mut other = timed(base, 600);
    other["iss"] = "https://id.example.com/".into();
    assert_eq!(
        verified(&issuer, &key, rfc9068, other),
        Err(Rejection::InvalidIssuer)
    );
}
